//! Reading a local file as parts, shared by `import` and `send`: one part when it fits in a
//! chunk, otherwise its chunks, read one at a time, then its manifest.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use storage::{Manifest, PartHash, PartKind, PartName, VerifiedPart};

/// A part that could not even be read: its display name and why.
pub struct Rejected(pub String, pub String);

/// What a local file becomes.
pub enum LocalFile {
    /// Small enough for one part, read whole.
    Whole(VerifiedPart),
    /// Larger: read chunk by chunk, never whole.
    Chunked(Box<Chunks>),
}

/// Opens `path` as a part named `name` or its file name; any failure is a rejection of that
/// file alone.
pub fn open(path: &Path, name: Option<&PartName>, chunk_size: u64) -> Result<LocalFile, Rejected> {
    let display = match name {
        Some(name) => name.to_string(),
        None => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    };
    let reject = |reason: String| Rejected(display.clone(), reason);
    let name = match name {
        Some(name) => name.clone(),
        None => {
            let file_name = path
                .file_name()
                .ok_or_else(|| reject(format!("{} has no file name", path.display())))?;
            PartName::from_bytes(file_name.as_encoded_bytes()).map_err(|e| reject(e.to_string()))?
        }
    };
    if name.is_chunk() {
        return Err(reject(format!(
            "names of the form {}<hash> are reserved for the chunks of files",
            storage::CHUNK_PREFIX
        )));
    }
    let file =
        File::open(path).map_err(|e| reject(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| reject(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(reject(format!("{} is a directory", path.display())));
    }
    let mut chunks = Chunks {
        file,
        name,
        display,
        file_size: meta.len(),
        chunk_size,
        hashes: Vec::new(),
        whole: blake3::Hasher::new(),
        read: 0,
    };
    if chunks.file_size > chunk_size {
        return Ok(LocalFile::Chunked(Box::new(chunks)));
    }
    let bytes = chunks.read_exactly(chunks.file_size)?;
    let name = chunks.name;
    VerifiedPart::hashing(name, bytes)
        .map(LocalFile::Whole)
        .map_err(|e| Rejected(chunks.display, e.to_string()))
}

/// A large file's chunks, read in order; its manifest once they are all read.
pub struct Chunks {
    file: File,
    name: PartName,
    display: String,
    file_size: u64,
    chunk_size: u64,
    hashes: Vec<PartHash>,
    /// The whole file's hash, as the chunks go by.
    whole: blake3::Hasher,
    read: u64,
}

impl Chunks {
    pub fn name(&self) -> &PartName {
        &self.name
    }

    /// The manifest of the chunks read.
    ///
    /// # Errors
    /// When called before every chunk was read.
    pub fn manifest(self) -> Result<VerifiedPart, Rejected> {
        let reject = |reason: String| Rejected(self.display.clone(), reason);
        let file_hash = PartHash::from_bytes(*self.whole.finalize().as_bytes());
        let manifest = Manifest::new(
            self.file_size,
            self.chunk_size,
            file_hash,
            self.hashes.clone(),
        )
        .map_err(|e| reject(e.to_string()))?;
        VerifiedPart::hashing(self.name.clone(), manifest.encode())
            .map(|part| part.with_kind(PartKind::Manifest))
            .map_err(|e| reject(e.to_string()))
    }

    /// Reads exactly `len` more bytes; a file that changes size while it is read is refused.
    fn read_exactly(&mut self, len: u64) -> Result<Vec<u8>, Rejected> {
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        (&self.file)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| Rejected(self.display.clone(), format!("cannot read it: {e}")))?;
        if bytes.len() as u64 != len {
            return Err(Rejected(
                self.display.clone(),
                "the file changed size while it was read".into(),
            ));
        }
        self.read += len;
        if self.read == self.file_size && self.file.read(&mut [0]).is_ok_and(|more| more > 0) {
            return Err(Rejected(
                self.display.clone(),
                "the file changed size while it was read".into(),
            ));
        }
        Ok(bytes)
    }
}

impl Iterator for Chunks {
    type Item = Result<VerifiedPart, Rejected>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.chunk_size.min(self.file_size - self.read);
        if len == 0 {
            return None;
        }
        Some(self.read_exactly(len).and_then(|bytes| {
            self.whole.update(&bytes);
            let chunk = VerifiedPart::chunk(bytes)
                .map_err(|e| Rejected(self.display.clone(), e.to_string()))?;
            self.hashes.push(chunk.hash());
            Ok(chunk)
        }))
    }
}
