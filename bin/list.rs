//! `p2p-store list`: what the store holds.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use storage::BackendKind;

use crate::{Status, open};

/// List the parts in the store: name, size in bytes and blake3 hash, tab-separated.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON array of {"name","size","hash"} objects.
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::store(db, backend)?;
    let parts = store.list().context("cannot list the store")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &parts)?;
        writeln!(out)?;
    } else {
        for part in &parts {
            writeln!(out, "{}\t{}\t{}", part.name, part.size, part.hash)?;
        }
    }
    Ok(Status::Done)
}
