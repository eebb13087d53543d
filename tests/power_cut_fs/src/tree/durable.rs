//! The durable layer of the tree: what an fsync of a directory makes durable, when an inode
//! can go, and what a power cut leaves.

use std::collections::{HashMap, VecDeque};

use fuser::Errno;

use super::{Body, Dir, Ino, Inode, ROOT, Tree};

impl Tree {
    /// fsync or fdatasync of a file, or fsync of a directory.
    pub(crate) fn sync(&mut self, ino: Ino) -> Result<(), Errno> {
        let dir = match &mut self.inode_mut(ino)?.body {
            Body::File(contents) => {
                contents.sync();
                return Ok(());
            }
            Body::Dir(dir) => dir,
        };
        let gone: Vec<Ino> = dir
            .durable
            .iter()
            .filter(|(name, ino)| dir.now.get(*name) != Some(ino))
            .map(|(_, &ino)| ino)
            .collect();
        let added: Vec<Ino> = dir
            .now
            .iter()
            .filter(|(name, ino)| dir.durable.get(*name) != Some(ino))
            .map(|(_, &ino)| ino)
            .collect();
        dir.durable = dir.now.clone();
        for ino in added {
            self.inode_mut(ino)?.durable_links += 1;
        }
        for ino in gone {
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.durable_links = inode.durable_links.saturating_sub(1);
            }
            self.free_if_unreachable(ino);
        }
        Ok(())
    }

    /// Drops an inode nothing can reach any more; a directory's durable entries go with it.
    pub(super) fn free_if_unreachable(&mut self, ino: Ino) {
        let mut queue = VecDeque::from([ino]);
        while let Some(ino) = queue.pop_front() {
            let free = ino != ROOT && self.inodes.get(&ino).is_some_and(Inode::unreachable);
            if !free {
                continue;
            }
            if let Some(Inode {
                body: Body::Dir(dir),
                ..
            }) = self.inodes.remove(&ino)
            {
                for child in dir.durable.into_values() {
                    if let Some(inode) = self.inodes.get_mut(&child) {
                        inode.durable_links = inode.durable_links.saturating_sub(1);
                        queue.push_back(child);
                    }
                }
            }
        }
    }

    /// The filesystem a power cut leaves: what the durable entries reach from the root, each
    /// file with its durable contents.
    pub(crate) fn after_cut(&self) -> Self {
        let mut inodes: HashMap<Ino, Inode> = HashMap::new();
        let mut queue = VecDeque::from([(ROOT, ROOT)]);
        while let Some((ino, parent)) = queue.pop_front() {
            if let Some(inode) = inodes.get_mut(&ino) {
                // Another durable entry for an inode already reached.
                inode.links += 1;
                inode.durable_links += 1;
                continue;
            }
            let Some(old) = self.inodes.get(&ino) else {
                continue;
            };
            let body = match &old.body {
                Body::File(contents) => Body::File(contents.after_cut()),
                Body::Dir(dir) => {
                    queue.extend(dir.durable.values().map(|&child| (child, ino)));
                    Body::Dir(Dir {
                        now: dir.durable.clone(),
                        durable: dir.durable.clone(),
                        parent,
                    })
                }
            };
            let mut inode = Inode::new(body, old.meta);
            if ino != ROOT {
                inode.links = 1;
                inode.durable_links = 1;
            }
            inodes.insert(ino, inode);
        }
        Self {
            inodes,
            next_ino: self.next_ino,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::{add, at, dir, file, names, tree};

    #[test]
    fn an_entry_survives_once_its_directory_is_synced() {
        let mut tree = tree();
        let a = add(&mut tree, ROOT, "a", file()).unwrap();
        tree.write(a, 0, b"hello").unwrap();
        tree.sync(a).unwrap();
        assert!(names(&tree.after_cut(), ROOT).is_empty());
        tree.sync(ROOT).unwrap();
        let cut = tree.after_cut();
        assert_eq!(names(&cut, ROOT), ["a"]);
        assert_eq!(cut.read(a, 0, 100).unwrap(), b"hello");
    }

    #[test]
    fn an_unsynced_rename_over_a_file_brings_the_old_one_back() {
        let mut tree = tree();
        let old = add(&mut tree, ROOT, "x", file()).unwrap();
        tree.write(old, 0, b"old").unwrap();
        tree.sync(old).unwrap();
        tree.sync(ROOT).unwrap();
        tree.forget(old, 1);
        let new = add(&mut tree, ROOT, "tmp", file()).unwrap();
        tree.write(new, 0, b"new").unwrap();
        tree.sync(new).unwrap();
        tree.rename((ROOT, "tmp".as_ref()), (ROOT, "x".as_ref()), false)
            .unwrap();
        assert_eq!(at(&tree, ROOT, "x"), new);
        let cut = tree.after_cut();
        assert_eq!(cut.read(old, 0, 9).unwrap(), b"old");
        tree.sync(ROOT).unwrap();
        assert_eq!(tree.after_cut().read(new, 0, 9).unwrap(), b"new");
        assert!(
            tree.inode(old).is_err(),
            "nothing reaches the old file any more"
        );
    }

    #[test]
    fn a_directory_that_was_never_linked_durably_takes_its_entries_with_it() {
        let mut tree = tree();
        let d = add(&mut tree, ROOT, "d", dir()).unwrap();
        let f = add(&mut tree, d, "f", file()).unwrap();
        tree.sync(f).unwrap();
        tree.sync(d).unwrap();
        assert!(tree.after_cut().inode(f).is_err());
        tree.sync(ROOT).unwrap();
        assert_eq!(names(&tree.after_cut(), d), ["f"]);
    }
}
