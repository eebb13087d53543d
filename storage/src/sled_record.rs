//! The keys and values of the sled index.
//!
//! One sled tree holds two key spaces, so a single atomic `Batch` can change both:
//!
//! ```text
//! n <name>              -> <hash: 32> <size: u64 LE> <location: u8> [<bytes> if inline]
//! r <hash: 32> <name>   -> (empty)     one per entry whose body is a file: who uses it
//! ```
//!
//! A small body lives inside its own entry, so storing a small part is one sled insert: measured
//! on these machines, one insert per 1 KiB part ran at 67-83k parts/s where an entry, a
//! reference and a separately keyed body ran at 26-29k. The price is that identical small
//! bodies under several names are kept once per name; bodies stored as files are shared, and
//! the `r` keys make "does another name still use this file?" a prefix scan.

use crate::{PartHash, PartInfo, PartName, StoreError, check_size};

const NAME: u8 = b'n';
const REF: u8 = b'r';

/// Where an entry's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// After the entry's header, in the index itself.
    Inline = 0,
    /// In `bodies/<hash>`.
    File = 1,
}

pub(crate) const NAME_PREFIX: [u8; 1] = [NAME];

pub(crate) fn name_key(name: &PartName) -> Vec<u8> {
    prefixed(NAME, &[name.as_str().as_bytes()])
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
pub(crate) const HEADER_LEN: usize = PartHash::LEN + 8 + 1;

/// An entry whose body is a file.
pub(crate) fn encode_file(hash: &PartHash, size: u64) -> Vec<u8> {
    encode(hash, size, Location::File, &[])
}

/// An entry carrying its body.
pub(crate) fn encode_inline(hash: &PartHash, bytes: &[u8]) -> Vec<u8> {
    encode(hash, bytes.len() as u64, Location::Inline, bytes)
}

fn encode(hash: &PartHash, size: u64, location: Location, inline: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + inline.len());
    value.extend_from_slice(hash.as_bytes());
    value.extend_from_slice(&size.to_le_bytes());
    value.push(location as u8);
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
    let (size, location) = rest.split_at(8);
    let hash = PartHash::from_bytes(hash.try_into().expect("split at the hash length"));
    let size = u64::from_le_bytes(size.try_into().expect("split at 8 bytes"));
    check_size(name.as_str(), size)?;
    let location = match location {
        [0] => Location::Inline,
        [1] => Location::File,
        _ => return Err(bad("unknown body location")),
    };
    Ok((PartInfo { name, size, hash }, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let name = PartName::new("part2.txt").unwrap();
        let hash = PartHash::of(b"hello");
        let expected = PartInfo {
            name: name.clone(),
            size: 5,
            hash,
        };

        let (info, location) = decode(&name_key(&name), &encode_file(&hash, 5)).unwrap();
        assert_eq!((info, location), (expected.clone(), Location::File));

        let value = encode_inline(&hash, b"hello");
        let (info, location) = decode(&name_key(&name), &value).unwrap();
        assert_eq!((info, location), (expected, Location::Inline));
        assert_eq!(&value[HEADER_LEN..], b"hello");
    }

    #[test]
    fn malformed_records_are_errors() {
        let key = name_key(&PartName::new("x").unwrap());
        assert!(decode(&key, b"short").is_err());
        let mut value = encode_inline(&PartHash::of(b""), b"");
        value[HEADER_LEN - 1] = 9;
        assert!(decode(&key, &value).is_err());
        assert!(decode(b"n../x", &encode_inline(&PartHash::of(b""), b"")).is_err());
    }
}
