//! `p2p-store verify`: re-hash every stored part, and with `--repair` heal it from peers.

use std::path::Path;

use anyhow::Context;
use serde_json::json;
use storage::BackendKind;

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

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::existing(db, backend)?;
    let report = storage::verify(store.as_ref()).context("cannot verify the store")?;
    let repair = if args.repair {
        let dialer = peer::dialer(peer::TIMEOUT)?;
        let warn = &mut report::warn_about_peers;
        let repaired = net::transfer::repair(&dialer, &args.from, store.as_ref(), &report, warn);
        Some(repaired.context("cannot repair the store")?)
    } else {
        None
    };
    if args.json {
        let corrupt: Vec<_> = (report.corrupt.iter())
            .map(|(name, err)| json!({"name": name, "error": err.to_string()}))
            .collect();
        let mut summary =
            json!({"intact": report.intact, "bytes": report.bytes, "corrupt": corrupt});
        if let Some(repair) = &repair {
            summary["repaired"] = json!(repair.repaired);
            summary["unhealed"] = json!(repair.unhealed);
        }
        println!("{summary}");
    } else {
        for (name, err) in &report.corrupt {
            println!("corrupt {name}: {err}");
        }
        let (intact, bytes, corrupt) = (report.intact, report.bytes, report.corrupt.len());
        let mut totals = format!("{intact} intact ({bytes} bytes), {corrupt} corrupt");
        if let Some(repair) = &repair {
            for name in &repair.repaired {
                println!("repaired {name}");
            }
            for left in &repair.unhealed {
                println!("unhealed {}: {}", left.name, left.error);
            }
            let (repaired, unhealed) = (repair.repaired.len(), repair.unhealed.len());
            totals.push_str(&format!(", {repaired} repaired, {unhealed} unhealed"));
        }
        println!("{totals}");
    }
    let left = repair.map_or(report.corrupt.len(), |repair| repair.unhealed.len());
    Ok(Status::from_failures(left))
}
