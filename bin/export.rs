//! `p2p-store export`: write parts out as `OUT/<name>_recebida`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use net::PushEvent;
use storage::{BackendKind, ExportOutcome, Overwrite, PartName};

use crate::progress::Progress;
use crate::{Status, open, peer, remote};

/// Write parts as OUT/<name>_recebida, each verified first. Corrupt parts are reported and
/// skipped; the others are written.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into; created if missing.
    out: PathBuf,

    /// Parts to export; all of them when none are named.
    #[arg(value_name = "NAME")]
    names: Vec<PartName>,

    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,

    /// Export the parts of the peer at ADDR (a running `serve`) instead of the local store.
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let overwrite = if args.force {
        Overwrite::Always
    } else {
        Overwrite::Never
    };
    let mut tally = Tally::default();
    match &args.from {
        Some(addr) => export_remote(addr, &args, overwrite, &mut tally)?,
        None => {
            let store = open::store(db, backend)?;
            let names = if args.names.is_empty() {
                storage::exportable_names(store.as_ref()).context("cannot list the store")?
            } else {
                args.names.clone()
            };
            let progress = Progress::items("export", names.len() as u64, false);
            storage::export_each(store.as_ref(), &args.out, &names, overwrite, |outcome| {
                tally.outcome(outcome);
                progress.add(1);
            })
            .with_context(|| format!("cannot export to {}", args.out.display()))?;
            progress.finish();
        }
    }
    println!("{} exported, {} failed", tally.exported, tally.failed);
    Ok(Status::from_failures(tally.failed))
}

/// Prints each part's export and counts them.
#[derive(Default)]
struct Tally {
    exported: usize,
    failed: usize,
}

impl Tally {
    fn outcomes(&mut self, outcomes: Vec<ExportOutcome>) {
        for outcome in outcomes {
            self.outcome(outcome);
        }
    }

    fn outcome(&mut self, (name, written): ExportOutcome) {
        match written {
            Ok(path) => {
                self.exported += 1;
                println!("exported {name} -> {}", path.display());
            }
            Err(err) => self.failure(&name, &err),
        }
    }

    fn failure(&mut self, name: &PartName, reason: &dyn std::fmt::Display) {
        self.failed += 1;
        println!("failed {name}: {reason}");
    }
}

/// Pulls the parts and files from the peer into a scratch store inside `OUT` (each verified,
/// memory bounded however large the files), then writes them with the same export code as a
/// local store: temp file, rename, no overwrite.
fn export_remote(
    addr: &str,
    args: &Args,
    overwrite: Overwrite,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut peers = remote::connect_all(&[addr.to_owned()], peer::TIMEOUT)?;
    let (selected, missing) = remote::select(&peers, &args.names);
    for name in missing {
        tally.failure(&name, &"the peer has no such part");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".p2p-store-export.")
        .tempdir_in(&args.out)
        .with_context(|| format!("cannot create a scratch store in {}", args.out.display()))?;
    let staging = storage::open_store(&scratch.path().join("db"), Some(BackendKind::Fs))?;
    let mut pulled = Vec::new();
    remote::pull(
        &mut peers,
        staging.as_ref(),
        &selected,
        &mut |event| match event {
            PushEvent::Stored(name) | PushEvent::AlreadyHad(name) => pulled.push(name),
            PushEvent::Rejected(name, reason) => tally.failure(&name, &reason),
        },
        false,
    )
    .with_context(|| format!("fetching from {addr} failed"))?;
    tally.outcomes(
        storage::export(staging.as_ref(), &args.out, Some(&pulled), overwrite)
            .with_context(|| format!("cannot export to {}", args.out.display()))?,
    );
    Ok(())
}
