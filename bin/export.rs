//! `p2p-store export`: write parts out as `OUT/<name>_recebida`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::{BackendKind, ExportOutcome, MemStore, OnConflict, Overwrite, PartName, PartStore};

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
            let names = (!args.names.is_empty()).then_some(args.names.as_slice());
            tally.outcomes(
                storage::export(store.as_ref(), &args.out, names, overwrite)
                    .with_context(|| format!("cannot export to {}", args.out.display()))?,
            );
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
        for (name, written) in outcomes {
            match written {
                Ok(path) => {
                    self.exported += 1;
                    println!("exported {name} -> {}", path.display());
                }
                Err(err) => self.failure(&name, &err),
            }
        }
    }

    fn failure(&mut self, name: &PartName, reason: &dyn std::fmt::Display) {
        self.failed += 1;
        println!("failed {name}: {reason}");
    }
}

/// Fetches the parts from the peer, each verified, and writes them batch by batch through a
/// memory store, so the same export code (temp file, rename, no overwrite) writes them.
fn export_remote(
    addr: &str,
    args: &Args,
    overwrite: Overwrite,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut client = peer::connect(addr)?;
    let (parts, missing) = remote::select(&mut client, &args.names)?;
    for name in missing {
        tally.failure(&name, &"the peer has no such part");
    }
    let mut fetch_failures = Vec::new();
    remote::fetch_in_batches(
        &mut client,
        &parts,
        |batch| {
            let staging = MemStore::new();
            let names: Vec<PartName> = batch.iter().map(|part| part.name().clone()).collect();
            staging.put_batch(&batch, OnConflict::Refuse)?;
            drop(batch);
            tally.outcomes(
                storage::export(&staging, &args.out, Some(&names), overwrite)
                    .with_context(|| format!("cannot export to {}", args.out.display()))?,
            );
            Ok(())
        },
        |name, reason| fetch_failures.push((name.clone(), reason)),
    )
    .with_context(|| format!("fetching from {addr} failed"))?;
    for (name, reason) in fetch_failures {
        tally.failure(&name, &reason);
    }
    Ok(())
}
