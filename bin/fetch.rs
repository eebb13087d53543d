//! `p2p-store fetch`: pull parts and files from another peer into this store.

use std::path::Path;

use anyhow::Context;
use net::PushEvent;
use storage::{BackendKind, PartName};

use crate::{Status, open, peer, remote};

/// Pull parts and files from a peer into the store (--db), each verified; what the store
/// already holds is not transferred, so pulling again after an interruption moves only what
/// is missing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The peer to pull from, as HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    from: String,

    /// Parts or files to pull; all of the peer's when none are named.
    #[arg(value_name = "NAME")]
    names: Vec<PartName>,

    /// Print one JSON object {"stored","already_had","rejected","bytes_received"}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    stored: u64,
    already_had: u64,
    rejected: u64,
    bytes_received: u64,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::store(db, backend)?;
    let mut client = peer::connect(&args.from)?;
    let (selected, missing) = remote::select(&mut client, &args.names)?;
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
    let received = remote::pull(&mut client, store.as_ref(), &selected, &mut report)
        .with_context(|| format!("fetching from {} failed", args.from))?;
    summary.bytes_received = received;
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
