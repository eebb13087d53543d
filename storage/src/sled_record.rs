//! The keys and values of the sled index.
//!
//! One sled tree holds every key space, so a single atomic `Batch` can change them together:
//!
//! ```text
//! n <name>              -> <hash: 32> <size: u64 LE> <location: u8> <kind: u8> [<bytes> if inline]
//! r <hash: 32> <name>   -> (empty)     one per entry whose body is in a pack: who uses it
//! b <hash: 32>          -> <pack: u64 LE> <offset: u64 LE> <len: u64 LE>   where it is
//! p <pack: u64 BE>      -> <committed length: u64 LE> <dead bytes: u64 LE>
//! ```
//!
//! A small body lives inside its own entry, so storing a small part is one sled insert: measured
//! on these machines, one insert per 1 KiB part ran at 67-83k parts/s where an entry, a
//! reference and a separately keyed body ran at 26-29k. The price is that identical small
//! bodies under several names are kept once per name; bodies in packs are shared, and the `r`
//! keys make "does another name still use this body?" a prefix scan.

use std::ops::Bound;

use crate::packs::{BodyAt, PackState};
use crate::{PartHash, PartInfo, PartKind, PartName, StoreError, check_size};

const NAME: u8 = b'n';
const REF: u8 = b'r';
const BODY: u8 = b'b';
const PACK: u8 = b'p';

/// Where an entry's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// After the entry's header, in the index itself.
    Inline = 0,
    /// In a pack, found through the body's `b` key.
    Packed = 1,
}

pub(crate) const NAME_PREFIX: [u8; 1] = [NAME];
pub(crate) const BODY_PREFIX: [u8; 1] = [BODY];
pub(crate) const PACK_PREFIX: [u8; 1] = [PACK];

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

/// Length of an entry's header, before any inline bytes.
pub(crate) const HEADER_LEN: usize = PartHash::LEN + 8 + 1 + 1;

/// An entry whose body is in a pack.
pub(crate) fn encode_packed(info: &PartInfo) -> Vec<u8> {
    encode(info, Location::Packed, &[])
}

/// An entry carrying its body.
pub(crate) fn encode_inline(info: &PartInfo, bytes: &[u8]) -> Vec<u8> {
    encode(info, Location::Inline, bytes)
}

fn encode(info: &PartInfo, location: Location, inline: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + inline.len());
    value.extend_from_slice(info.hash.as_bytes());
    value.extend_from_slice(&info.size.to_le_bytes());
    value.push(location as u8);
    value.push(info.kind.code());
    value.extend_from_slice(inline);
    value
}

/// Decodes an `n` entry's key and header; inline bytes, if any, are `value[HEADER_LEN..]`.
///
/// # Errors
/// [`StoreError::BadIndexEntry`] when the key or header is malformed.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<(PartInfo, Location), StoreError> {
    let bad = |reason| StoreError::BadIndexEntry {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let name = key
        .strip_prefix(&NAME_PREFIX)
        .ok_or_else(|| bad("not an entry key"))
        .and_then(|raw| PartName::from_bytes(raw).map_err(|_| bad("not a valid part name")))?;
    let header: &[u8; HEADER_LEN] = value
        .get(..HEADER_LEN)
        .and_then(|header| header.try_into().ok())
        .ok_or_else(|| bad("entry shorter than its header"))?;
    let (hash, rest) = header.split_at(PartHash::LEN);
    let (size, codes) = rest.split_at(8);
    let [location, kind] = codes else {
        unreachable!("the header ends with two code bytes")
    };
    let hash = PartHash::from_bytes(hash.try_into().expect("split at the hash length"));
    let size = u64::from_le_bytes(size.try_into().expect("split at 8 bytes"));
    check_size(name.as_str(), size)?;
    let location = match location {
        0 => Location::Inline,
        1 => Location::Packed,
        _ => return Err(bad("unknown body location")),
    };
    let kind = PartKind::from_code(*kind).ok_or_else(|| bad("unknown part kind"))?;
    Ok((
        PartInfo {
            name,
            size,
            hash,
            kind,
        },
        location,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VerifiedPart;

    #[test]
    fn entries_round_trip() {
        let name = PartName::new("part2.txt").unwrap();
        let hash = PartHash::of(b"hello");
        let expected = PartInfo {
            name: name.clone(),
            size: 5,
            hash,
            kind: PartKind::Manifest,
        };

        let (info, location) = decode(&name_key(&name), &encode_packed(&expected)).unwrap();
        assert_eq!((info, location), (expected.clone(), Location::Packed));

        let value = encode_inline(&expected, b"hello");
        let (info, location) = decode(&name_key(&name), &value).unwrap();
        assert_eq!((info, location), (expected, Location::Inline));
        assert_eq!(&value[HEADER_LEN..], b"hello");
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
        let other_keys = [body_key(&PartHash::of(b"x")), pack_key(1), b"r".to_vec()];
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
        let key = name_key(&PartName::new("x").unwrap());
        assert!(decode(&key, b"short").is_err());
        let empty = VerifiedPart::hashing(PartName::new("x").unwrap(), Vec::new()).unwrap();
        let mut value = encode_inline(&empty.info(), b"");
        value[HEADER_LEN - 1] = 9;
        assert!(decode(&key, &value).is_err());
        assert!(decode(b"n../x", &encode_inline(&empty.info(), b"")).is_err());
        value[HEADER_LEN - 1] = 0;
        value[HEADER_LEN - 2] = 9;
        assert!(decode(&key, &value).is_err());
    }
}
