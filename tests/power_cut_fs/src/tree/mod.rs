//! The filesystem's state: inodes, and directories whose entries, like file contents, have a
//! layer readers see and a durable layer that only an fsync of the directory updates.
//!
//! An inode lives while anything can still reach it: an entry in either layer of a directory
//! that is itself alive, the kernel's lookups, or an open handle. So a file unlinked (or
//! renamed over) since its directory's last fsync stays in memory, to come back after a cut.
//! Entries are durable per directory: a rename between two directories is durable in each once
//! that one is synced, which is stricter than a journal that commits both at once.

mod durable;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use fuser::Errno;

use crate::contents::Contents;

pub(crate) type Ino = u64;

/// The mount's root directory, whose own entry nobody can remove.
pub(crate) const ROOT: Ino = 1;

#[derive(Debug, Clone, Default)]
pub(crate) struct Dir {
    pub(crate) now: BTreeMap<OsString, Ino>,
    pub(crate) durable: BTreeMap<OsString, Ino>,
    pub(crate) parent: Ino,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    File(Contents),
    Dir(Dir),
}

/// What `stat` shows besides the size; not tracked for durability.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) atime: SystemTime,
    pub(crate) mtime: SystemTime,
    pub(crate) ctime: SystemTime,
}

impl Meta {
    pub(crate) fn new(perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Self {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn touch(&mut self) {
        self.mtime = SystemTime::now();
        self.ctime = self.mtime;
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) body: Body,
    pub(crate) meta: Meta,
    /// Entries naming it in the `now` layers.
    pub(crate) links: u32,
    /// Entries naming it in the durable layers of live directories.
    durable_links: u32,
    /// References the kernel holds (one per entry it was given, until it forgets them).
    lookups: u64,
    opens: u32,
}

impl Inode {
    fn new(body: Body, meta: Meta) -> Self {
        Self {
            body,
            meta,
            links: 0,
            durable_links: 0,
            lookups: 0,
            opens: 0,
        }
    }

    fn unreachable(&self) -> bool {
        self.links == 0 && self.durable_links == 0 && self.lookups == 0 && self.opens == 0
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Tree {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
}

impl Tree {
    /// An empty filesystem whose root has `meta`.
    pub(crate) fn new(meta: Meta) -> Self {
        let root = Inode::new(
            Body::Dir(Dir {
                parent: ROOT,
                ..Dir::default()
            }),
            meta,
        );
        Self {
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
        }
    }

    pub(crate) fn inode(&self, ino: Ino) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    pub(crate) fn dir(&self, ino: Ino) -> Result<&Dir, Errno> {
        match &self.inode(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut Dir, Errno> {
        match &mut self.inode_mut(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut Contents, Errno> {
        match &mut self.inode_mut(ino)?.body {
            Body::File(contents) => Ok(contents),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// The inode `name` in `parent` leads to, counted as a reference the kernel now holds.
    pub(crate) fn lookup(&mut self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        let ino = *self.dir(parent)?.now.get(name).ok_or(Errno::ENOENT)?;
        self.inode_mut(ino)?.lookups += 1;
        Ok(ino)
    }

    /// The kernel dropped `count` references.
    pub(crate) fn forget(&mut self, ino: Ino, count: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.lookups = inode.lookups.saturating_sub(count);
            self.free_if_unreachable(ino);
        }
    }

    /// Adds a new file or directory as `name` in `parent` (a volatile entry until `parent` is
    /// synced); the kernel holds a reference to it.
    pub(crate) fn add(
        &mut self,
        parent: Ino,
        name: &OsStr,
        mut body: Body,
        meta: Meta,
    ) -> Result<Ino, Errno> {
        if self.dir(parent)?.now.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        if let Body::Dir(dir) = &mut body {
            dir.parent = parent;
        }
        let mut inode = Inode::new(body, meta);
        inode.links = 1;
        inode.lookups = 1;
        self.inodes.insert(ino, inode);
        let dir = self.dir_mut(parent)?;
        dir.now.insert(name.to_owned(), ino);
        self.inode_mut(parent)?.meta.touch();
        Ok(ino)
    }

    /// Removes the entry `name` of `parent`: a file with `want_dir` false (`unlink`), an empty
    /// directory with it true (`rmdir`).
    pub(crate) fn remove(
        &mut self,
        parent: Ino,
        name: &OsStr,
        want_dir: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.now.get(name).ok_or(Errno::ENOENT)?;
        match (&self.inode(ino)?.body, want_dir) {
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            (Body::Dir(dir), true) if !dir.now.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.now.remove(name);
        self.inode_mut(parent)?.meta.touch();
        self.unlink_ino(ino);
        Ok(())
    }

    fn unlink_ino(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.links = inode.links.saturating_sub(1);
            inode.meta.ctime = SystemTime::now();
        }
        self.free_if_unreachable(ino);
    }

    /// `rename(2)`, replacing what `to` holds unless `no_replace`.
    pub(crate) fn rename(
        &mut self,
        from: (Ino, &OsStr),
        to: (Ino, &OsStr),
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(from.0)?.now.get(from.1).ok_or(Errno::ENOENT)?;
        let moving_dir = matches!(self.inode(ino)?.body, Body::Dir(_));
        let replaced = self.dir(to.0)?.now.get(to.1).copied();
        if replaced == Some(ino) {
            return Ok(());
        }
        if let Some(old) = replaced {
            if no_replace {
                return Err(Errno::EEXIST);
            }
            match (&self.inode(old)?.body, moving_dir) {
                (Body::Dir(_), false) => return Err(Errno::EISDIR),
                (Body::File(_), true) => return Err(Errno::ENOTDIR),
                (Body::Dir(dir), true) if !dir.now.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        if moving_dir && self.is_within(to.0, ino)? {
            return Err(Errno::EINVAL);
        }
        self.dir_mut(from.0)?.now.remove(from.1);
        self.dir_mut(to.0)?.now.insert(to.1.to_owned(), ino);
        if let Body::Dir(dir) = &mut self.inode_mut(ino)?.body {
            dir.parent = to.0;
        }
        self.inode_mut(from.0)?.meta.touch();
        self.inode_mut(to.0)?.meta.touch();
        self.inode_mut(ino)?.meta.ctime = SystemTime::now();
        if let Some(old) = replaced {
            self.unlink_ino(old);
        }
        Ok(())
    }

    /// Whether `ino` is directory `dir` or an entry of it.
    pub(crate) fn is_in(&self, ino: Ino, dir: Ino) -> bool {
        ino == dir
            || self
                .dir(dir)
                .is_ok_and(|entries| entries.now.values().any(|&entry| entry == ino))
    }

    /// The directory `path` (relative to the root) leads to.
    pub(crate) fn resolve(&self, path: &std::path::Path) -> Result<Ino, Errno> {
        let mut ino = ROOT;
        for component in path.components() {
            ino = *self
                .dir(ino)?
                .now
                .get(component.as_os_str())
                .ok_or(Errno::ENOENT)?;
        }
        self.dir(ino).map(|_| ino)
    }

    /// Whether directory `dir` is `ancestor` or lies under it.
    fn is_within(&self, mut dir: Ino, ancestor: Ino) -> Result<bool, Errno> {
        // Bounded by the number of inodes, so a damaged parent chain cannot loop forever.
        for _ in 0..=self.inodes.len() {
            if dir == ancestor {
                return Ok(true);
            }
            if dir == ROOT {
                return Ok(false);
            }
            dir = self.dir(dir)?.parent;
        }
        Err(Errno::EIO)
    }

    pub(crate) fn open(&mut self, ino: Ino) -> Result<(), Errno> {
        self.inode_mut(ino)?.opens += 1;
        Ok(())
    }

    pub(crate) fn release(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.opens = inode.opens.saturating_sub(1);
            self.free_if_unreachable(ino);
        }
    }

    pub(crate) fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        match &self.inode(ino)?.body {
            Body::File(contents) => Ok(contents.read(offset, size)),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    pub(crate) fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.file_mut(ino)?.write(offset, data);
        self.inode_mut(ino)?.meta.touch();
        Ok(())
    }

    pub(crate) fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        self.file_mut(ino)?.set_len(len);
        self.inode_mut(ino)?.meta.touch();
        Ok(())
    }

    pub(crate) fn set_meta(
        &mut self,
        ino: Ino,
        change: impl FnOnce(&mut Meta),
    ) -> Result<(), Errno> {
        change(&mut self.inode_mut(ino)?.meta);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tree() -> Tree {
        Tree::new(Meta::new(0o755, 0, 0))
    }

    pub(crate) fn file() -> Body {
        Body::File(Contents::default())
    }

    pub(crate) fn dir() -> Body {
        Body::Dir(Dir::default())
    }

    pub(crate) fn add(tree: &mut Tree, parent: Ino, name: &str, body: Body) -> Result<Ino, Errno> {
        tree.add(parent, name.as_ref(), body, Meta::new(0o644, 0, 0))
    }

    pub(crate) fn at(tree: &Tree, dir: Ino, name: &str) -> Ino {
        tree.dir(dir).unwrap().now[OsStr::new(name)]
    }

    pub(crate) fn names(tree: &Tree, dir: Ino) -> Vec<String> {
        let dir = tree.dir(dir).unwrap();
        dir.now
            .keys()
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn rename_refuses_what_rename_2_refuses() {
        let mut tree = tree();
        let d = add(&mut tree, ROOT, "d", dir()).unwrap();
        add(&mut tree, d, "f", file()).unwrap();
        add(&mut tree, ROOT, "g", file()).unwrap();
        let rename = |tree: &mut Tree, from: &str, to_dir, to: &str, no_replace| {
            tree.rename((ROOT, from.as_ref()), (to_dir, to.as_ref()), no_replace)
        };
        assert_eq!(rename(&mut tree, "g", d, "f", true), Err(Errno::EEXIST));
        assert_eq!(rename(&mut tree, "d", d, "e", false), Err(Errno::EINVAL));
        assert_eq!(rename(&mut tree, "g", ROOT, "d", false), Err(Errno::EISDIR));
        assert_eq!(tree.remove(ROOT, "d".as_ref(), true), Err(Errno::ENOTEMPTY));
        assert_eq!(rename(&mut tree, "g", d, "f", false), Ok(()));
        assert_eq!(names(&tree, d), ["f"]);
        assert_eq!(names(&tree, ROOT), ["d"]);
    }
}
