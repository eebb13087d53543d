//! `p2p-store list`: what the store, or a remote peer, holds.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use storage::BackendKind;

use crate::{Status, open, peer};

/// List the parts in the store (or a peer's, with --from): name, size in bytes and blake3
/// hash, tab-separated.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the parts of the peer at ADDR instead of the local store.
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,

    /// Print one JSON array of {"name","size","hash"} objects.
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let parts = match &args.from {
        Some(addr) => peer::connect(addr)?
            .list()
            .with_context(|| format!("cannot list the parts of {addr}"))?,
        None => open::store(db, backend)?
            .list()
            .context("cannot list the store")?,
    };
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
