//! `p2p-store remove`: forget parts.

use std::path::Path;

use anyhow::Context;
use storage::{BackendKind, PartName};

use crate::{Status, open};

pub const EXAMPLES: &str = "Examples:
  p2p-store remove part2.txt
  p2p-store --db ./peer1.db remove old.iso notes.txt";

/// Remove parts from the store. A body shared with another name stays for that name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Names of the parts to remove.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<PartName>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::existing(db, backend)?;
    let mut missing = 0;
    for name in &args.names {
        if store
            .remove(name)
            .with_context(|| format!("cannot remove {name}"))?
        {
            println!("removed {name}");
        } else {
            println!("not found {name}");
            missing += 1;
        }
    }
    Ok(Status::from_failures(missing))
}
