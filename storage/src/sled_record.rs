//! The keys and values of the sled index over the packs.
//!
//! One sled tree holds every key space:
//!
//! ```text
//! n <name>              -> <hash: 32> <size: u64 LE> <kind: u8> <shared: u8> <record: pack, offset>
//! r <hash: 32> <name>   -> (empty)     one per entry whose body is shared: who uses it
//! b <hash: 32>          -> <pack: u64 LE> <offset: u64 LE> <len: u64 LE>   a shared body
//! t <name>              -> <pack> <offset> <len>   the record of a removal not yet overwritten
//! p <pack: u64 BE>      -> <indexed length: u64 LE> <dead bytes: u64 LE>
//! s                     -> <next sequence number: u64 LE>
//! v                     -> <index format: u64 LE>, written when the store is created
//! ```
//!
//! Every entry points at its put record in a pack. A body up to `INLINE_MAX` follows its own
//! record and is kept once per name, so storing a small part is one record and one insert:
//! measured on these machines, one insert per 1 KiB part ran at 67-83k parts/s where an entry,
//! a reference and a separately keyed body ran at 26-29k. Larger bodies are shared by every
//! name with the same content, and the `r` keys make "does another name still use this
//! body?" a prefix scan. Nothing in the index is needed that the packs cannot rebuild.

use std::ops::Bound;

use crate::packs::{BodyAt, PackState};
use crate::{PartHash, PartInfo, PartKind, PartName, StoreError, check_size};

const NAME: u8 = b'n';
const REF: u8 = b'r';
const BODY: u8 = b'b';
const TOMB: u8 = b't';
const PACK: u8 = b'p';
pub(crate) const SEQ_KEY: &[u8] = b"s";
pub(crate) const FORMAT_KEY: &[u8] = b"v";
/// The layout above; an index of another layout is rebuilt by `recover`.
pub(crate) const FORMAT: u64 = 1;

pub(crate) const NAME_PREFIX: [u8; 1] = [NAME];
pub(crate) const BODY_PREFIX: [u8; 1] = [BODY];
pub(crate) const PACK_PREFIX: [u8; 1] = [PACK];
pub(crate) const TOMB_PREFIX: [u8; 1] = [TOMB];

/// An `n` entry: what a name holds and where its put record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) info: PartInfo,
    /// Whether the body is shared through a `b` key, rather than following the record.
    pub(crate) shared: bool,
    /// The put record: pack, offset, and length of its header and name.
    pub(crate) record: BodyAt,
}

impl Entry {
    /// Where an unshared body is: right after its record's header and name.
    pub(crate) fn own_body(&self) -> BodyAt {
        BodyAt {
            pack: self.record.pack,
            offset: self.record.offset + self.record.len,
            len: self.info.size,
        }
    }
}

pub(crate) fn body_key(hash: &PartHash) -> Vec<u8> {
    prefixed(BODY, &[hash.as_bytes()])
}

pub(crate) fn pack_key(id: u64) -> Vec<u8> {
    prefixed(PACK, &[&id.to_be_bytes()])
}

pub(crate) fn encode_body_at(at: BodyAt) -> Vec<u8> {
    [at.pack, at.offset, at.len]
        .iter()
        .flat_map(|n| n.to_le_bytes())
        .collect()
}

pub(crate) fn encode_pack_state(state: PackState) -> Vec<u8> {
    [state.len, state.dead]
        .iter()
        .flat_map(|n| n.to_le_bytes())
        .collect()
}

/// Decodes a `b` key and value.
///
/// # Errors
/// [`StoreError::BadIndexEntry`] when either is malformed.
pub(crate) fn decode_body_at(key: &[u8], value: &[u8]) -> Result<(PartHash, BodyAt), StoreError> {
    let hash = key
        .strip_prefix(&BODY_PREFIX)
        .and_then(|raw| <[u8; PartHash::LEN]>::try_from(raw).ok())
        .map(PartHash::from_bytes)
        .ok_or_else(|| bad_key(key, "not a body key"))?;
    let [pack, offset, len] = u64s(value).ok_or_else(|| bad_key(key, "bad body location"))?;
    Ok((hash, BodyAt { pack, offset, len }))
}

/// Decodes a `p` key and value.
///
/// # Errors
/// [`StoreError::BadIndexEntry`] when either is malformed.
pub(crate) fn decode_pack_state(key: &[u8], value: &[u8]) -> Result<(u64, PackState), StoreError> {
    let id = key
        .strip_prefix(&PACK_PREFIX)
        .and_then(|raw| <[u8; 8]>::try_from(raw).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| bad_key(key, "not a pack key"))?;
    let [len, dead] = u64s(value).ok_or_else(|| bad_key(key, "bad pack state"))?;
    Ok((id, PackState { len, dead }))
}

fn u64s<const N: usize>(value: &[u8]) -> Option<[u64; N]> {
    let chunks: &[[u8; 8]] = value.as_chunks::<8>().0;
    (value.len() == N * 8).then(|| std::array::from_fn(|i| u64::from_le_bytes(chunks[i])))
}

fn bad_key(key: &[u8], reason: &'static str) -> StoreError {
    StoreError::BadIndexEntry {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

pub(crate) fn name_key(name: &PartName) -> Vec<u8> {
    prefixed(NAME, &[name.as_str().as_bytes()])
}

/// The `n` keys of the entries named after `after` (all of them when `None`), as a range to
/// scan: a key is its name's UTF-8 bytes behind one tag byte, so sled's byte order of keys is
/// the order of names, and the scan starts at `after` instead of at the first entry.
pub(crate) fn names_after(after: Option<&str>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = match after {
        Some(after) => Bound::Excluded(prefixed(NAME, &[after.as_bytes()])),
        None => Bound::Included(NAME_PREFIX.to_vec()),
    };
    (start, Bound::Excluded(vec![NAME + 1]))
}

pub(crate) fn ref_key(hash: &PartHash, name: &PartName) -> Vec<u8> {
    prefixed(REF, &[hash.as_bytes(), name.as_str().as_bytes()])
}

pub(crate) fn ref_prefix(hash: &PartHash) -> Vec<u8> {
    prefixed(REF, &[hash.as_bytes()])
}

fn prefixed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|part| part.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(tag);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

const ENTRY_LEN: usize = PartHash::LEN + 8 + 1 + 1 + 8 * 3;

pub(crate) fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut value = Vec::with_capacity(ENTRY_LEN);
    value.extend_from_slice(entry.info.hash.as_bytes());
    value.extend_from_slice(&entry.info.size.to_le_bytes());
    value.push(entry.info.kind.code());
    value.push(u8::from(entry.shared));
    value.extend_from_slice(&encode_body_at(entry.record));
    value
}

/// Decodes an `n` entry's key and value.
///
/// # Errors
/// [`StoreError::BadIndexEntry`] when the key or value is malformed.
pub(crate) fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry, StoreError> {
    let name = key
        .strip_prefix(&NAME_PREFIX)
        .ok_or_else(|| bad_key(key, "not an entry key"))
        .and_then(|raw| {
            PartName::from_bytes(raw).map_err(|_| bad_key(key, "not a valid part name"))
        })?;
    if value.len() != ENTRY_LEN {
        return Err(bad_key(key, "entry of the wrong length"));
    }
    let (hash, rest) = value.split_at(PartHash::LEN);
    let (size, rest) = rest.split_at(8);
    let (codes, record) = rest.split_at(2);
    let hash = PartHash::from_bytes(hash.try_into().expect("split at the hash length"));
    let size = u64::from_le_bytes(size.try_into().expect("split at 8 bytes"));
    check_size(name.as_str(), size)?;
    let kind = PartKind::from_code(codes[0]).ok_or_else(|| bad_key(key, "unknown part kind"))?;
    let shared = match codes[1] {
        0 => false,
        1 => true,
        _ => return Err(bad_key(key, "unknown body placement")),
    };
    let [pack, offset, len] = u64s(record).ok_or_else(|| bad_key(key, "bad record location"))?;
    Ok(Entry {
        info: PartInfo {
            name,
            size,
            hash,
            kind,
        },
        shared,
        record: BodyAt { pack, offset, len },
    })
}

pub(crate) fn tomb_key(name: &PartName) -> Vec<u8> {
    prefixed(TOMB, &[name.as_str().as_bytes()])
}

/// Decodes a location value (`b` and `t` keys).
///
/// # Errors
/// [`StoreError::BadIndexEntry`].
pub(crate) fn decode_at(key: &[u8], value: &[u8]) -> Result<BodyAt, StoreError> {
    let [pack, offset, len] = u64s(value).ok_or_else(|| bad_key(key, "bad location"))?;
    Ok(BodyAt { pack, offset, len })
}

/// Decodes a `u64` value (`s` and `v` keys).
///
/// # Errors
/// [`StoreError::BadIndexEntry`].
pub(crate) fn decode_u64(key: &[u8], value: &[u8]) -> Result<u64, StoreError> {
    u64s::<1>(value)
        .map(|[n]| n)
        .ok_or_else(|| bad_key(key, "not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_entry() -> Entry {
        Entry {
            info: PartInfo {
                name: PartName::new("part2.txt").unwrap(),
                size: 5,
                hash: PartHash::of(b"hello"),
                kind: PartKind::Manifest,
            },
            shared: true,
            record: BodyAt {
                pack: 2,
                offset: 1 << 33,
                len: 81,
            },
        }
    }

    #[test]
    fn entries_round_trip() {
        let entry = sample_entry();
        let key = name_key(&entry.info.name);
        assert_eq!(decode_entry(&key, &encode_entry(&entry)).unwrap(), entry);
        assert_eq!(entry.own_body().offset, (1 << 33) + 81);
    }

    /// Entry keys sort as their names do, and a range after a name (held or not, valid or
    /// not) holds exactly the names greater than it.
    #[test]
    fn name_keys_sort_as_names() {
        let mut names: Vec<PartName> = ["a", "a0", "aa", "b", "B", "z", "é", "日本", "~x", "a b"]
            .into_iter()
            .map(|text| PartName::new(text).unwrap())
            .collect();
        names.sort();
        let mut keys: Vec<Vec<u8>> = names.iter().map(name_key).collect();
        keys.sort();
        assert_eq!(keys, names.iter().map(name_key).collect::<Vec<_>>());
        for after in [
            None,
            Some("a"),
            Some("a00"),
            Some("../x"),
            Some("\u{10FFFF}"),
        ] {
            let range = names_after(after);
            let in_range: Vec<&PartName> = names
                .iter()
                .filter(|name| std::ops::RangeBounds::contains(&range, &name_key(name)))
                .collect();
            let expected: Vec<&PartName> = names
                .iter()
                .filter(|name| after.is_none_or(|after| name.as_str() > after))
                .collect();
            assert_eq!(in_range, expected, "after {after:?}");
        }
        let other_keys = [
            body_key(&PartHash::of(b"x")),
            pack_key(1),
            b"r".to_vec(),
            tomb_key(&names[0]),
            SEQ_KEY.to_vec(),
            FORMAT_KEY.to_vec(),
        ];
        for key in other_keys {
            assert!(!std::ops::RangeBounds::contains(&names_after(None), &key));
        }
    }

    #[test]
    fn body_locations_and_pack_states_round_trip() {
        let hash = PartHash::of(b"x");
        let at = BodyAt {
            pack: 3,
            offset: 1 << 33,
            len: 7,
        };
        assert_eq!(
            decode_body_at(&body_key(&hash), &encode_body_at(at)).unwrap(),
            (hash, at)
        );
        let state = PackState { len: 9, dead: 4 };
        assert_eq!(
            decode_pack_state(&pack_key(3), &encode_pack_state(state)).unwrap(),
            (3, state)
        );
        assert!(decode_body_at(&body_key(&hash), &[0; 23]).is_err());
        assert!(decode_pack_state(b"p\x01", &encode_pack_state(state)).is_err());
    }

    #[test]
    fn malformed_records_are_errors() {
        let entry = sample_entry();
        let key = name_key(&entry.info.name);
        let value = encode_entry(&entry);
        assert!(decode_entry(&key, &value[1..]).is_err());
        for at in [PartHash::LEN + 8, PartHash::LEN + 9] {
            let mut damaged = value.clone();
            damaged[at] = 9;
            assert!(decode_entry(&key, &damaged).is_err(), "byte {at}");
        }
        assert!(decode_entry(b"n../x", &value).is_err());
        assert!(decode_u64(SEQ_KEY, &[0; 7]).is_err());
    }
}
