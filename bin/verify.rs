//! `p2p-store verify`: re-hash every stored part, and with `--repair` heal it from peers.

use std::path::Path;

use anyhow::Context;
use net::transfer::RepairReport;
use storage::{BackendKind, VerifyReport};

use crate::{Status, open, peer, report};

/// Read back and re-hash every part; list the corrupt ones.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db verify
  p2p-store verify --json")]
pub struct Args {
    /// Print one JSON object {"intact","bytes","corrupt":[{"name","error"}]}; with --repair,
    /// also "repaired":[NAME] and "unhealed":[{"name","error"}].
    #[arg(long)]
    json: bool,

    /// Fetch good copies of what is corrupt or missing (parts, manifests, chunks) from the
    /// --from peers and store them over the damaged ones; exit 1 if anything is left unhealed.
    #[arg(long, requires = "from")]
    repair: bool,

    /// A peer to repair from, as HOST:PORT (repeat for several).
    #[arg(long, value_name = "ADDR", requires = "repair")]
    from: Vec<String>,
}

/// The JSON object: the check's findings and, after a repair, what it did.
#[derive(serde::Serialize)]
struct Summary<'a> {
    #[serde(flatten)]
    found: &'a VerifyReport,
    #[serde(flatten)]
    repair: Option<&'a RepairReport>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::existing(db, backend)?;
    let found = storage::verify(store.as_ref()).context("cannot verify the store")?;
    let repair = if args.repair {
        let dialer = peer::dialer(peer::TIMEOUT)?;
        let warn = &mut report::warn_about_peers;
        let repaired = net::transfer::repair(&dialer, &args.from, store.as_ref(), &found, warn);
        Some(repaired.context("cannot repair the store")?)
    } else {
        None
    };
    if args.json {
        let repair = repair.as_ref();
        println!(
            "{}",
            serde_json::to_string(&Summary {
                found: &found,
                repair
            })?
        );
    } else {
        println!("{found}");
        repair.iter().for_each(|repair| println!("{repair}"));
    }
    let left = repair.map_or(found.corrupt.len(), |repair| repair.unhealed.len());
    Ok(Status::from_failures(left))
}
