//! The FUSE side: each kernel request becomes one call on the [`Tree`], under the lock of the
//! [`Power`] that holds it, which counts the changes and fails everything once it is cut.
//!
//! Locks (`flock`, `fcntl`) are left to the kernel, which handles them locally when a
//! filesystem does not; `sync_file_range` never reaches a FUSE filesystem, so it makes nothing
//! durable here, as it makes nothing durable on a real disk.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

use crate::attr::{attr, perm, time};
use crate::contents::Contents;
use crate::power::Power;
use crate::tree::{Body, Dir, Ino, Meta, Tree};

/// How long the kernel may cache attributes and entries. Nothing changes the tree behind the
/// kernel's back while it is mounted, so any value is correct.
const TTL: Duration = Duration::from_secs(60);

/// Writes up to this size reach the filesystem in one request.
const MAX_WRITE: u32 = 1 << 20;

/// One entry of a directory listing: what `readdir` hands the kernel.
type Listed = (Ino, FileType, OsString);

pub(crate) struct Fuse {
    power: Arc<Mutex<Power>>,
    /// Directory listings, taken whole at `opendir` so entries removed during a listing
    /// cannot make it skip others.
    listings: Mutex<HashMap<u64, Vec<Listed>>>,
    next_handle: AtomicU64,
}

impl Fuse {
    pub(crate) fn new(power: Arc<Mutex<Power>>) -> Self {
        Self {
            power,
            listings: Mutex::default(),
            next_handle: AtomicU64::new(1),
        }
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.power
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn listings(&self) -> MutexGuard<'_, HashMap<u64, Vec<Listed>>> {
        self.listings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn attr_of(tree: &Tree, ino: Ino) -> Result<FileAttr, Errno> {
        tree.inode(ino).map(|inode| attr(ino, inode))
    }

    fn add(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        body: Body,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, Errno> {
        let meta = Meta::new(perm(mode & !umask), req.uid(), req.gid());
        let mut power = self.power();
        let tree = power.change(req.pid(), parent.0)?;
        let ino = tree.add(parent.0, name, body, meta)?;
        Self::attr_of(tree, ino)
    }
}

fn reply_entry(reply: ReplyEntry, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(errno) => reply.error(errno),
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}

impl Filesystem for Fuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // A kernel that allows less keeps its own limit; writes are only split smaller.
        let _ = config.set_max_write(MAX_WRITE);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut power = self.power();
        let found = power.on().and_then(|tree| {
            let ino = tree.lookup(parent.0, name)?;
            Self::attr_of(tree, ino)
        });
        reply_entry(reply, found);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.power().tree.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .power()
            .on()
            .and_then(|tree| Self::attr_of(tree, ino.0))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut power = self.power();
        let changed = power.change(req.pid(), ino.0).and_then(|tree| {
            if let Some(len) = size {
                tree.set_len(ino.0, len)?;
            }
            tree.set_meta(ino.0, |meta| {
                meta.perm = mode.map_or(meta.perm, perm);
                meta.uid = uid.unwrap_or(meta.uid);
                meta.gid = gid.unwrap_or(meta.gid);
                meta.atime = atime.map_or(meta.atime, time);
                meta.mtime = mtime.map_or(meta.mtime, time);
                meta.ctime = SystemTime::now();
            })?;
            Self::attr_of(tree, ino.0)
        });
        match changed {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let body = Body::Dir(Dir::default());
        reply_entry(reply, self.add(req, parent, name, body, mode, umask));
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut power = self.power();
        let removed = power
            .change(req.pid(), parent.0)
            .and_then(|tree| tree.remove(parent.0, name, false));
        reply_empty(reply, removed);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut power = self.power();
        let removed = power
            .change(req.pid(), parent.0)
            .and_then(|tree| tree.remove(parent.0, name, true));
        reply_empty(reply, removed);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            // RENAME_EXCHANGE and RENAME_WHITEOUT: nothing the store does.
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let mut power = self.power();
        let renamed = power
            .change(req.pid(), parent.0)
            .and_then(|tree| tree.rename((parent.0, name), (newparent.0, newname), no_replace));
        reply_empty(reply, renamed);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.power().on().and_then(|tree| tree.open(ino.0)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self
            .power()
            .on()
            .and_then(|tree| tree.read(ino.0, offset, size))
        {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut power = self.power();
        match power
            .change(req.pid(), ino.0)
            .and_then(|tree| tree.write(ino.0, offset, data))
        {
            // `data` is at most MAX_WRITE long.
            Ok(()) => reply.written(data.len() as u32),
            Err(errno) => reply.error(errno),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.power().tree.release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // fdatasync persists the size as well as the data, so both are the same here.
        let mut power = self.power();
        reply_empty(
            reply,
            power
                .change(req.pid(), ino.0)
                .and_then(|tree| tree.sync(ino.0)),
        );
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut power = self.power();
        let listing = power.on().and_then(|tree| {
            tree.dir(ino.0).map(|dir| {
                let mut listing = vec![
                    (ino.0, FileType::Directory, OsString::from(".")),
                    (dir.parent, FileType::Directory, OsString::from("..")),
                ];
                for (name, &child) in &dir.now {
                    let kind = match tree.inode(child).map(|inode| &inode.body) {
                        Ok(Body::Dir(_)) => FileType::Directory,
                        _ => FileType::RegularFile,
                    };
                    listing.push((child, kind, name.clone()));
                }
                listing
            })
        });
        match listing {
            Ok(listing) => {
                let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
                self.listings().insert(handle, listing);
                reply.opened(FileHandle(handle), FopenFlags::empty());
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listings = self.listings();
        let Some(listing) = listings.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, (ino, kind, name)) in listing.iter().enumerate().skip(start) {
            if reply.add(INodeNo(*ino), index as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.listings().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut power = self.power();
        reply_empty(
            reply,
            power
                .change(req.pid(), ino.0)
                .and_then(|tree| tree.sync(ino.0)),
        );
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // A roomy disk: running out of space is another harness's job.
        const BLOCKS: u64 = 1 << 30;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let body = Body::File(Contents::default());
        let created = self
            .add(req, parent, name, body, mode, umask)
            .and_then(|attr| self.power().on()?.open(attr.ino.0).map(|()| attr));
        match created {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(errno) => reply.error(errno),
        }
    }
}
