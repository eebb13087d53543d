//! Everything the `p2p-store` command does, from a Rust program: two peers served in-process,
//! each with its web view, a file pushed to both, fetched from both at once into a third
//! store, exported and checked, and a range of it read over HTTP.
//!
//! ```sh
//! cargo run --release -p net --example embed
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use net::http::{HttpConfig, HttpView};
use net::transfer::{self, Dialer, Outcome, TransferEvent};
use net::{ServeSummary, Server, ServerConfig, ShutdownHandle};
use storage::{BackendKind, ExportOptions, FileSource, PartName, PartStore};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The file's size: ten 1 MiB chunks.
const FILE_BYTES: usize = 10 * 1024 * 1024;

fn main() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let source = scratch.path().join("report.bin");
    let bytes: Vec<u8> = (0..FILE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&source, &bytes)?;

    let peers = [
        serve(&scratch.path().join("peer-a.db"))?,
        serve(&scratch.path().join("peer-b.db"))?,
    ];
    let dialer = Dialer::new("embed example");
    for peer in &peers {
        let mut client = dialer.dial(&peer.addr)?;
        let files = [FileSource::new(&source)];
        let pushed = transfer::push_files(
            &mut client,
            &files,
            storage::DEFAULT_CHUNK_SIZE,
            &mut |_| {},
        )?;
        println!(
            "pushed report.bin to {}: {} stored, {} bytes sent",
            peer.addr, pushed.tally.stored, pushed.bytes_sent
        );
        check(pushed.tally.stored == 1, "the push stored the file")?;
    }

    let local = open(&scratch.path().join("local.db"))?;
    let addrs: Vec<String> = peers.iter().map(|peer| peer.addr.clone()).collect();
    let name = PartName::new("report.bin")?;
    let mut stored = false;
    let pulled = transfer::pull(
        &dialer,
        &addrs,
        std::slice::from_ref(&name),
        local.as_ref(),
        &mut |event| {
            if let TransferEvent::Settled { outcome, .. } = event {
                stored |= outcome == Outcome::Stored;
            }
        },
    )?;
    for (peer, received) in &pulled.peers {
        println!("fetched {received} bytes from {peer}");
    }
    check(stored, "the fetch stored the file")?;

    let out = scratch.path().join("out");
    let options = ExportOptions::new("_recebida")?;
    let (_, written) = storage::export(local.as_ref(), &out, Some(&[name]), &options)?
        .pop()
        .ok_or("nothing exported")?;
    let written = written?;
    check(
        std::fs::read(&written)? == bytes,
        "the export is identical to the source",
    )?;
    println!(
        "exported {} ({FILE_BYTES} bytes, identical)",
        written.display()
    );

    // The web view serves any range of the file, verified chunk by chunk, as curl -r would ask.
    let web = peers[0].web.local_addr();
    let mut http = TcpStream::connect(web)?;
    http.write_all(b"GET /files/report.bin HTTP/1.1\r\nRange: bytes=1048570-1048579\r\n\r\n")?;
    let mut answer = Vec::new();
    http.read_to_end(&mut answer)?;
    let body_at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no head")?
        + 4;
    check(answer.starts_with(b"HTTP/1.1 206 "), "the range is served")?;
    check(
        answer[body_at..] == bytes[1_048_570..1_048_580],
        "the range holds the file's bytes",
    )?;
    println!("read 10 bytes across a chunk boundary from http://{web}/files/report.bin");
    let counters = peers[0].counters.snapshot();
    println!("{} has received {} bytes", peers[0].addr, counters.bytes_in);

    for peer in peers {
        let addr = peer.addr.clone();
        let summary = peer.stop()?;
        println!("{addr} stopped after {} connections", summary.connections);
    }
    Ok(())
}

/// A server running on its own thread, and its web view.
struct Running {
    addr: String,
    stop: ShutdownHandle,
    thread: JoinHandle<std::io::Result<ServeSummary>>,
    web: HttpView,
    counters: Arc<net::ServerCounters>,
}

impl Running {
    fn stop(self) -> Result<ServeSummary> {
        self.web.shutdown();
        self.stop.shutdown()?;
        let summary = self.thread.join().map_err(|_| "a server panicked")??;
        Ok(summary)
    }
}

fn open(db: &Path) -> Result<Box<dyn PartStore>> {
    Ok(storage::open_store(db, Some(BackendKind::Sled))?)
}

/// Serves a new sled store at `db` on a free port of 127.0.0.1, and its web view on another.
fn serve(db: &Path) -> Result<Running> {
    let config = ServerConfig::new("127.0.0.1:0".parse()?);
    let store: Arc<dyn PartStore> = Arc::from(open(db)?);
    let server = Server::bind(config, Arc::clone(&store))?;
    let counters = server.counters();
    let web_config = HttpConfig::new("127.0.0.1:0".parse()?);
    let web = HttpView::spawn(web_config, store, Arc::clone(&counters))?;
    let addr = server.local_addr().to_string();
    let stop = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    Ok(Running {
        addr,
        stop,
        thread,
        web,
        counters,
    })
}

fn check(holds: bool, what: &str) -> Result<()> {
    if holds {
        Ok(())
    } else {
        Err(format!("failed: {what}").into())
    }
}
