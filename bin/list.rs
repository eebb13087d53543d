//! `p2p-store list`: what the store, or a remote peer, holds.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use storage::BackendKind;

use crate::{Status, open, peer};

/// List the parts in the store (or a peer's, with --from): name, size in bytes and blake3
/// hash, tab-separated; a file stored as chunks shows its own size and hash (as b3sum prints
/// it) and its number of parts.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db list
  p2p-store list --from 127.0.0.1:6881 --json
  p2p-store list --all | head")]
pub struct Args {
    /// List the parts of the peer at ADDR instead of the local store.
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,

    /// Also list the chunks of files, each named b3-<hash>.
    #[arg(long)]
    all: bool,

    /// Print one JSON array of {"name","size","hash"} objects (files add "parts").
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let entries = match &args.from {
        Some(addr) => {
            let mut client = peer::dialer(peer::TIMEOUT)?
                .dial(addr)
                .with_context(|| format!("cannot talk to the peer at {addr}"))?;
            net::transfer::list_files(&mut client, args.all)
                .with_context(|| format!("cannot list the parts of {addr}"))?
        }
        None => {
            let store = open::existing(db, backend)?;
            storage::list_files(store.as_ref(), args.all).context("cannot list the store")?
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &entries)?;
        writeln!(out)?;
    } else {
        for entry in &entries {
            let parts = entry
                .parts
                .map(|n| format!("\t{n} parts"))
                .unwrap_or_default();
            writeln!(out, "{}\t{}\t{}{parts}", entry.name, entry.size, entry.hash)?;
        }
    }
    Ok(Status::Done)
}
