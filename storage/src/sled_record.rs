//! The keys and values of the sled index.
//!
//! One sled tree holds three key spaces, so a single atomic `Batch` can change all of them:
//!
//! ```text
//! n <name>              -> <hash: 32> <size: u64 LE> <location: u8>   the entry
//! r <hash: 32> <name>   -> (empty)                                   who refers to a hash
//! b <hash: 32>          -> <bytes>                                   a small body, inline
//! ```
//!
//! The `r` keys make "does any other name still use this body?" a prefix scan rather than a
//! scan of every entry.

use crate::{PartHash, PartInfo, PartName, StoreError, check_size};

const NAME: u8 = b'n';
const REF: u8 = b'r';
const INLINE: u8 = b'b';

/// Where an entry's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// In the index under the `b` key; for bodies small enough that a file would cost more.
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

pub(crate) fn inline_key(hash: &PartHash) -> Vec<u8> {
    prefixed(INLINE, &[hash.as_bytes()])
}

pub(crate) const INLINE_PREFIX: [u8; 1] = [INLINE];

/// The hash in an inline body key.
pub(crate) fn hash_of_inline_key(key: &[u8]) -> Option<PartHash> {
    let bytes: [u8; PartHash::LEN] = key.get(1..)?.try_into().ok()?;
    Some(PartHash::from_bytes(bytes))
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

const RECORD_LEN: usize = PartHash::LEN + 8 + 1;

pub(crate) fn encode(hash: &PartHash, size: u64, location: Location) -> [u8; RECORD_LEN] {
    let mut record = [0; RECORD_LEN];
    record[..PartHash::LEN].copy_from_slice(hash.as_bytes());
    record[PartHash::LEN..RECORD_LEN - 1].copy_from_slice(&size.to_le_bytes());
    record[RECORD_LEN - 1] = location as u8;
    record
}

/// Decodes an `n` entry.
///
/// # Errors
/// [`StoreError::BadIndexEntry`] when the key or value is malformed.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<(PartInfo, Location), StoreError> {
    let bad = |reason| StoreError::BadIndexEntry {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let name = key
        .strip_prefix(&NAME_PREFIX)
        .ok_or_else(|| bad("not an entry key"))
        .and_then(|raw| PartName::from_bytes(raw).map_err(|_| bad("not a valid part name")))?;
    let record: &[u8; RECORD_LEN] = value.try_into().map_err(|_| bad("wrong record length"))?;
    let hash = PartHash::from_bytes(record[..PartHash::LEN].try_into().expect("fixed split"));
    let size = u64::from_le_bytes(
        record[PartHash::LEN..RECORD_LEN - 1]
            .try_into()
            .expect("fixed split"),
    );
    check_size(name.as_str(), size)?;
    let location = match record[RECORD_LEN - 1] {
        0 => Location::Inline,
        1 => Location::File,
        _ => return Err(bad("unknown body location")),
    };
    Ok((PartInfo { name, size, hash }, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let name = PartName::new("part2.txt").unwrap();
        let hash = PartHash::of(b"hello");
        let value = encode(&hash, 5, Location::File);
        let (info, location) = decode(&name_key(&name), &value).unwrap();
        assert_eq!(
            info,
            PartInfo {
                name,
                size: 5,
                hash
            }
        );
        assert_eq!(location, Location::File);
    }

    #[test]
    fn malformed_records_are_errors() {
        let key = name_key(&PartName::new("x").unwrap());
        assert!(decode(&key, b"short").is_err());
        let mut value = encode(&PartHash::of(b""), 0, Location::Inline);
        value[RECORD_LEN - 1] = 9;
        assert!(decode(&key, &value).is_err());
        assert!(decode(b"n../x", &encode(&PartHash::of(b""), 0, Location::Inline)).is_err());
    }
}
