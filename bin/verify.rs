//! `p2p-store verify`: re-hash every stored part.

use std::path::Path;

use anyhow::Context;
use serde_json::json;
use storage::BackendKind;

use crate::{Status, open};

/// Read back and re-hash every part; list the corrupt ones.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db verify
  p2p-store verify --json")]
pub struct Args {
    /// Print one JSON object {"intact","bytes","corrupt":[{"name","error"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::existing(db, backend)?;
    let report = storage::verify(store.as_ref()).context("cannot verify the store")?;
    if args.json {
        let corrupt: Vec<_> = report
            .corrupt
            .iter()
            .map(|(name, err)| json!({"name": name, "error": err.to_string()}))
            .collect();
        let summary = json!({"intact": report.intact, "bytes": report.bytes, "corrupt": corrupt});
        println!("{summary}");
    } else {
        for (name, err) in &report.corrupt {
            println!("corrupt {name}: {err}");
        }
        println!(
            "{} intact ({} bytes), {} corrupt",
            report.intact,
            report.bytes,
            report.corrupt.len()
        );
    }
    Ok(Status::from_failures(report.corrupt.len()))
}
