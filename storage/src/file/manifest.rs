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
//!
//! Manifests are bounded, so that the file one claims is justified by the bytes a store holds:
//! at most [`MAX_MANIFEST_CHUNKS`] chunks, and no chunk listed more than [`MAX_CHUNK_REPEATS`]
//! times. Without the second rule one chunk of 1 MiB and a 33 MB manifest listing it
//! 1,048,576 times make a 1 TiB file that an export would write out in full.

use std::collections::HashMap;

use crate::{MAX_PART_SIZE, PartHash, PartName};

const MAGIC: [u8; 4] = *b"P2PM";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 8 + 8 + 8 + PartHash::LEN + PartHash::LEN;

/// Chunk size used when none is given: large enough that per-chunk costs vanish, small enough
/// that a resumed transfer repeats little.
pub const DEFAULT_CHUNK_SIZE: u64 = 1024 * 1024;

/// Most chunks one manifest may list: 1,048,576, a file of 1 TiB at the default chunk size.
/// The manifest is then 32 MiB, well inside the part size limit, and checking that the store
/// holds every chunk is a million index lookups, not eight.
pub const MAX_MANIFEST_CHUNKS: u64 = 1 << 20;

/// Most times one chunk may be listed in a manifest: 65,536, so a file may be up to 64 GiB of
/// zeros (a fresh disk image) at the default 1 MiB chunk size, while the size a manifest
/// claims stays within 65,536 times the distinct chunk bytes the store holds for it. That
/// bounds what a peer gains by repeating a chunk: a file claimed is never more than 65,536
/// times what was sent, where without a bound one 1 MiB chunk made a 1 TiB file (a "manifest
/// bomb"). Files with longer runs of equal chunks can still be stored with a larger chunk size.
pub const MAX_CHUNK_REPEATS: u64 = 65_536;

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
    #[error("{count} chunks, the limit is {MAX_MANIFEST_CHUNKS}")]
    TooManyChunks { count: u64 },
    #[error(
        "chunk {hash} is listed {times} times, the limit is {MAX_CHUNK_REPEATS}: \
         the file claims far more bytes than its chunks hold"
    )]
    ChunkRepeated { hash: PartHash, times: u64 },
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
        check_repeats(&chunks)?;
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
        check_repeats(&manifest.chunks)?;
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

    /// Length of every chunk but the last.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
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

/// The checks on the header's numbers, before anything is allocated for the chunks.
fn check_shape(file_size: u64, chunk_size: u64, count: u64) -> Result<(), ManifestError> {
    if chunk_size == 0 || chunk_size > MAX_PART_SIZE {
        return Err(ManifestError::BadChunkSize(chunk_size));
    }
    if count > MAX_MANIFEST_CHUNKS {
        return Err(ManifestError::TooManyChunks { count });
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

/// [`ManifestError::ChunkRepeated`] for the first chunk listed more than
/// [`MAX_CHUNK_REPEATS`] times. A manifest with no more chunks than that cannot break the rule,
/// so only larger ones are counted.
fn check_repeats(chunks: &[PartHash]) -> Result<(), ManifestError> {
    if chunks.len() as u64 <= MAX_CHUNK_REPEATS {
        return Ok(());
    }
    let mut times: HashMap<&PartHash, u64> = HashMap::new();
    for hash in chunks {
        let seen = times.entry(hash).or_default();
        *seen += 1;
        if *seen > MAX_CHUNK_REPEATS {
            return Err(ManifestError::ChunkRepeated {
                hash: *hash,
                times: chunks.iter().filter(|other| *other == hash).count() as u64,
            });
        }
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

    /// Encodes a manifest as a peer could, whatever the bounds: the constructor would refuse.
    fn unchecked(chunk_size: u64, chunks: Vec<PartHash>) -> Vec<u8> {
        Manifest {
            file_size: chunks.len() as u64 * chunk_size,
            chunk_size,
            file_hash: PartHash::of(b"file"),
            chunks,
        }
        .encode()
    }

    #[test]
    fn a_chunk_may_repeat_up_to_the_limit() {
        let zeros = PartHash::of(&[0; 1 << 20]);
        let limit = MAX_CHUNK_REPEATS as usize;
        let disk_image = unchecked(1 << 20, vec![zeros; limit]);
        assert_eq!(Manifest::decode(&disk_image).unwrap().file_size(), 64 << 30);

        let mut alternating = vec![zeros; limit];
        alternating.extend(vec![PartHash::of(b"data"); limit]);
        assert!(Manifest::decode(&unchecked(1 << 20, alternating)).is_ok());

        let mut bomb = vec![zeros; limit];
        bomb.insert(limit / 2, PartHash::of(b"data"));
        bomb.push(zeros);
        let refused = ManifestError::ChunkRepeated {
            hash: zeros,
            times: MAX_CHUNK_REPEATS + 1,
        };
        assert_eq!(
            Manifest::decode(&unchecked(1 << 20, bomb.clone())),
            Err(refused.clone())
        );
        assert_eq!(
            Manifest::new(bomb.len() as u64, 1, PartHash::of(b"file"), bomb),
            Err(refused)
        );
    }

    #[test]
    fn chunk_counts_are_bounded_before_anything_is_read() {
        let count = MAX_MANIFEST_CHUNKS + 1;
        let mut header = unchecked(1, Vec::new());
        header[6..14].copy_from_slice(&count.to_le_bytes());
        header[22..30].copy_from_slice(&count.to_le_bytes());
        assert_eq!(
            Manifest::decode(&header),
            Err(ManifestError::TooManyChunks { count })
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
