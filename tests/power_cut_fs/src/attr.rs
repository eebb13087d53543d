//! How the tree's inodes look to the kernel: their attributes.

use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};

use crate::tree::{Body, Ino, Inode};

/// The attributes of `inode`; a directory's size and links are nominal.
pub(crate) fn attr(ino: Ino, inode: &Inode) -> FileAttr {
    let (kind, size, nlink) = match &inode.body {
        Body::File(contents) => (FileType::RegularFile, contents.len(), inode.links),
        Body::Dir(_) => (FileType::Directory, 4096, 2),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: inode.meta.atime,
        mtime: inode.meta.mtime,
        ctime: inode.meta.ctime,
        crtime: inode.meta.ctime,
        kind,
        perm: inode.meta.perm,
        nlink,
        uid: inode.meta.uid,
        gid: inode.meta.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub(crate) fn perm(mode: u32) -> u16 {
    (mode & 0o7777) as u16
}

pub(crate) fn time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}
