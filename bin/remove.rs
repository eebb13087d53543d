//! `p2p-store remove`: forget parts.

use std::path::Path;

use anyhow::Context;
use storage::{BackendKind, PartName, Removal};

use crate::{Status, open};

/// Remove parts and files from the store. A file's chunks go with it unless another file uses
/// them; a chunk a file uses is kept. A body shared with another name stays for that name.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store remove part2.txt
  p2p-store --db ./peer1.db remove old.iso notes.txt")]
pub struct Args {
    /// Names of the parts to remove.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<PartName>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::existing(db, backend)?;
    let outcomes =
        storage::remove_parts(store.as_ref(), &args.names).context("cannot remove the parts")?;
    let mut failed = 0;
    for (name, removal) in outcomes {
        match removal {
            Removal::Removed { chunks_released: 0 } => println!("removed {name}"),
            Removal::Removed { chunks_released } => {
                println!("removed {name} and {chunks_released} chunks no other file uses");
            }
            Removal::RemovedKeepingChunks { unreadable } => {
                let files: Vec<&str> = unreadable.iter().map(PartName::as_str).collect();
                println!(
                    "removed {name}, keeping its chunks: the manifests of {} cannot be read \
                     (repair them, then run gc)",
                    files.join(", ")
                );
            }
            Removal::NotFound => {
                failed += 1;
                println!("not found {name}");
            }
            Removal::InUse { by } => {
                failed += 1;
                let files: Vec<&str> = by.iter().map(PartName::as_str).collect();
                println!("kept {name}: the files {} need it", files.join(", "));
            }
        }
    }
    Ok(Status::from_failures(failed))
}
