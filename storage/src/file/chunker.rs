//! Cutting a file into parts: one part when it fits in a chunk, otherwise its chunks, read one
//! at a time and never held whole, then its manifest.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::{FileError, FileSource, Manifest, PartHash, PartKind, PartName, VerifiedPart};

/// What a local file becomes.
pub enum LocalFile {
    /// Small enough for one part, read whole.
    Whole(VerifiedPart),
    /// Larger: read chunk by chunk.
    Chunked(Box<Chunker<File>>),
}

/// The name a file is reported under: `name` when given, else its file name as far as it can
/// be shown, so a file whose name is refused can still be named in the refusal.
pub fn display_name(path: &Path, name: Option<&PartName>) -> String {
    match name {
        Some(name) => name.to_string(),
        None => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    }
}

/// Opens the regular file at `path` as a part named `name` or its file name, cut into chunks of
/// `chunk_size` when it is larger.
///
/// # Errors
/// [`FileError`] for a name that breaks the naming rules, anything but a regular file (a FIFO
/// would block, a device or a `/proc` file has no real size), and read failures.
pub fn open_file(source: &FileSource, chunk_size: u64) -> Result<LocalFile, FileError> {
    let (path, name) = (source.path.as_path(), source.name.as_ref());
    let name = match name {
        Some(name) => name.clone(),
        None => {
            let file_name = path.file_name().ok_or_else(|| FileError::NoFileName {
                path: path.to_owned(),
            })?;
            PartName::from_bytes(file_name.as_encoded_bytes())?
        }
    };
    if name.is_chunk() {
        return Err(FileError::ReservedName);
    }
    let file = open_regular(path, source.follows_links())?;
    let file_size = file
        .metadata()
        .map_err(|source| FileError::Open {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut chunker = Chunker::new(file, name, file_size, chunk_size);
    if file_size > chunk_size {
        return Ok(LocalFile::Chunked(Box::new(chunker)));
    }
    let bytes = chunker.read_exactly(file_size)?;
    Ok(LocalFile::Whole(VerifiedPart::hashing(
        chunker.name,
        bytes,
    )?))
}

/// Opens `path` for reading only if it is a regular file with a real size. The type is looked
/// at before the open (opening a FIFO blocks until a writer comes) and again on the open file
/// (non-blocking, so a swap between the two cannot block either).
fn open_regular(path: &Path, follow_links: bool) -> Result<File, FileError> {
    let open_error = |source| FileError::Open {
        path: path.to_owned(),
        source,
    };
    let (look, no_follow) = if follow_links {
        (std::fs::metadata(path), 0)
    } else {
        (std::fs::symlink_metadata(path), libc::O_NOFOLLOW)
    };
    check_regular(path, &look.map_err(open_error)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | no_follow)
        .open(path)
        .map_err(open_error)?;
    check_regular(path, &file.metadata().map_err(open_error)?)?;
    if let Some(kind) = pseudo_filesystem(&file) {
        return Err(FileError::NotRegular {
            path: path.to_owned(),
            what: kind,
        });
    }
    Ok(file)
}

fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), FileError> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    };
    Err(FileError::NotRegular {
        path: path.to_owned(),
        what,
    })
}

/// Whether `file` lives on a kernel pseudo-filesystem, whose files claim a size (often 0) that
/// has nothing to do with what reading them gives.
fn pseudo_filesystem(file: &File) -> Option<&'static str> {
    use std::os::fd::AsRawFd;
    const PROC: i64 = 0x9fa0;
    const SYSFS: i64 = 0x6265_6572;
    // SAFETY: an all-zero statfs is a valid value for fstatfs to overwrite.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes only into `fs`; the descriptor is open while `file` is borrowed.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return None;
    }
    match fs.f_type as i64 {
        PROC => Some("a /proc file (its size is not what reading it gives)"),
        SYSFS => Some("a /sys file (its size is not what reading it gives)"),
        _ => None,
    }
}

/// A reader of known size cut into chunks, in order; its manifest once they are all read.
pub struct Chunker<R> {
    reader: R,
    name: PartName,
    file_size: u64,
    chunk_size: u64,
    hashes: Vec<PartHash>,
    /// The whole file's hash, as the chunks go by.
    whole: blake3::Hasher,
    read: u64,
    /// A read failed: the iterator ends there.
    failed: bool,
}

impl<R: Read> Chunker<R> {
    /// Chunks of `reader`, which must yield exactly `file_size` bytes, for the file `name`.
    pub fn new(reader: R, name: PartName, file_size: u64, chunk_size: u64) -> Self {
        Self {
            reader,
            name,
            file_size,
            chunk_size: chunk_size.max(1),
            hashes: Vec::new(),
            whole: blake3::Hasher::new(),
            read: 0,
            failed: false,
        }
    }

    /// The file the chunks make up.
    pub fn name(&self) -> &PartName {
        &self.name
    }

    /// The manifest of the chunks read.
    ///
    /// # Errors
    /// When called before every chunk was read.
    pub fn manifest(self) -> Result<VerifiedPart, FileError> {
        let file_hash = PartHash::from_bytes(*self.whole.finalize().as_bytes());
        let manifest = Manifest::new(self.file_size, self.chunk_size, file_hash, self.hashes)?;
        Ok(VerifiedPart::hashing(self.name, manifest.encode())?.with_kind(PartKind::Manifest))
    }

    /// Reads exactly `len` more bytes; a reader that yields more or less than it promised is
    /// refused.
    fn read_exactly(&mut self, len: u64) -> Result<Vec<u8>, FileError> {
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        (&mut self.reader)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(FileError::Read)?;
        if bytes.len() as u64 != len {
            return Err(FileError::ChangedSize);
        }
        self.read += len;
        if self.read == self.file_size && self.reader.read(&mut [0]).is_ok_and(|more| more > 0) {
            return Err(FileError::ChangedSize);
        }
        Ok(bytes)
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = Result<VerifiedPart, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.chunk_size.min(self.file_size - self.read);
        if len == 0 || self.failed {
            return None;
        }
        let chunk = self.read_exactly(len).and_then(|bytes| {
            self.whole.update(&bytes);
            let chunk = VerifiedPart::chunk(bytes)?;
            self.hashes.push(chunk.hash());
            Ok(chunk)
        });
        self.failed = chunk.is_err();
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_becomes_chunks_and_a_manifest_that_describes_it() {
        let bytes: Vec<u8> = (0..10u8).collect();
        let name = PartName::new("ten.bin").unwrap();
        let mut chunker = Chunker::new(&bytes[..], name, 10, 4);
        let chunks: Vec<VerifiedPart> = chunker.by_ref().map(Result::unwrap).collect();
        assert_eq!(
            chunks.iter().map(VerifiedPart::size).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let manifest = Manifest::decode(chunker.manifest().unwrap().bytes()).unwrap();
        assert_eq!(manifest.file_hash(), PartHash::of(&bytes));
        assert_eq!(manifest.chunks().len(), 3);
    }

    #[test]
    fn a_reader_longer_or_shorter_than_promised_is_refused() {
        let name = PartName::new("x").unwrap();
        let short = Chunker::new(&b"abc"[..], name.clone(), 5, 4).collect::<Vec<_>>();
        assert!(matches!(short.last(), Some(Err(FileError::ChangedSize))));
        let long = Chunker::new(&b"abcdef"[..], name, 5, 4).collect::<Vec<_>>();
        assert!(matches!(long.last(), Some(Err(FileError::ChangedSize))));
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (dir.path(), "a directory"),
            (Path::new("/dev/zero"), "a character device"),
            (Path::new("/proc/self/status"), "a /proc file"),
        ] {
            let source = FileSource::named(path, PartName::new("n").unwrap());
            match open_file(&source, 1024) {
                Err(err @ FileError::NotRegular { .. }) => {
                    assert!(err.to_string().contains(what), "{err}")
                }
                Err(other) => panic!("{}: {other}", path.display()),
                Ok(_) => panic!("{} was opened", path.display()),
            }
        }
    }
}
