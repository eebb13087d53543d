//! `p2p-store fetch`: pull parts and files from another peer into this store.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use net::PushEvent;
use storage::{BackendKind, PartName};

use crate::{Status, open, remote};

/// Pull parts and files from peers into the store (--db), each verified; what the store
/// already holds is not transferred, so pulling again after an interruption moves only what
/// is missing. With several peers, different parts come from each at once; a peer that fails,
/// stalls or sends bad bytes is dropped and the others take over its parts.
#[derive(Debug, clap::Args)]
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

    /// Print one JSON object {"stored","already_had","rejected","bytes_received","peers"},
    /// where "peers" maps each peer to the bytes received from it.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    stored: u64,
    already_had: u64,
    rejected: u64,
    bytes_received: u64,
    peers: BTreeMap<String, u64>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::store(db, backend)?;
    let mut peers = remote::connect_all(&args.from, Duration::from_secs(args.timeout.max(1)))?;
    let (selected, missing) = remote::select(&peers, &args.names);
    let mut summary = Summary::default();
    let mut report = |event: PushEvent| {
        let line = match event {
            PushEvent::Stored(name) => {
                summary.stored += 1;
                format!("stored {name}")
            }
            PushEvent::AlreadyHad(name) => {
                summary.already_had += 1;
                format!("already had {name}")
            }
            PushEvent::Rejected(name, reason) => {
                summary.rejected += 1;
                format!("rejected {name}: {reason}")
            }
        };
        if !args.json {
            println!("{line}");
        }
    };
    for name in missing {
        report(PushEvent::Rejected(
            name,
            "the peer has no such part".into(),
        ));
    }
    remote::pull(
        &mut peers,
        store.as_ref(),
        &selected,
        &mut report,
        args.json,
    )?;
    for peer in &peers {
        if let Some(why) = &peer.dropped {
            eprintln!("warning: {} {why}", peer.addr);
        }
        summary.bytes_received += peer.received;
        summary.peers.insert(peer.addr.clone(), peer.received);
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} stored, {} already had, {} rejected, {} bytes received",
            summary.stored, summary.already_had, summary.rejected, summary.bytes_received
        );
    }
    Ok(Status::from_failures(summary.rejected as usize))
}
