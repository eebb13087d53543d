//! `p2p-store id`: this peer's ID, for other peers to trust (`serve --trust`) or pin
//! (`ADDR#ID`).

use std::path::Path;

use storage::BackendKind;

use crate::{Status, peer};

/// Print this store's peer ID (made with the store's key pair on first use).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db id
  p2p-store --db ./peer2.db serve --trust \"$(p2p-store --db ./peer1.db id)\"")]
pub struct Args {
    /// Print {\"id\": ID} instead of the bare ID.
    #[arg(long)]
    json: bool,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let id = peer::identity(db, backend, true)?.id();
    if args.json {
        println!("{}", serde_json::json!({ "id": id }));
    } else {
        println!("{id}");
    }
    Ok(Status::Done)
}
