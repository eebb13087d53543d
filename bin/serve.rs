//! `p2p-store serve`: accept parts from other peers and serve them.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use net::http::{HttpConfig, HttpView};
use net::{Exporter, Limits, Server, ServerConfig, ShutdownHandle};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use storage::{BackendKind, PartStore, WatchOptions};
use tracing::info;

use crate::{Status, open, peer};

/// Serve the store: other peers push parts to it and fetch parts from it. Stops cleanly on
/// SIGINT or SIGTERM.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db serve --export-dir ./recebidas
  p2p-store serve --listen 0.0.0.0:6881 --allow 192.168.1.0/24 --read-only
  p2p-store --key-file peers.key serve --listen 127.0.0.1:0
  p2p-store serve --http 127.0.0.1:8080 --watch ./shared
  p2p-store --db ./b.db serve --listen 127.0.0.1:6882 --mirror 127.0.0.1:6881
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

    #[command(flatten)]
    limits: net::flags::LimitFlags,

    #[command(flatten)]
    access: net::flags::AccessFlags,

    /// Import the files that appear or change in DIR (not its subdirectories, nor names
    /// starting with `.`) once each is left alone for --watch-settle seconds.
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,

    /// With --watch: seconds a file must go unchanged before it is imported.
    #[arg(long, value_name = "SECS", default_value_t = 1, requires = "watch")]
    watch_settle: u64,

    /// Keep this store a superset of the peer at ADDR's (repeatable): pull what it holds, then
    /// each part it newly stores, reconnecting when it goes away. Names that hold other bytes
    /// here are kept as they are, and reported.
    #[arg(long = "mirror", value_name = "ADDR")]
    mirrors: Vec<String>,

    /// Announce this peer on the local network (mDNS), so `p2p-store peers` finds it and
    /// `--from ID` reaches it; needs a --listen address other hosts can reach.
    #[arg(long)]
    announce: bool,

    /// Also serve a read-only web view (page, files, JSON API, /metrics) on ADDR.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:6880")]
    http: Option<SocketAddr>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let limits: Limits = args.limits.into();
    net::server::raise_fd_limit(limits.max_connections);
    let store: Arc<dyn PartStore> = Arc::from(open::store(db, backend)?);
    let identity = Arc::new(net::tls::Identity::load_or_create(db)?);
    let id = identity.id();
    let access = args.access.into_access(peer::key().cloned())?;
    let config = ServerConfig::new(args.listen)
        .with_limits(limits)
        .with_access(access)
        .with_identity(identity)
        .with_plaintext_on_loopback(peer::plaintext());
    let mut server = Server::bind(config, Arc::clone(&store))?;
    let _announced = (args.announce)
        .then(|| net::lan::announce(&id, server.local_addr()))
        .transpose()
        .context("cannot announce this peer")?;
    let http = (args.http.map(HttpConfig::new))
        .map(|config| HttpView::spawn(config, Arc::clone(&store), server.counters()))
        .transpose()
        .context("cannot start the web view")?;
    if let (Some(watch), Some(export)) = (&args.watch, &args.export_dir) {
        anyhow::ensure!(
            watch.canonicalize().ok() != export.canonicalize().ok(),
            "--watch and --export-dir name the same directory: each export would be imported again"
        );
    }
    let settle = WatchOptions::default().settle(Duration::from_secs(args.watch_settle));
    let watching = (args.watch.as_deref())
        .map(|dir| storage::watch(dir, server.store(), settle, drop))
        .transpose()?;
    let dialer = peer::dialer(peer::TIMEOUT)?;
    let mirrors = (args.mirrors.iter())
        .map(|addr| net::transfer::mirror(dialer.clone(), addr, server.store()))
        .collect::<std::io::Result<Vec<_>>>()?;
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
    // The watch's import and the mirrors' pulls under way get a few seconds to finish, all
    // together: a huge file must not hold the stop for minutes.
    let deadline = Instant::now() + STOP_WORK_WITHIN;
    if let Some(watching) = watching {
        watching.stop_within(deadline.saturating_duration_since(Instant::now()));
    }
    for mirror in mirrors {
        mirror.stop(deadline.saturating_duration_since(Instant::now()));
    }
    info!(
        connections = summary.connections,
        parts_stored = summary.parts_stored,
        bytes_stored = summary.bytes_stored,
        "served"
    );
    Ok(Status::Done)
}

/// How long the watch's import and the mirrors' pulls under way may go on once the server
/// has stopped.
const STOP_WORK_WITHIN: Duration = Duration::from_secs(5);

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
