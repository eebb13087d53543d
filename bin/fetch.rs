//! `p2p-store fetch`: pull parts and files from other peers into this store.

use std::path::Path;
use std::time::Duration;

use storage::{BackendKind, PartName};

use crate::report::{Report, Words};
use crate::{Status, open, peer};

/// Pull parts and files from peers into the store (--db), each verified; what the store
/// already holds is not transferred, so pulling again after an interruption moves only what
/// is missing. With several peers, different parts come from each at once; a peer that fails,
/// stalls or sends bad bytes is dropped and the others take over its parts.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store fetch --from 127.0.0.1:6881
  p2p-store fetch --from 10.0.0.2:6881 --from 10.0.0.3:6881 image.iso
  p2p-store fetch --from 10.0.0.2:6881 --timeout 10 --json notes.txt")]
pub struct Args {
    /// A peer to pull from, as HOST:PORT (repeat for several).
    #[arg(long, value_name = "ADDR", required = true)]
    from: Vec<String>,

    /// Seconds without an answer after which a peer counts as stalled and is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,

    /// Parts or files to pull; all of the peer's when none are named.
    #[arg(value_name = "NAME")]
    names: Vec<PartName>,

    /// Print one JSON object {"stored","already_had","rejected","bytes_received","peers",
    /// "peer_ids"}, where "peers" maps each peer's address to the bytes received from it and
    /// "peer_ids" maps it to the ID the peer proved (as `p2p-store id` prints it there).
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::store(db, backend)?;
    let dialer = peer::dialer(Duration::from_secs(args.timeout))?;
    let mut report = Report::new("fetch", Words::Transfer, args.json);
    let pulled = net::transfer::pull(
        &dialer,
        &args.from,
        &args.names,
        store.as_ref(),
        &mut report,
    )?;
    let peers = serde_json::to_value(&pulled.peers)?;
    let peer_ids = serde_json::to_value(&pulled.peer_ids)?;
    Ok(report.finish([
        ("bytes_received", pulled.bytes_received.into()),
        ("peers", peers),
        ("peer_ids", peer_ids),
    ]))
}
