//! `p2p-store verify`: re-hash every stored part.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use storage::BackendKind;

use crate::{Status, open};

pub const EXAMPLES: &str = "Examples:
  p2p-store --db ./peer1.db verify
  p2p-store verify --json";

/// Read back and re-hash every part; list the corrupt ones.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object {"intact","bytes","corrupt":[{"name","error"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    intact: u64,
    bytes: u64,
    corrupt: Vec<Corrupt>,
}

#[derive(Serialize)]
struct Corrupt {
    name: String,
    error: String,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::store(db, backend)?;
    let report = storage::verify(store.as_ref()).context("cannot verify the store")?;
    let report = Report {
        intact: report.intact,
        bytes: report.bytes,
        corrupt: report
            .corrupt
            .into_iter()
            .map(|(name, err)| Corrupt {
                name: name.to_string(),
                error: err.to_string(),
            })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for corrupt in &report.corrupt {
            println!("corrupt {}: {}", corrupt.name, corrupt.error);
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
