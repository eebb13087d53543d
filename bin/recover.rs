//! `p2p-store recover`: rebuild a damaged or lost index from the packs.

use std::path::Path;

use anyhow::Context;

use crate::Status;

/// Rebuild the store's index from its pack files, the log of record. Run it when opening the
/// store says its index or a pack is damaged. The old index is kept as `index.old`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db recover
  p2p-store --db ./peer1.db recover && p2p-store --db ./peer1.db verify")]
pub struct Args {}

pub fn run(db: &Path) -> anyhow::Result<Status> {
    let report = storage::recover(db)
        .with_context(|| format!("cannot recover the store at {}", db.display()))?;
    println!("{report}");
    Ok(Status::from_failures(report.unreadable.len()))
}
