//! Importing local files into a store: read and hashed ahead on a second thread while the store
//! writes and syncs, committed in batches (one durable sync per batch), a large file's chunks
//! durable before its manifest, and each file's fate reported in the order the files were given.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;

use crate::file::chunker::{self, LocalFile};
use crate::{DEFAULT_CHUNK_SIZE, FileError, OnConflict, PartName, PartStore, PutOutcome};
use crate::{StoreError, VerifiedPart};

/// A batch is committed once it holds this many bytes or parts: large enough that the sync is
/// amortised, small enough to bound memory and to report progress steadily.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
const BATCH_PARTS: usize = 1024;

/// Parts read and hashed ahead of the store; bounds the memory held ahead.
const READ_AHEAD: usize = 8;

/// A file to import, and the name to store it under (its file name when `None`).
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    pub name: Option<PartName>,
    /// Whether a symbolic link at `path` is read through, as `cp` reads it.
    follow_links: bool,
}

impl FileSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            name: None,
            follow_links: true,
        }
    }

    pub fn named(path: impl Into<PathBuf>, name: PartName) -> Self {
        Self {
            path: path.into(),
            name: Some(name),
            follow_links: true,
        }
    }

    /// Refuses a symbolic link at the path, even one swapped in after it was looked at: for
    /// a directory others can write to, whose links could point anywhere.
    pub fn not_following_links(self) -> Self {
        Self {
            follow_links: false,
            ..self
        }
    }

    pub(crate) fn follows_links(&self) -> bool {
        self.follow_links
    }

    /// The name the file is reported under, even when it cannot be stored under it.
    pub fn display_name(&self) -> String {
        chunker::display_name(&self.path, self.name.as_ref())
    }
}

/// How files are imported.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ImportOptions {
    /// What to do when a name already holds other bytes.
    pub on_conflict: OnConflict,
    /// Files larger than this become chunks of this size plus a manifest.
    pub chunk_size: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            on_conflict: OnConflict::Refuse,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ImportOptions {
    pub fn on_conflict(self, on_conflict: OnConflict) -> Self {
        Self {
            on_conflict,
            ..self
        }
    }

    pub fn chunk_size(self, chunk_size: u64) -> Self {
        Self { chunk_size, ..self }
    }
}

/// One file's fate: its display name, and what the store did with it.
pub type FileOutcome = (String, Result<PutOutcome, FileError>);

/// Imports `files` into `store`, handing each file's outcome to `on_file` in order. A file
/// that fails is reported and the others go on.
///
/// # Errors
/// Only when a batch cannot be made durable; files reported before that are settled.
pub fn import_files(
    store: &dyn PartStore,
    files: &[FileSource],
    options: ImportOptions,
    mut on_file: impl FnMut(FileOutcome),
) -> Result<(), StoreError> {
    let mut batch = Batch::new(store, options.on_conflict);
    std::thread::scope(|scope| {
        let (parts, read) = std::sync::mpsc::sync_channel(READ_AHEAD);
        scope.spawn(move || {
            for file in files {
                if read_file(file, options.chunk_size, &parts).is_err() {
                    break;
                }
            }
        });
        for item in read {
            match item {
                Read::Whole(name, part) => {
                    if part.is_err() {
                        // A large file that failed mid-read may have chunks queued: commit
                        // them now, so their failures are not charged to the next file.
                        batch.commit(&mut on_file)?;
                    }
                    batch.chunk_failure = None;
                    batch.chunk_repaired = false;
                    batch.push(name, part);
                }
                Read::Chunk(chunk) => batch.push_quiet(chunk),
                Read::Manifest(name, manifest) => {
                    // A file whose chunks could not all be stored gets no manifest (the store
                    // would refuse it too: its chunks go first).
                    batch.commit(&mut on_file)?;
                    match batch.chunk_failure.take() {
                        Some(failure) => batch.push(name, Err(failure)),
                        None => batch.push_file(name, manifest),
                    }
                }
            }
            if batch.is_full() {
                batch.commit(&mut on_file)?;
            }
        }
        batch.commit(&mut on_file)
    })
}

/// What the reading thread hands over, in order.
enum Read {
    /// A whole file as one part, or why it could not be read.
    Whole(String, Result<VerifiedPart, FileError>),
    /// A chunk of a large file; not reported on its own.
    Chunk(VerifiedPart),
    /// A large file's manifest, after all its chunks.
    Manifest(String, VerifiedPart),
}

/// The importing thread stopped taking parts: it failed.
struct ReceiverGone;

/// Reads one file into `parts`; fails only when the receiver is gone.
fn read_file(
    file: &FileSource,
    chunk_size: u64,
    parts: &SyncSender<Read>,
) -> Result<(), ReceiverGone> {
    let send = |read| parts.send(read).map_err(|_| ReceiverGone);
    let name = file.display_name();
    match chunker::open_file(file, chunk_size) {
        Ok(LocalFile::Whole(part)) => send(Read::Whole(name, Ok(part))),
        Err(err) => send(Read::Whole(name, Err(err))),
        Ok(LocalFile::Chunked(mut chunks)) => {
            for chunk in chunks.by_ref() {
                match chunk {
                    Ok(chunk) => send(Read::Chunk(chunk))?,
                    Err(err) => return send(Read::Whole(name, Err(err))),
                }
            }
            send(match chunks.manifest() {
                Ok(manifest) => Read::Manifest(name, manifest),
                Err(err) => Read::Whole(name, Err(err)),
            })
        }
    }
}

/// One part's place in the output.
enum Slot {
    /// The next queued part, reported under this name.
    Reported(String),
    /// The next queued part, a file's manifest: reported under this name, as repaired when
    /// it was held but some of its chunks were written again over damaged bodies.
    File { name: String, chunks_repaired: bool },
    /// The next queued part, a chunk: reported only if it fails.
    Quiet,
    /// A file that could not be read.
    Failed(String, FileError),
}

/// Parts read but not yet committed. `order` keeps the order the files were given in, so the
/// outcomes follow it, while the parts themselves go to the store without being copied.
struct Batch<'a> {
    store: &'a dyn PartStore,
    on_conflict: OnConflict,
    parts: Vec<VerifiedPart>,
    order: Vec<Slot>,
    /// Why a chunk of the file being read could not be stored, if one could not.
    chunk_failure: Option<FileError>,
    /// Whether a chunk of the file being read was written again over a damaged body.
    chunk_repaired: bool,
    bytes: u64,
}

impl<'a> Batch<'a> {
    fn new(store: &'a dyn PartStore, on_conflict: OnConflict) -> Self {
        Self {
            store,
            on_conflict,
            parts: Vec::new(),
            order: Vec::new(),
            chunk_failure: None,
            chunk_repaired: false,
            bytes: 0,
        }
    }

    /// Queues a part to report, or a failure.
    fn push(&mut self, name: String, part: Result<VerifiedPart, FileError>) {
        match part {
            Ok(part) => {
                self.bytes += part.size();
                self.parts.push(part);
                self.order.push(Slot::Reported(name));
            }
            Err(err) => self.order.push(Slot::Failed(name, err)),
        }
    }

    /// Queues a file's manifest, after its chunks are committed.
    fn push_file(&mut self, name: String, manifest: VerifiedPart) {
        let chunks_repaired = std::mem::take(&mut self.chunk_repaired);
        self.bytes += manifest.size();
        self.parts.push(manifest);
        self.order.push(Slot::File {
            name,
            chunks_repaired,
        });
    }

    /// Queues a chunk, reported only if it fails.
    fn push_quiet(&mut self, chunk: VerifiedPart) {
        self.bytes += chunk.size();
        self.parts.push(chunk);
        self.order.push(Slot::Quiet);
    }

    fn is_full(&self) -> bool {
        self.bytes >= BATCH_BYTES || self.parts.len() >= BATCH_PARTS
    }

    /// Stores the queued parts with one durable sync, then reports each in order.
    fn commit(&mut self, on_file: &mut impl FnMut(FileOutcome)) -> Result<(), StoreError> {
        let parts = std::mem::take(&mut self.parts);
        self.bytes = 0;
        let outcomes = if parts.is_empty() {
            Vec::new()
        } else {
            self.store.put_batch(&parts, self.on_conflict)?
        };
        let mut stored = parts.iter().zip(outcomes);
        for slot in std::mem::take(&mut self.order) {
            match slot {
                Slot::Reported(name) => {
                    let (_, outcome) = stored.next().expect("one outcome per part");
                    on_file((name, outcome.map_err(FileError::from)));
                }
                Slot::File {
                    name,
                    chunks_repaired,
                } => {
                    let (_, outcome) = stored.next().expect("one outcome per part");
                    let outcome = outcome.map(|outcome| match outcome {
                        PutOutcome::AlreadyHad if chunks_repaired => PutOutcome::Repaired,
                        outcome => outcome,
                    });
                    on_file((name, outcome.map_err(FileError::from)));
                }
                Slot::Quiet => {
                    let (part, outcome) = stored.next().expect("one outcome per part");
                    match outcome {
                        Ok(PutOutcome::Repaired) => self.chunk_repaired = true,
                        Ok(_) => {}
                        Err(source) => {
                            self.chunk_failure = Some(FileError::Chunk {
                                name: part.name().clone(),
                                source,
                            });
                        }
                    }
                }
                Slot::Failed(name, err) => on_file((name, Err(err))),
            }
        }
        Ok(())
    }
}
