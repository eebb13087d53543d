//! `p2p-store demo`: the original two-peer example, end to end, on the embedded default store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use net::transfer::{Dialer, TransferEvent};
use net::{Exporter, Server, ServerConfig};
use storage::{BackendKind, OnConflict, PartName, PartStore, VerifiedPart, open_store};

use crate::{Status, peer};

/// Run the original example: peer 1 serves a fresh sled store on 127.0.0.1:6881 (or a free
/// port); peer 2 pushes part2.txt and part3.txt to it twice, the second time moving nothing;
/// peer 1 writes what it received as OUT/<name>_recebida.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store demo
  p2p-store demo --force
  p2p-store demo /tmp/received")]
pub struct Args {
    /// Where peer 1 writes the parts it receives.
    #[arg(default_value = "./recebidas")]
    out: PathBuf,

    /// Overwrite files left in OUT by an earlier run.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    // More than the 1 KiB the original cut parts to, and one of them not text.
    let text = "Parte 2 do arquivo: linhas de texto que passam de 1 KiB.\n".repeat(60);
    let binary: Vec<u8> = (0..=255u8).cycle().take(5 * 1024).collect();
    let parts = [("part2.txt", text.into_bytes()), ("part3.txt", binary)];
    let options = crate::export::options(args.force)?;
    let exported = |name: &str| -> anyhow::Result<PathBuf> {
        Ok(args.out.join(options.file_name(&PartName::new(name)?)))
    };
    for (name, _) in &parts {
        let path = exported(name)?;
        anyhow::ensure!(
            args.force || path.symlink_metadata().is_err(),
            "{} exists from an earlier run; pass --force to overwrite it, or name another OUT",
            path.display()
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("p2p-store-demo.")
        .tempdir()?;
    let open = |db: &str| open_store(&scratch.path().join(db), Some(BackendKind::Sled));
    let peer1_store: Arc<dyn PartStore> = Arc::from(open("peer1.db")?);
    let mut peer1 = bind_peer1(&peer1_store)?;
    peer1.run_before_ack(Arc::new(Exporter::new(
        Arc::clone(&peer1_store),
        args.out.clone(),
        options.clone(),
    )));
    let addr = peer1.local_addr().to_string();
    println!("peer 1: serving a fresh sled store on {addr}");
    let stop = peer1.shutdown_handle();
    let serving = std::thread::spawn(move || peer1.run());

    let peer2 = open("peer2.db")?;
    for (name, bytes) in &parts {
        let part = VerifiedPart::hashing(PartName::new(*name)?, bytes.clone())?;
        peer2.put(&part, OnConflict::Refuse)?;
        println!("peer 2: holds {name} ({} bytes)", bytes.len());
    }
    let mut rejected = 0;
    for round in ["push", "push again"] {
        let mut client = Dialer::new("peer 2").timeout(peer::TIMEOUT).dial(&addr)?;
        let mut say = |event| say(round, event);
        let pushed = net::transfer::push_store(&mut client, peer2.as_ref(), None, &mut say)?;
        let tally = pushed.tally;
        rejected += tally.rejected;
        println!(
            "peer 2 -> peer 1 ({round}): {} stored, {} already had, {} bytes sent",
            tally.stored, tally.already_had, pushed.bytes_sent
        );
    }
    stop.shutdown()?;
    let joined = serving
        .join()
        .map_err(|_| anyhow::anyhow!("peer 1 panicked"))?;
    joined.context("peer 1 failed")?;
    println!("peer 1: stopped; it wrote:");
    for (name, bytes) in &parts {
        let path = exported(name)?;
        let shown = path.display();
        let written = std::fs::read(&path).with_context(|| format!("cannot read {shown}"))?;
        anyhow::ensure!(&written == bytes, "{shown} differs from peer 2's {name}");
        println!(
            "  {shown} ({} bytes, identical to peer 2's {name})",
            bytes.len()
        );
    }
    Ok(Status::from_failures(rejected as usize))
}

/// Binds peer 1 on the original example's port, or on a free one if that is taken.
fn bind_peer1(store: &Arc<dyn PartStore>) -> anyhow::Result<Server> {
    let config = |listen: SocketAddr| ServerConfig::new(listen).with_peer_name("peer 1");
    let preferred: SocketAddr = "127.0.0.1:6881".parse()?;
    Server::bind(config(preferred), Arc::clone(store)).or_else(|err| {
        println!("peer 1: {preferred} is not available ({err}); using a free port");
        let any: SocketAddr = "127.0.0.1:0".parse()?;
        Server::bind(config(any), Arc::clone(store)).context("cannot listen on 127.0.0.1")
    })
}

/// Prints what became of one of peer 2's parts.
fn say(round: &str, event: TransferEvent) {
    if let TransferEvent::Settled { name, outcome } = event {
        println!("peer 2 -> peer 1 ({round}): {}", outcome.describe(&name));
    }
}
