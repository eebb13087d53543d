//! `p2p-store id`: this store's peer ID, for other peers to trust or pin.

use std::path::Path;

use storage::BackendKind;

use crate::{Status, open};

/// Print this store's peer ID (its key pair is made, and the store too, on first use).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer2.db serve --trust \"$(p2p-store --db ./peer1.db id)\"
  p2p-store --db ./peer2.db send --to \"127.0.0.1:6881#$(p2p-store --db ./peer1.db id)\" a.txt")]
pub struct Args {}

pub fn run(db: &Path, backend: Option<BackendKind>, _: Args) -> anyhow::Result<Status> {
    if !storage::is_store(db) {
        drop(open::store(db, backend)?);
    }
    println!("{}", net::tls::Identity::load_or_create(db)?.id());
    Ok(Status::Done)
}
