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
    if report.marker_rewritten {
        println!("rewrote the damaged p2p-store.meta");
    }
    if report.backend == storage::BackendKind::Fs {
        println!(
            "an fs store has no index apart from its files: {} parts",
            report.parts
        );
    } else {
        println!(
            "rebuilt the index from {} packs: {} records, {} parts",
            report.packs, report.records, report.parts
        );
    }
    for damaged in &report.damaged {
        println!(
            "skipped {} damaged bytes at offset {} of pack {:016x}",
            damaged.len, damaged.offset, damaged.pack
        );
    }
    for name in &report.unreadable {
        println!("unreadable {name}: its body is damaged or missing");
    }
    if let Some(old) = &report.old_index {
        println!("the old index is kept at {}", old.display());
    }
    Ok(Status::from_failures(report.unreadable.len()))
}
