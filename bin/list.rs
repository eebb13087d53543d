//! `p2p-store list`: what the store, or a remote peer, holds.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;
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

    /// Print one JSON array of {"name","size","hash"} objects (files add "parts"); with
    /// --from, each adds "peer_id", the ID the peer proved (as `p2p-store id` prints it there),
    /// so the array keeps its shape and says whose parts these are.
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let (entries, peer_id) = match &args.from {
        Some(addr) => {
            let mut client = peer::dialer(peer::TIMEOUT)?
                .dial(addr)
                .with_context(|| format!("cannot talk to the peer at {addr}"))?;
            let entries = net::transfer::list_files(&mut client, args.all)
                .with_context(|| format!("cannot list the parts of {addr}"))?;
            (entries, client.server_id())
        }
        None => {
            let store = open::existing(db, backend)?;
            let entries =
                storage::list_files(store.as_ref(), args.all).context("cannot list the store")?;
            (entries, None)
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut json = serde_json::to_value(&entries)?;
        if let (Some(id), Some(array)) = (peer_id, json.as_array_mut()) {
            for entry in array.iter_mut().filter_map(Value::as_object_mut) {
                entry.insert("peer_id".into(), id.to_string().into());
            }
        }
        serde_json::to_writer(&mut out, &json)?;
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
