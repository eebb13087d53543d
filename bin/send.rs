//! `p2p-store send`: push files, or this store's parts, to another peer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use storage::{BackendKind, PartName};

use crate::report::{Report, Words};
use crate::{Status, cli, open, peer};

/// Push files, or else this store's parts (--db), to a peer. Parts the peer already has are
/// not sent, so pushing again after an interruption sends only what is missing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store send --to 127.0.0.1:6881 image.iso notes.txt
  p2p-store --db ./peer2.db send --to 127.0.0.1:6881
  p2p-store --db ./peer2.db send --to 10.0.0.2:6881 --part part2.txt --json")]
pub struct Args {
    /// The peer to push to, as HOST:PORT, or HOST:PORT#ID to refuse any peer but that ID.
    #[arg(long, value_name = "ADDR")]
    to: String,

    /// Files to push, each named by its file name. Without files, the store's parts are pushed.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Push the one file given under this name.
    #[arg(long, value_name = "NAME", requires = "files")]
    name: Option<PartName>,

    /// Push only this part of the store (repeatable).
    #[arg(long = "part", value_name = "NAME", conflicts_with = "files")]
    parts: Vec<PartName>,

    /// Print one JSON object {"stored","already_had","rejected","bytes_sent","peer_id"} instead
    /// of lines.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    part_size: cli::PartSize,

    /// Seconds without progress after which the peer counts as gone and the send fails.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let files = cli::sources(args.files, args.name);
    let store = files
        .is_empty()
        .then(|| open::existing(db, backend))
        .transpose()?;
    let dialer = peer::dialer(Duration::from_secs(args.timeout))?;
    let mut client = dialer
        .dial(&args.to)
        .with_context(|| format!("cannot talk to the peer at {}", args.to))?;
    let mut report = Report::new("send", Words::Transfer, args.json);
    let pushed = match &store {
        Some(store) => {
            let names = (!args.parts.is_empty()).then_some(args.parts.as_slice());
            net::transfer::push_store(&mut client, store.as_ref(), names, &mut report)
        }
        None => net::transfer::push_files(&mut client, &files, args.part_size.bytes, &mut report),
    }
    .with_context(|| format!("pushing to {} failed", args.to))?;
    let peer_id = client.server_id().map(|id| id.to_string()).into();
    Ok(report.finish([
        ("bytes_sent", pushed.bytes_sent.into()),
        ("peer_id", peer_id),
    ]))
}
