//! `p2p-store import`: store local files as parts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::{BackendKind, OnConflict, PartName, PartStore, PutOutcome, VerifiedPart};

use crate::local_file::{self, LocalFile, Rejected};
use crate::{Status, open};

/// Store files as parts, each named by its file name. A file larger than the part size is
/// stored as chunks of that size plus a manifest.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to store.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Store the file under this name instead of its file name (one file only).
    #[arg(long, value_name = "NAME")]
    name: Option<PartName>,

    /// Replace a part of the same name that holds different bytes (refused otherwise).
    #[arg(long)]
    replace: bool,

    #[command(flatten)]
    part_size: crate::cli::PartSize,
}

/// What the reading thread hands over, in order.
enum Read {
    /// A whole file as one part, or why it could not be read.
    Whole(Result<VerifiedPart, Rejected>),
    /// A chunk of a large file; not reported on its own.
    Chunk(VerifiedPart),
    /// A large file's manifest, after all its chunks.
    Manifest(VerifiedPart),
}

/// A batch is committed (one sync) once it holds this many bytes or parts: large enough that
/// the sync is amortised, small enough to bound memory and to report progress steadily.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
const BATCH_PARTS: usize = 1024;

/// Files read and hashed ahead on a second thread while the store writes and syncs, so reading,
/// hashing and disk waits overlap; bounds the memory held ahead to this many parts.
const READ_AHEAD: usize = 8;

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    if args.name.is_some() && args.files.len() != 1 {
        use clap::CommandFactory;
        crate::cli::Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--name applies to exactly one FILE",
            )
            .exit();
    }
    let store = open::store(db, backend)?;
    let on_conflict = if args.replace {
        OnConflict::Replace
    } else {
        OnConflict::Refuse
    };
    let mut batch = Batch::new(store.as_ref(), on_conflict);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (parts, read) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let (files, name) = (&args.files, args.name.as_ref());
        let chunk_size = args.part_size.bytes;
        scope.spawn(move || {
            for path in files {
                if read_file(path, name, chunk_size, &parts).is_err() {
                    break;
                }
            }
        });
        for item in read {
            match item {
                Read::Whole(part) => {
                    if part.is_err() {
                        // A large file that failed mid-read may have chunks queued: commit
                        // them now, so their failures are not charged to the next file.
                        batch.commit()?;
                    }
                    batch.chunk_failure = None;
                    batch.push(part);
                }
                Read::Chunk(chunk) => batch.push_quiet(chunk),
                Read::Manifest(manifest) => {
                    // Chunks are durable before the manifest that needs them, and a file
                    // whose chunks could not all be stored gets no manifest.
                    batch.commit()?;
                    match batch.chunk_failure.take() {
                        Some(reason) => {
                            batch.push(Err(Rejected(manifest.name().to_string(), reason)))
                        }
                        None => batch.push(Ok(manifest)),
                    }
                }
            }
            if batch.is_full() {
                batch.commit()?;
            }
        }
        batch.commit()
    })?;
    println!(
        "{} stored, {} already had, {} rejected",
        batch.tally.stored, batch.tally.already_had, batch.tally.rejected
    );
    Ok(Status::from_failures(batch.tally.rejected))
}

/// Reads one file into `parts`; fails only when the receiver is gone.
fn read_file(
    path: &Path,
    name: Option<&PartName>,
    chunk_size: u64,
    parts: &std::sync::mpsc::SyncSender<Read>,
) -> Result<(), std::sync::mpsc::SendError<Read>> {
    match local_file::open(path, name, chunk_size) {
        Ok(LocalFile::Whole(part)) => parts.send(Read::Whole(Ok(part))),
        Err(rejected) => parts.send(Read::Whole(Err(rejected))),
        Ok(LocalFile::Chunked(mut chunks)) => {
            for chunk in chunks.by_ref() {
                match chunk {
                    Ok(chunk) => parts.send(Read::Chunk(chunk))?,
                    Err(rejected) => return parts.send(Read::Whole(Err(rejected))),
                }
            }
            parts.send(match chunks.manifest() {
                Ok(manifest) => Read::Manifest(manifest),
                Err(rejected) => Read::Whole(Err(rejected)),
            })
        }
    }
}

/// One part's place in the output.
enum Slot {
    /// The next queued part, reported.
    Reported,
    /// The next queued part, a chunk: reported only if it fails.
    Quiet,
    /// A file that could not be read.
    Rejected(Rejected),
}

/// Parts read but not yet committed. `order` keeps the command-line order, so the output
/// follows it, while the parts themselves go to the store without being copied.
struct Batch<'a> {
    store: &'a dyn PartStore,
    on_conflict: OnConflict,
    parts: Vec<VerifiedPart>,
    order: Vec<Slot>,
    /// Why a chunk of the file being read could not be stored, if one could not.
    chunk_failure: Option<String>,
    bytes: u64,
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    stored: usize,
    already_had: usize,
    rejected: usize,
}

impl<'a> Batch<'a> {
    fn new(store: &'a dyn PartStore, on_conflict: OnConflict) -> Self {
        Self {
            store,
            on_conflict,
            parts: Vec::new(),
            order: Vec::new(),
            chunk_failure: None,
            bytes: 0,
            tally: Tally::default(),
        }
    }

    /// Queues a part to report, or a rejection.
    fn push(&mut self, part: Result<VerifiedPart, Rejected>) {
        match part {
            Ok(part) => {
                self.bytes += part.size();
                self.parts.push(part);
                self.order.push(Slot::Reported);
            }
            Err(rejected) => self.order.push(Slot::Rejected(rejected)),
        }
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
    fn commit(&mut self) -> anyhow::Result<()> {
        let parts = std::mem::take(&mut self.parts);
        self.bytes = 0;
        let outcomes = self
            .store
            .put_batch(&parts, self.on_conflict)
            .context("cannot store the parts")?;
        let mut stored = parts.iter().zip(outcomes);
        for slot in std::mem::take(&mut self.order) {
            let (name, outcome) = match slot {
                Slot::Reported | Slot::Quiet => {
                    let (part, outcome) = stored.next().expect("one outcome per part");
                    if matches!(slot, Slot::Quiet) {
                        if let Err(err) = outcome {
                            self.chunk_failure = Some(format!("chunk {}: {err}", part.name()));
                        }
                        continue;
                    }
                    (part.name().to_string(), outcome.map_err(|e| e.to_string()))
                }
                Slot::Rejected(Rejected(name, reason)) => (name, Err(reason)),
            };
            self.report(&name, outcome);
        }
        Ok(())
    }

    fn report(&mut self, name: &str, outcome: Result<PutOutcome, String>) {
        match outcome {
            Ok(PutOutcome::Stored) => {
                self.tally.stored += 1;
                println!("stored {name}");
            }
            Ok(PutOutcome::Replaced { .. }) => {
                self.tally.stored += 1;
                println!("replaced {name}");
            }
            Ok(PutOutcome::AlreadyHad) => {
                self.tally.already_had += 1;
                println!("already had {name}");
            }
            Err(reason) => {
                self.tally.rejected += 1;
                println!("rejected {name}: {reason}");
            }
        }
    }
}
