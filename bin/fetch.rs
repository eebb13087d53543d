//! `p2p-store fetch`: pull parts from another peer into this store.

use std::path::Path;

use anyhow::Context;
use storage::{BackendKind, OnConflict, PartName, PutOutcome};

use crate::{Status, open, peer, remote};

/// Pull parts from a peer into the store (--db), each verified; parts already held are not
/// transferred.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The peer to pull from, as HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    from: String,

    /// Parts to pull; all of the peer's parts when none are named.
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
    let (offered, missing) = remote::select(&mut client, &args.names)?;
    let mut summary = Summary::default();
    let line = |text: String| {
        if !args.json {
            println!("{text}");
        }
    };
    for name in missing {
        summary.rejected += 1;
        line(format!("rejected {name}: the peer has no such part"));
    }
    let mut wanted = Vec::new();
    for info in offered {
        match store.lookup(&info.name).context("cannot read the store")? {
            None => wanted.push(info),
            Some(held) if held.hash == info.hash => {
                summary.already_had += 1;
                line(format!("already had {}", info.name));
            }
            Some(held) => {
                summary.rejected += 1;
                line(format!(
                    "rejected {}: this store holds other content under that name ({})",
                    info.name, held.hash
                ));
            }
        }
    }
    let mut failures = Vec::new();
    summary.bytes_received = remote::fetch_in_batches(
        &mut client,
        &wanted,
        |parts| {
            let outcomes = store
                .put_batch(&parts, OnConflict::Refuse)
                .context("cannot store the fetched parts")?;
            for (part, outcome) in parts.iter().zip(outcomes) {
                match outcome {
                    Ok(PutOutcome::AlreadyHad) => {
                        summary.already_had += 1;
                        line(format!("already had {}", part.name()));
                    }
                    Ok(_) => {
                        summary.stored += 1;
                        line(format!("stored {}", part.name()));
                    }
                    Err(err) => {
                        summary.rejected += 1;
                        line(format!("rejected {}: {err}", part.name()));
                    }
                }
            }
            Ok(())
        },
        |name, reason| failures.push((name.clone(), reason)),
    )
    .with_context(|| format!("fetching from {} failed", args.from))?;
    for (name, reason) in failures {
        summary.rejected += 1;
        line(format!("rejected {name}: {reason}"));
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
