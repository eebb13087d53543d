//! `p2p-store gc`: remove chunks no file lists.

use std::path::Path;

use anyhow::Context;
use storage::BackendKind;

use crate::{Status, open};

/// Remove the chunks no file lists (an interrupted transfer leaves them), and give their
/// space back. Refuses while a file's manifest is damaged: the chunks it lists are unknown.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store gc --dry-run
  p2p-store --db ./peer1.db gc")]
pub struct Args {
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::existing(db, backend)?;
    let garbage = storage::collect_garbage(store.as_ref(), args.dry_run)
        .context("cannot collect the chunks no file lists")?;
    println!("{garbage}");
    drop(store);
    println!("the store takes {} bytes on disk", storage::disk_usage(db)?);
    Ok(Status::Done)
}
