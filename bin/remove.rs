//! `p2p-store remove`: forget parts.

use std::path::Path;

use anyhow::Context;
use storage::{BackendKind, PartName};

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
    for (name, removal) in &outcomes {
        println!("{}", removal.describe(name));
    }
    let failed = outcomes.iter().filter(|(_, removal)| !removal.removed());
    Ok(Status::from_failures(failed.count()))
}
