//! Manifests: a file larger than one chunk, as the ordered hashes of its chunks.
//!
//! A chunk is an ordinary part named by its hash (`b3-<hex>`, see [`PartName::chunk`]), so
//! equal chunks are stored once however many files share them, and a peer that already holds
//! a chunk is never sent it again: that is what makes an interrupted transfer resumable. The
//! manifest is a part of kind [`crate::PartKind::Manifest`], named by the file's name.
//!
//! ```text
//! "P2PM" | version: u16 LE | file size: u64 LE | chunk size: u64 LE | count: u64 LE
//!        | file hash: 32 bytes | root: 32 bytes | count x chunk hash: 32 bytes
//! ```
//!
//! The file hash is blake3 of the whole file, as `b3sum` prints it: what a user compares, and
//! what an assembled file is checked against before it is written under its name. The root is
//! blake3 over everything before it and the chunk hashes, so a manifest whose fields do not
//! belong together is refused on decoding.

use crate::{MAX_PART_SIZE, PartHash, PartName};

const MAGIC: [u8; 4] = *b"P2PM";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 8 + 8 + 8 + PartHash::LEN + PartHash::LEN;

/// Chunk size used when none is given: large enough that per-chunk costs vanish, small enough
/// that a resumed transfer repeats little.
pub const DEFAULT_CHUNK_SIZE: u64 = 1024 * 1024;

/// Why bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("not a manifest (bad magic or version)")]
    NotAManifest,
    #[error("chunk size {0} is outside 1..={MAX_PART_SIZE}")]
    BadChunkSize(u64),
    #[error("{count} chunks cannot make a file of {file_size} bytes in chunks of {chunk_size}")]
    WrongCount {
        count: u64,
        file_size: u64,
        chunk_size: u64,
    },
    #[error("the manifest is {len} bytes, not the {expected} its header promises")]
    WrongLength { len: usize, expected: usize },
    #[error("the root hash does not match the chunks")]
    BadRoot,
    #[error("the chunks assemble into a file hashing to {actual}, not the listed {expected}")]
    FileHashMismatch {
        expected: PartHash,
        actual: PartHash,
    },
}

/// A decoded, consistent manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    file_size: u64,
    chunk_size: u64,
    file_hash: PartHash,
    chunks: Vec<PartHash>,
}

impl Manifest {
    /// A manifest for a file of `file_size` bytes cut into `chunk_size` chunks.
    ///
    /// # Errors
    /// When the counts do not add up, as [`Manifest::decode`] would report.
    pub fn new(
        file_size: u64,
        chunk_size: u64,
        file_hash: PartHash,
        chunks: Vec<PartHash>,
    ) -> Result<Self, ManifestError> {
        check_shape(file_size, chunk_size, chunks.len() as u64)?;
        Ok(Self {
            file_size,
            chunk_size,
            file_hash,
            chunks,
        })
    }

    /// Decodes and checks a manifest.
    ///
    /// # Errors
    /// [`ManifestError`] for anything inconsistent.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let header = bytes.get(..HEADER_LEN).ok_or(ManifestError::NotAManifest)?;
        let (magic, rest) = header.split_at(4);
        let (version, rest) = rest.split_at(2);
        if magic != MAGIC || u16::from_le_bytes([version[0], version[1]]) != VERSION {
            return Err(ManifestError::NotAManifest);
        }
        let number = |at: usize| u64::from_le_bytes(rest[at..at + 8].try_into().expect("8 bytes"));
        let (file_size, chunk_size, count) = (number(0), number(8), number(16));
        check_shape(file_size, chunk_size, count)?;
        let file_hash = PartHash::from_bytes(rest[24..56].try_into().expect("32 bytes"));
        let root: [u8; PartHash::LEN] = rest[56..].try_into().expect("32 bytes");
        let body = &bytes[HEADER_LEN..];
        let expected = usize::try_from(count)
            .ok()
            .and_then(|count| count.checked_mul(PartHash::LEN))
            .ok_or(ManifestError::WrongLength {
                len: body.len(),
                expected: usize::MAX,
            })?;
        if body.len() != expected {
            return Err(ManifestError::WrongLength {
                len: body.len(),
                expected,
            });
        }
        let chunks = body
            .as_chunks::<{ PartHash::LEN }>()
            .0
            .iter()
            .map(|hash| PartHash::from_bytes(*hash))
            .collect();
        let manifest = Self {
            file_size,
            chunk_size,
            file_hash,
            chunks,
        };
        if manifest.root() != PartHash::from_bytes(root) {
            return Err(ManifestError::BadRoot);
        }
        Ok(manifest)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.chunks.len() * PartHash::LEN);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&self.file_size.to_le_bytes());
        bytes.extend_from_slice(&self.chunk_size.to_le_bytes());
        bytes.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        bytes.extend_from_slice(self.file_hash.as_bytes());
        bytes.extend_from_slice(self.root().as_bytes());
        for hash in &self.chunks {
            bytes.extend_from_slice(hash.as_bytes());
        }
        bytes
    }

    /// blake3 over the file size, the chunk size, the file hash and every chunk hash in order.
    pub fn root(&self) -> PartHash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.file_size.to_le_bytes());
        hasher.update(&self.chunk_size.to_le_bytes());
        hasher.update(self.file_hash.as_bytes());
        for hash in &self.chunks {
            hasher.update(hash.as_bytes());
        }
        PartHash::from_bytes(*hasher.finalize().as_bytes())
    }

    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// blake3 of the whole file.
    pub fn file_hash(&self) -> PartHash {
        self.file_hash
    }

    pub fn chunks(&self) -> &[PartHash] {
        &self.chunks
    }

    /// Length of chunk `index`: the chunk size, except for a shorter last chunk.
    pub fn chunk_len(&self, index: usize) -> u64 {
        let start = index as u64 * self.chunk_size;
        self.chunk_size.min(self.file_size - start)
    }

    /// Each chunk's name, hash and length, in file order.
    pub fn chunk_infos(&self) -> impl Iterator<Item = crate::PartInfo> + '_ {
        self.chunks
            .iter()
            .enumerate()
            .map(|(index, hash)| crate::PartInfo {
                name: PartName::chunk(hash),
                size: self.chunk_len(index),
                hash: *hash,
                kind: crate::PartKind::Plain,
            })
    }
}

fn check_shape(file_size: u64, chunk_size: u64, count: u64) -> Result<(), ManifestError> {
    if chunk_size == 0 || chunk_size > MAX_PART_SIZE {
        return Err(ManifestError::BadChunkSize(chunk_size));
    }
    if count != file_size.div_ceil(chunk_size) {
        return Err(ManifestError::WrongCount {
            count,
            file_size,
            chunk_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(file_size: u64, chunk_size: u64) -> Manifest {
        let count = file_size.div_ceil(chunk_size);
        let chunks = (0..count).map(|i| PartHash::of(&i.to_le_bytes())).collect();
        Manifest::new(file_size, chunk_size, PartHash::of(b"file"), chunks).unwrap()
    }

    #[test]
    fn chunk_lengths_cover_the_file() {
        let manifest = sample(10, 4);
        let lens: Vec<u64> = (0..3).map(|i| manifest.chunk_len(i)).collect();
        assert_eq!(lens, [4, 4, 2]);
        assert_eq!(sample(8, 4).chunk_len(1), 4);
        assert!(sample(0, 4).chunks().is_empty());
    }

    #[test]
    fn inconsistent_manifests_are_refused() {
        assert_eq!(
            Manifest::new(10, 4, PartHash::of(b""), vec![PartHash::of(b"")]).unwrap_err(),
            ManifestError::WrongCount {
                count: 1,
                file_size: 10,
                chunk_size: 4
            }
        );
        assert!(Manifest::new(1, 0, PartHash::of(b""), vec![]).is_err());
        let good = sample(10, 4).encode();
        let mut bad_root = good.clone();
        bad_root[30] ^= 1;
        assert_eq!(Manifest::decode(&bad_root), Err(ManifestError::BadRoot));
        let mut bad_chunk = good.clone();
        *bad_chunk.last_mut().unwrap() ^= 1;
        assert_eq!(Manifest::decode(&bad_chunk), Err(ManifestError::BadRoot));
        assert!(matches!(
            Manifest::decode(&good[..good.len() - 1]),
            Err(ManifestError::WrongLength { .. })
        ));
        assert_eq!(
            Manifest::decode(b"hello, this is a plain text file of some length"),
            Err(ManifestError::NotAManifest)
        );
    }

    proptest! {
        #[test]
        fn manifests_round_trip(file_size in 0u64..1 << 40, chunk_size in 1u64..1 << 28) {
            prop_assume!(file_size.div_ceil(chunk_size) < 4096);
            let manifest = sample(file_size, chunk_size);
            prop_assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
