//! `p2p-store serve`: accept parts from other peers and serve them.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use net::http::{HttpConfig, HttpView};
use net::tls::PeerId;
use net::{Access, Exporter, Limits, Server, ServerConfig, ShutdownHandle};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use storage::{BackendKind, PartStore};
use tracing::info;

use crate::{Status, open, peer};

/// Serve the store: other peers push parts to it and fetch parts from it. Stops cleanly on
/// SIGINT or SIGTERM.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db serve --export-dir ./recebidas
  p2p-store serve --listen 0.0.0.0:6881 --allow 192.168.1.0/24 --read-only
  p2p-store --key-file peers.key serve --listen 127.0.0.1:0
  p2p-store serve --http 127.0.0.1:8080
  p2p-store serve --listen 0.0.0.0:6881 --trust SQEEK6XP2BY-45QJHYH4YKO-MTBBQ22G5J2")]
pub struct Args {
    /// Address to listen on; port 0 picks a free port. The first line on stdout says which.
    #[arg(long, default_value = "127.0.0.1:6881", value_name = "ADDR")]
    listen: SocketAddr,

    /// Also write each file, once stored, as DIR/<name>_recebida, synced before the sender is
    /// told it was stored (a file that cannot be written is answered ExportFailed, though
    /// stored).
    #[arg(long, value_name = "DIR")]
    export_dir: Option<PathBuf>,

    /// With --export-dir: overwrite files that already exist.
    #[arg(long, requires = "export_dir")]
    force: bool,

    /// Largest part accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_part_size)]
    max_part_size: u64,

    /// Connections held at once; more are told the server is busy.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,

    /// Connections one address may hold at once; more from it are refused.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections_per_address)]
    max_connections_per_address: usize,

    /// Requests one connection may have unanswered; a client sending more is disconnected.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_in_flight)]
    max_in_flight: u32,

    /// Upload bytes queued for the store, or answer bytes unread, past which a connection is
    /// read no more until they drain.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_buffered_per_connection)]
    max_buffered: u64,

    /// Bytes held for all peers together (bodies arriving, uploads queued, answers unread).
    #[arg(long, alias = "max-queued", value_name = "BYTES", default_value_t = Limits::default().max_memory)]
    max_memory: u64,

    /// Seconds a new connection has to complete its handshake.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().handshake_timeout.as_secs())]
    handshake_timeout: u64,

    /// Serve lists and gets only; refuse pushes.
    #[arg(long)]
    read_only: bool,

    /// Let in only peers whose address is in this network, e.g. 192.168.1.0/24 (repeatable;
    /// everyone when not given).
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<ipnet::IpNet>,

    /// Let in only the peer with this ID (`p2p-store id` prints it), refused in the TLS
    /// handshake otherwise (repeatable; with --trust-file, both lists count).
    #[arg(long = "trust", value_name = "ID")]
    trust: Vec<PeerId>,

    /// A file of trusted IDs, one a line (`#` starts a comment), as for --trust.
    #[arg(long, value_name = "FILE")]
    trust_file: Option<PathBuf>,

    /// Seconds a connection may go without sending a whole frame (or 64 KiB of a body) while
    /// the server is not working on its requests.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout: u64,

    /// Also serve a read-only web view (page, files, JSON API, /metrics) on ADDR.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:6880")]
    http: Option<SocketAddr>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    net::server::raise_fd_limit(args.max_connections);
    let store: Arc<dyn PartStore> = Arc::from(open::store(db, backend)?);
    let identity = Arc::new(net::tls::Identity::load_or_create(db)?);
    let mut trusted = args.trust;
    trusted.extend(
        args.trust_file
            .map(|file| net::tls::read_trust_file(&file))
            .transpose()?
            .into_iter()
            .flatten(),
    );
    let limits = Limits::default()
        .with_max_part_size(args.max_part_size)
        .with_max_connections(args.max_connections)
        .with_max_connections_per_address(args.max_connections_per_address)
        .with_max_in_flight(args.max_in_flight)
        .with_max_buffered_per_connection(args.max_buffered)
        .with_max_memory(args.max_memory)
        .with_handshake_timeout(Duration::from_secs(args.handshake_timeout))
        .with_idle_timeout(Duration::from_secs(args.idle_timeout));
    let access = Access::default()
        .with_trusted(trusted)
        .with_key(peer::key().cloned())
        .with_read_only(args.read_only)
        .with_allow(args.allow);
    let config = ServerConfig::new(args.listen)
        .with_limits(limits)
        .with_access(access)
        .with_identity(identity)
        .with_plaintext_on_loopback(peer::plaintext());
    let mut server = Server::bind(config, Arc::clone(&store))?;
    let http = (args.http.map(HttpConfig::new))
        .map(|config| HttpView::spawn(config, Arc::clone(&store), server.counters()))
        .transpose()
        .context("cannot start the web view")?;
    if let Some(dir) = args.export_dir {
        let options = crate::export::options(args.force)?;
        server.run_before_ack(Arc::new(Exporter::new(store, dir, options)));
    }
    stop_on_signals(server.shutdown_handle())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", server.local_addr())?;
    if let Some(http) = &http {
        writeln!(stdout, "http on http://{}", http.local_addr())?;
    }
    stdout.flush()?;
    let summary = server.run().context("the server failed")?;
    info!(
        connections = summary.connections,
        parts_stored = summary.parts_stored,
        bytes_stored = summary.bytes_stored,
        "served"
    );
    Ok(Status::Done)
}

/// Turns SIGINT and SIGTERM into a graceful shutdown, from a thread of their own.
fn stop_on_signals(handle: ShutdownHandle) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                info!(signal, "stopping");
                if let Err(err) = handle.shutdown() {
                    tracing::error!(%err, "cannot stop the server");
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
