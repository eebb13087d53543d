//! One block of a pack, read ahead of small reads that follow each other.
//!
//! `send --db` and `export` read a store's bodies in name order, which for a store filled by
//! a push is the order they lie in the packs. One `pread` per body of 1 KiB was the largest
//! cost `send` paid per part after hashing it; one read of 64 KiB serves the next fifty.
//!
//! A block holds only settled bytes: those the index has applied, which never change while
//! the store is open (a failed append, or a torn one at replay, is cut back only to where it
//! started, past them, and pack ids are never reused while the store is open). So a block
//! never serves bytes that a later write of the store replaced; it assumes, as the rest of
//! the store does while open, that nothing else writes its packs. A read that does not follow
//! the previous one never fills a block, so random gets read no more than they ask for;
//! two sequential readers at once take turns with the one block and gain little.

use crate::PartName;
use crate::pack_record::HEADER_LEN;
use crate::packs::BodyAt;

/// How much a block reads at once.
pub(crate) const BLOCK: u64 = 64 * 1024;

/// Reads larger than this go straight to the pack: a block would save little per byte.
const SMALL_READ: u64 = 16 * 1024;

/// How far past the previous read's end a read may start and still follow it: the header
/// and name of the next record lie between two bodies.
const FOLLOWING_GAP: u64 = HEADER_LEN + PartName::MAX_LEN as u64;

#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    block: Option<Block>,
    /// Where the previous read ended: its pack and offset.
    last_end: Option<(u64, u64)>,
}

#[derive(Debug)]
struct Block {
    pack: u64,
    start: u64,
    bytes: Vec<u8>,
}

impl Block {
    fn holds(&self, at: BodyAt) -> bool {
        at.pack == self.pack
            && at.offset >= self.start
            && at
                .offset
                .checked_add(at.len)
                .is_some_and(|end| end <= self.start + self.bytes.len() as u64)
    }

    fn slice(&self, at: BodyAt) -> Vec<u8> {
        let from = usize::try_from(at.offset - self.start).expect("within a block");
        let to = from + usize::try_from(at.len).expect("within a block");
        self.bytes[from..to].to_vec()
    }
}

/// How to serve a read.
#[derive(Debug)]
pub(crate) enum Plan {
    /// The block holds the bytes.
    Cached(Vec<u8>),
    /// Read this span as the next block: it starts with the bytes asked for.
    Block(BodyAt),
    /// Read just the bytes asked for.
    Direct,
}

impl ReadAhead {
    /// How to serve a read of `at`, whose pack's bytes are settled up to `settled`. A block
    /// is read only for a small read that follows the previous one, and only when it would
    /// hold more than `at`.
    pub(crate) fn plan(&mut self, at: BodyAt, settled: u64) -> Plan {
        // A location past the end of any file is a damaged index: read as asked, and fail.
        let Some(at_end) = at.offset.checked_add(at.len) else {
            return Plan::Direct;
        };
        let follows = self.last_end.is_some_and(|(pack, end)| {
            pack == at.pack && at.offset >= end && at.offset - end <= FOLLOWING_GAP
        });
        self.last_end = Some((at.pack, at_end));
        if let Some(block) = self.block.as_ref().filter(|block| block.holds(at)) {
            return Plan::Cached(block.slice(at));
        }
        let end = settled.min(at.offset.saturating_add(BLOCK));
        if follows && at.len <= SMALL_READ && end > at_end {
            Plan::Block(BodyAt {
                pack: at.pack,
                offset: at.offset,
                len: end - at.offset,
            })
        } else {
            Plan::Direct
        }
    }

    /// Keeps `bytes`, read at `span`, as the block.
    pub(crate) fn keep(&mut self, span: BodyAt, bytes: Vec<u8>) {
        self.block = Some(Block {
            pack: span.pack,
            start: span.offset,
            bytes,
        });
    }

    /// Drops the block of pack `id`, whose file is about to be deleted.
    pub(crate) fn forget(&mut self, id: u64) {
        if self.block.as_ref().is_some_and(|block| block.pack == id) {
            self.block = None;
        }
    }
}
