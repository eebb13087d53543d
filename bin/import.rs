//! `p2p-store import`: store local files as parts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::{BackendKind, OnConflict, PartName, PartStore, PutOutcome, VerifiedPart};

use crate::local_file::{Rejected, read_part};
use crate::{Status, open};

/// Store files as parts, each named by its file name.
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
        scope.spawn(move || {
            for path in files {
                if parts.send(read_part(path, name)).is_err() {
                    break;
                }
            }
        });
        for part in read {
            batch.push(part);
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

/// Parts read but not yet committed. `order` keeps the command-line order, so the output
/// follows it, while the parts themselves go to the store without being copied.
struct Batch<'a> {
    store: &'a dyn PartStore,
    on_conflict: OnConflict,
    parts: Vec<VerifiedPart>,
    order: Vec<Option<Rejected>>,
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
            bytes: 0,
            tally: Tally::default(),
        }
    }

    /// Queues a part, or a rejection (`None` in `order` stands for the next queued part).
    fn push(&mut self, part: Result<VerifiedPart, Rejected>) {
        match part {
            Ok(part) => {
                self.bytes += part.size();
                self.parts.push(part);
                self.order.push(None);
            }
            Err(rejected) => self.order.push(Some(rejected)),
        }
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
                None => {
                    let (part, outcome) = stored.next().expect("one outcome per part");
                    (part.name().to_string(), outcome.map_err(|e| e.to_string()))
                }
                Some(Rejected(name, reason)) => (name, Err(reason)),
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
