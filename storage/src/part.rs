//! The values that flow in and out of a store: verified parts going in, descriptions coming out.

use serde::{Deserialize, Serialize};

use crate::{PartHash, PartName, StoreError};

/// Largest part a store accepts, in bytes. A part is held in memory whole while it is verified
/// and written, so this bounds the memory one part can take.
pub const MAX_PART_SIZE: u64 = 256 * 1024 * 1024;

/// A part whose bytes are known to hash to its hash: the only thing a store will put.
///
/// Building one is where a part is verified, so no backend can store bytes unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPart {
    name: PartName,
    hash: PartHash,
    kind: PartKind,
    bytes: Vec<u8>,
}

impl VerifiedPart {
    /// Checks that `bytes` hash to `expected`, as a part offered by someone else must.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] past [`MAX_PART_SIZE`], [`StoreError::HashMismatch`] when the
    /// bytes are not the ones promised.
    pub fn new(name: PartName, expected: PartHash, bytes: Vec<u8>) -> Result<Self, StoreError> {
        let part = Self::hashing(name, bytes)?;
        if part.hash == expected {
            Ok(part)
        } else {
            Err(StoreError::HashMismatch {
                name: part.name,
                expected,
                actual: part.hash,
            })
        }
    }

    /// Hashes local bytes that are their own source of truth (a file being imported).
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] past [`MAX_PART_SIZE`]; [`StoreError::ChunkNameMismatch`] for a
    /// chunk's name (`b3-<hash>`) over bytes with another hash, which would shadow the real
    /// chunk.
    pub fn hashing(name: PartName, bytes: Vec<u8>) -> Result<Self, StoreError> {
        check_size(name.as_str(), bytes.len() as u64)?;
        let hash = PartHash::of(&bytes);
        if let Some(promised) = name.chunk_hash()
            && promised != hash
        {
            return Err(StoreError::ChunkNameMismatch { name, actual: hash });
        }
        Ok(Self {
            name,
            hash,
            kind: PartKind::Plain,
            bytes,
        })
    }

    /// A chunk of a file: bytes named by their own hash, hashed once.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] past [`MAX_PART_SIZE`].
    pub fn chunk(bytes: Vec<u8>) -> Result<Self, StoreError> {
        check_size("a chunk", bytes.len() as u64)?;
        let hash = PartHash::of(&bytes);
        Ok(Self {
            name: PartName::chunk(&hash),
            hash,
            kind: PartKind::Plain,
            bytes,
        })
    }

    /// The same part, recorded as `kind`.
    #[must_use]
    pub fn with_kind(mut self, kind: PartKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn kind(&self) -> PartKind {
        self.kind
    }

    pub fn name(&self) -> &PartName {
        &self.name
    }

    pub fn hash(&self) -> PartHash {
        self.hash
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes a store read back and just hashed to `info.hash`: what `get_part` returns.
    pub(crate) fn checked_on_read(info: &PartInfo, bytes: Vec<u8>) -> Self {
        Self {
            name: info.name.clone(),
            hash: info.hash,
            kind: info.kind,
            bytes,
        }
    }

    /// The verified bytes, to send or write elsewhere without a copy.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn info(&self) -> PartInfo {
        PartInfo {
            name: self.name.clone(),
            size: self.size(),
            hash: self.hash,
            kind: self.kind,
        }
    }
}

/// Refuses a size past [`MAX_PART_SIZE`] before anything of that size is allocated.
///
/// # Errors
/// [`StoreError::TooLarge`].
pub fn check_size(name: &str, size: u64) -> Result<(), StoreError> {
    if size > MAX_PART_SIZE {
        return Err(StoreError::TooLarge {
            name: name.to_owned(),
            size,
            max: MAX_PART_SIZE,
        });
    }
    Ok(())
}

/// What a store holds under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub name: PartName,
    pub size: u64,
    pub hash: PartHash,
    #[serde(default, skip_serializing_if = "PartKind::is_plain")]
    pub kind: PartKind,
}

/// What a part's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    /// Bytes to export as they are.
    #[default]
    Plain,
    /// A file's manifest: the ordered hashes of the chunks that make it up.
    Manifest,
}

impl PartKind {
    pub fn is_plain(&self) -> bool {
        *self == Self::Plain
    }

    /// The kind's code in records and on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::Plain => 0,
            Self::Manifest => 1,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Plain),
            1 => Some(Self::Manifest),
            _ => None,
        }
    }
}

/// What happened to one part of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The part is new and now durable.
    Stored,
    /// The name already held these exact bytes; nothing was written.
    AlreadyHad,
    /// The name held other bytes and the caller asked to replace them.
    Replaced { previous: PartHash },
    /// The name already held these bytes, but their body was gone or known to be damaged
    /// (see [`crate::PartStore::known_damaged`]); it is written again and now durable.
    Repaired,
}

/// What to do when a name already holds different bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Keep the existing entry and report [`StoreError::Conflict`].
    #[default]
    Refuse,
    /// Point the name at the new bytes.
    Replace,
}

impl OnConflict {
    /// `Replace` when `replace`, else `Refuse`.
    pub fn when(replace: bool) -> Self {
        if replace { Self::Replace } else { Self::Refuse }
    }
}

/// Totals over every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StoreStats {
    /// Number of names held.
    pub parts: u64,
    /// Sum of the sizes of the parts, counting shared bodies once per name.
    pub bytes: u64,
}
