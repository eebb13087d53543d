//! `p2p-store demo`: the original two-peer example, end to end, on the embedded default store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use net::transfer::{Outcome, TransferEvent};
use net::{Server, ServerConfig};
use storage::{BackendKind, OnConflict, PartName, PartStore, VerifiedPart, open_store};

use crate::{Status, exporter, peer};

pub const EXAMPLES: &str = "Examples:
  p2p-store demo
  p2p-store demo --force
  p2p-store demo /tmp/received";

/// Run the original example: peer 1 serves a fresh sled store on 127.0.0.1:6881 (or a free
/// port if that one is taken); peer 2 pushes part2.txt and part3.txt from its own store,
/// then pushes them again (nothing moves); peer 1 writes what it received as
/// OUT/<name>_recebida.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where peer 1 writes the parts it receives.
    #[arg(default_value = "./recebidas")]
    out: PathBuf,

    /// Overwrite files left in OUT by an earlier run.
    #[arg(long)]
    force: bool,
}

/// Peer 2's parts: more than the 1 KiB the original cut them to, and one of them not text.
fn peer2_parts() -> Vec<(&'static str, Vec<u8>)> {
    let text = "Parte 2 do arquivo: linhas de texto que passam de 1 KiB.\n".repeat(60);
    let binary: Vec<u8> = (0..=255u8).cycle().take(5 * 1024).collect();
    vec![("part2.txt", text.into_bytes()), ("part3.txt", binary)]
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let parts = peer2_parts();
    let options = crate::export::options(args.force)?;
    if !args.force {
        for (name, _) in &parts {
            let path = args.out.join(options.file_name(&PartName::new(*name)?));
            anyhow::ensure!(
                path.symlink_metadata().is_err(),
                "{} exists from an earlier run; pass --force to overwrite it, or name another OUT",
                path.display()
            );
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix("p2p-store-demo.")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let peer1_db = scratch.path().join("peer1.db");
    let (mut peer1, peer1_store) = start_peer1(&peer1_db)?;
    let exporter = exporter::spawn(
        peer1.events(),
        peer1_store,
        args.out.clone(),
        options.clone(),
    )?;
    let addr = peer1.local_addr();
    println!(
        "peer 1: serving a fresh sled store ({}) on {addr}",
        peer1_db.display()
    );
    let handle = peer1.shutdown_handle();
    let serving = std::thread::spawn(move || peer1.run());

    let peer2 = open_store(&scratch.path().join("peer2.db"), Some(BackendKind::Sled))?;
    let verified: Vec<VerifiedPart> = parts
        .iter()
        .map(|(name, bytes)| {
            let name = PartName::new(*name)?;
            Ok(VerifiedPart::hashing(name, bytes.clone())?)
        })
        .collect::<anyhow::Result<_>>()?;
    peer2.put_batch(&verified, OnConflict::Refuse)?;
    for part in &verified {
        println!("peer 2: holds {} ({} bytes)", part.name(), part.size());
    }

    let mut rejected = 0;
    for round in ["push", "push again"] {
        let mut client = net::transfer::Dialer::new("peer 2")
            .timeout(peer::TIMEOUT)
            .dial(&addr.to_string())?;
        let mut say = |event| say(round, event);
        let pushed = net::transfer::push_store(&mut client, peer2.as_ref(), None, &mut say)?;
        rejected += pushed.tally.rejected;
        println!(
            "peer 2 -> peer 1 ({round}): {} stored, {} already had, {} bytes sent",
            pushed.tally.stored, pushed.tally.already_had, pushed.bytes_sent
        );
    }
    handle.shutdown()?;
    serving
        .join()
        .map_err(|_| anyhow::anyhow!("peer 1 panicked"))?
        .context("peer 1 failed")?;
    exporter
        .join()
        .map_err(|_| anyhow::anyhow!("peer 1's exporter panicked"))?;
    println!("peer 1: stopped; it wrote:");
    for (name, bytes) in &parts {
        let path = args.out.join(options.file_name(&PartName::new(*name)?));
        let written =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        anyhow::ensure!(
            &written == bytes,
            "{} differs from peer 2's {name}",
            path.display()
        );
        println!(
            "  {} ({} bytes, identical to peer 2's {name})",
            path.display(),
            written.len()
        );
    }
    Ok(Status::from_failures(rejected as usize))
}

/// Binds peer 1 on the original example's port, or on a free one if that is taken; returns
/// it with its store, which its exporter reads.
fn start_peer1(db: &Path) -> anyhow::Result<(Server, Arc<dyn PartStore>)> {
    let store: Arc<dyn PartStore> = Arc::from(open_store(db, Some(BackendKind::Sled))?);
    let config = |listen: SocketAddr| ServerConfig::new(listen).with_peer_name("peer 1");
    let preferred: SocketAddr = "127.0.0.1:6881".parse().expect("a valid address");
    let server = Server::bind(config(preferred), Arc::clone(&store)).or_else(|err| {
        println!("peer 1: {preferred} is not available ({err}); using a free port");
        Server::bind(
            config("127.0.0.1:0".parse().expect("a valid address")),
            Arc::clone(&store),
        )
        .context("cannot listen on 127.0.0.1")
    })?;
    Ok((server, store))
}

/// Prints one push event of peer 2's.
fn say(round: &str, event: TransferEvent) {
    if let TransferEvent::Settled { name, outcome } = event {
        match outcome {
            Outcome::Stored => println!("peer 2 -> peer 1 ({round}): stored {name}"),
            Outcome::AlreadyHad => {
                println!("peer 2 -> peer 1 ({round}): already had {name}, no bytes sent");
            }
            Outcome::Rejected(reason) => {
                println!("peer 2 -> peer 1 ({round}): rejected {name}: {reason}");
            }
        }
    }
}
