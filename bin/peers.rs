//! `p2p-store peers`: the peers announced on the local network.

use std::time::Duration;

use anyhow::Context;

use crate::Status;

/// List the peers that announce themselves on the local network (`serve --announce`), by ID
/// and addresses. An ID works wherever a peer's address does (`fetch --from ID`): it is
/// looked up again and dialled pinned to that ID, so only that peer can answer.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store peers
  p2p-store peers --wait 10 --json
  p2p-store fetch --from SQEEK6XP2BY-45QJHYH4YKO-MTBBQ22G5J2 notes.txt")]
pub struct Args {
    /// Seconds to listen for answers.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    wait: u64,

    /// Print one JSON array of {"id","addrs"} objects.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let wait = Duration::from_secs(args.wait);
    let found = net::lan::find_peers(wait).context("cannot look for peers")?;
    if args.json {
        println!("{}", serde_json::to_string(&found)?);
    }
    for peer in found.iter().filter(|_| !args.json) {
        let addrs: Vec<String> = peer.addrs.iter().map(ToString::to_string).collect();
        println!("{}\t{}", peer.id, addrs.join(" "));
    }
    Ok(Status::Done)
}
