//! The records of a pack file: the sled backend's log of record.
//!
//! Every change the sled backend makes is appended to a pack as a self-describing record, and
//! the pack is fdatasynced before the change is acknowledged; the sled index only says where
//! things are, and can be rebuilt from the packs (`recover`), as in bitcask and WiscKey.
//!
//! ```text
//!  0  magic "P2PR"
//!  4  op: 1 put, 2 body, 3 remove
//!  5  kind of a put (0 plain, 1 manifest)
//!  6  1 when a put carries its body, else 0
//!  7  zero
//!  8  name length: u16 LE
//! 10  six zero bytes
//! 16  sequence number: u64 LE (puts and removes, in the order they were made)
//! 24  blake3 hash: 32 bytes (put, body; zeros for a remove)
//! 56  size: u64 LE (put: the part's size; body: the body's length)
//! 64  first 8 bytes of blake3(bytes 0..64, the name, the pack id and offset the record is
//!     at, both u64 LE): the header's check
//! 72  the name, then the body when the record carries one
//! ```
//!
//! A put of a body the store already holds carries no body; a body record is a body moved by
//! compaction after the name that brought it was removed. The body is checked by its hash, the
//! rest by the header's check, so any flipped byte is noticed. The check covers where the
//! record is, so record-shaped bytes anywhere else (inside a body that holds a copy of a pack,
//! a copy of a record) are never taken for a record when a scan looks past damage.

use crate::{PartHash, PartKind, PartName, check_size};

pub(crate) const MAGIC: [u8; 4] = *b"P2PR";
pub(crate) const HEADER_LEN: u64 = 72;
const CHECKED_LEN: usize = 64;

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `name` now holds the part `hash`, `size` bytes, of `kind`.
    Put { kind: PartKind, carries_body: bool },
    /// The bytes of `hash`, with no name.
    Body,
    /// `name` is gone.
    Remove,
}

/// One record's header and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) op: Op,
    pub(crate) seq: u64,
    pub(crate) name: Option<PartName>,
    pub(crate) hash: PartHash,
    pub(crate) size: u64,
}

impl Record {
    pub(crate) fn put(name: PartName, info: (PartHash, u64, PartKind), carries: bool) -> Self {
        let (hash, size, kind) = info;
        Self {
            op: Op::Put {
                kind,
                carries_body: carries,
            },
            seq: 0,
            name: Some(name),
            hash,
            size,
        }
    }

    pub(crate) fn body(hash: PartHash, size: u64) -> Self {
        Self {
            op: Op::Body,
            seq: 0,
            name: None,
            hash,
            size,
        }
    }

    pub(crate) fn remove(name: PartName) -> Self {
        Self {
            op: Op::Remove,
            seq: 0,
            name: Some(name),
            hash: PartHash::from_bytes([0; PartHash::LEN]),
            size: 0,
        }
    }

    /// The same put, carrying its body or not (compaction moves bodies apart from names).
    #[must_use]
    pub(crate) fn carrying(mut self, carries: bool) -> Self {
        if let Op::Put { carries_body, .. } = &mut self.op {
            *carries_body = carries;
        }
        self
    }

    #[must_use]
    pub(crate) fn with_seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    fn name_bytes(&self) -> &[u8] {
        self.name
            .as_ref()
            .map_or(&[], |name| name.as_str().as_bytes())
    }

    /// Bytes of the header and name: what a record costs besides its body.
    pub(crate) fn head_len(&self) -> u64 {
        HEADER_LEN + self.name_bytes().len() as u64
    }

    /// Length of the body that follows the name, if the record carries one.
    pub(crate) fn body_len(&self) -> u64 {
        match self.op {
            Op::Put {
                carries_body: true, ..
            }
            | Op::Body => self.size,
            Op::Put { .. } | Op::Remove => 0,
        }
    }

    /// The header and name of the record written at `offset` of pack `pack`, ready to be
    /// followed by the body.
    pub(crate) fn encode_head(&self, pack: u64, offset: u64) -> Vec<u8> {
        let name = self.name_bytes();
        let (op, kind, carries) = match self.op {
            Op::Put { kind, carries_body } => (1, kind.code(), u8::from(carries_body)),
            Op::Body => (2, 0, 0),
            Op::Remove => (3, 0, 0),
        };
        let name_len = u16::try_from(name.len()).expect("part names are far shorter than 64 KiB");
        let mut head = Vec::with_capacity(HEADER_LEN as usize + name.len());
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&[op, kind, carries, 0]);
        head.extend_from_slice(&name_len.to_le_bytes());
        head.extend_from_slice(&[0; 6]);
        head.extend_from_slice(&self.seq.to_le_bytes());
        head.extend_from_slice(self.hash.as_bytes());
        head.extend_from_slice(&self.size.to_le_bytes());
        let check = header_check(&head, name, pack, offset);
        head.extend_from_slice(&check);
        head.extend_from_slice(name);
        head
    }
}

fn header_check(fixed: &[u8], name: &[u8], pack: u64, offset: u64) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(fixed);
    hasher.update(name);
    hasher.update(&pack.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.finalize().as_bytes()[..8]
        .try_into()
        .expect("8 bytes")
}

/// The name length a header announces, so the caller can read the name; `None` when the bytes
/// are not the start of a record.
pub(crate) fn name_len(header: &[u8; HEADER_LEN as usize]) -> Option<usize> {
    (header[..4] == MAGIC).then(|| usize::from(u16::from_le_bytes([header[8], header[9]])))
}

/// Decodes a header and the name that follows it, found at `offset` of pack `pack`; `None` for
/// anything that is not an intact record header written there (a torn append, a flipped byte,
/// bytes in the middle of a body).
pub(crate) fn decode(
    header: &[u8; HEADER_LEN as usize],
    name: &[u8],
    pack: u64,
    offset: u64,
) -> Option<Record> {
    let fixed = &header[..CHECKED_LEN];
    if name_len(header)? != name.len() || header[64..] != header_check(fixed, name, pack, offset) {
        return None;
    }
    if header[7] != 0 || header[10..16] != [0; 6] {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let op = match (header[4], header[6]) {
        (1, carries @ (0 | 1)) => Op::Put {
            kind: PartKind::from_code(header[5])?,
            carries_body: carries == 1,
        },
        (2, 0) => Op::Body,
        (3, 0) => Op::Remove,
        _ => return None,
    };
    let name = match op {
        Op::Body if name.is_empty() => None,
        Op::Body => return None,
        Op::Put { .. } | Op::Remove => Some(PartName::from_bytes(name).ok()?),
    };
    let size = u64_at(56);
    check_size("a pack record", size).ok()?;
    Some(Record {
        op,
        seq: u64_at(16),
        name,
        hash: PartHash::from_bytes(header[24..56].try_into().expect("32 bytes")),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_at(head: &[u8], pack: u64, offset: u64) -> Option<Record> {
        let header: &[u8; HEADER_LEN as usize] = head[..HEADER_LEN as usize].try_into().unwrap();
        decode(header, &head[HEADER_LEN as usize..], pack, offset)
    }

    fn samples() -> Vec<Record> {
        let name = PartName::new("part2.txt").unwrap();
        let hash = PartHash::of(b"hello");
        vec![
            Record::put(name.clone(), (hash, 5, PartKind::Manifest), true).with_seq(7),
            Record::put(name.clone(), (hash, 5, PartKind::Plain), false).with_seq(8),
            Record::body(hash, 5),
            Record::remove(name).with_seq(u64::MAX),
        ]
    }

    #[test]
    fn records_round_trip() {
        for record in samples() {
            let head = record.encode_head(3, 4096);
            assert_eq!(decode_at(&head, 3, 4096), Some(record.clone()));
            assert_eq!(head.len() as u64, record.head_len());
        }
    }

    /// A record's bytes copied anywhere else (another offset, another pack) are not a record.
    #[test]
    fn a_record_is_one_only_where_it_was_written() {
        for record in samples() {
            let head = record.encode_head(3, 4096);
            for (pack, offset) in [(3, 4097), (3, 0), (4, 4096), (0, 0)] {
                assert_eq!(decode_at(&head, pack, offset), None, "{pack} {offset}");
            }
        }
    }

    /// Whichever byte of a header or name flips, the record is not taken for another one.
    #[test]
    fn every_flipped_byte_is_noticed() {
        for record in samples() {
            let head = record.encode_head(0, 0);
            for at in 0..head.len() {
                for bit in [0x01, 0x80] {
                    let mut damaged = head.clone();
                    damaged[at] ^= bit;
                    let header: &[u8; HEADER_LEN as usize] =
                        damaged[..HEADER_LEN as usize].try_into().unwrap();
                    let name_end = HEADER_LEN as usize + name_len(header).unwrap_or(0);
                    let decoded = damaged
                        .get(HEADER_LEN as usize..name_end)
                        .and_then(|name| decode(header, name, 0, 0));
                    assert_eq!(decoded, None, "byte {at} bit {bit:#x} of {record:?}");
                }
            }
        }
    }

    #[test]
    fn body_lengths_follow_the_op() {
        let [with, without, body, remove] = samples().try_into().unwrap();
        assert_eq!(
            [with, without, body, remove].map(|r| r.body_len()),
            [5, 0, 5, 0]
        );
    }
}
