//! A read-only web view of a store and its server: a page with the files and live counters,
//! the files themselves (`GET /files/NAME`, with `Range`), a JSON API and Prometheus metrics.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | the page (`page.html`: self-contained, its script polls `/api/stats` and `/api/files`) |
//! | `/files/NAME` | the assembled file, each chunk verified before it is sent; `Range`, `ETag` |
//! | `/api/files` | the files with their sizes and hashes, as JSON |
//! | `/api/stats` | the server's counters and the throughput of the last minutes, as JSON |
//! | `/metrics` | the counters in Prometheus's text format |
//!
//! Threading: the view runs on threads of its own and never talks to the event loop; it reads
//! the server's [`ServerCounters`](crate::ServerCounters) (atomics) and the store (as the
//! server's reader workers do), so nothing a web client does can make the p2p server wait.
//! A fixed number of workers each serve one connection at a time, one request per
//! connection; a request's head must fit in [`MAX_HEAD`] bytes and arrive within the
//! configured time, and a client that stops reading is cut after [`WRITE_TIMEOUT`]. A client
//! can so hold at most one worker for a bounded time and a bounded buffer, never the server.
//!
//! HTTP parsing is `httparse` (hyper's parser: no allocation, a fixed header array). The
//! server around it is ours because the blocking servers on crates.io (`tiny_http` 0.12)
//! start a thread per connection and read header lines without a length limit.

mod api;
mod files;
mod history;
mod metrics;
mod page;
mod range;
mod request;
mod response;
mod routes;
mod workers;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use storage::PartStore;

use crate::ServerCounters;
use history::History;

/// Longest request head (request line and headers) read, in bytes; longer gets `431`.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most headers one request may have; more gets `431`.
pub const MAX_HEADERS: usize = 32;

/// Longest one write to a client may block: a client that stops reading is cut.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how the web view serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub workers: usize,
    /// Time a client has to send its whole request head.
    pub request_timeout: Duration,
}

impl HttpConfig {
    /// Four workers, ten seconds for a request head.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            workers: 4,
            request_timeout: Duration::from_secs(10),
        }
    }

    #[must_use]
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// What every worker reads.
pub(crate) struct View {
    pub(crate) store: Arc<dyn PartStore>,
    pub(crate) counters: Arc<ServerCounters>,
    pub(crate) history: Arc<History>,
    pub(crate) request_timeout: Duration,
}

/// A running web view. It serves until [`HttpView::shutdown`], or until the process ends.
pub struct HttpView {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    sampler: history::Sampler,
}

impl HttpView {
    /// Binds `config.listen` and starts the workers and the throughput sampler.
    ///
    /// # Errors
    /// When the address cannot be bound or a thread cannot be started.
    pub fn spawn(
        config: HttpConfig,
        store: Arc<dyn PartStore>,
        counters: Arc<ServerCounters>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let history = Arc::new(History::default());
        let sampler = history::Sampler::spawn(Arc::clone(&history), Arc::clone(&counters))?;
        let view = Arc::new(View {
            store,
            counters,
            history,
            request_timeout: config.request_timeout,
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let threads = (0..config.workers)
            .map(|index| {
                let (listener, view, stopping) = (
                    listener.try_clone()?,
                    Arc::clone(&view),
                    Arc::clone(&stopping),
                );
                std::thread::Builder::new()
                    .name(format!("http-{index}"))
                    .spawn(move || workers::serve(&listener, &view, &stopping))
            })
            .collect::<io::Result<_>>()?;
        tracing::info!(addr = %local_addr, "web view serving");
        Ok(Self {
            local_addr,
            stopping,
            threads,
            sampler,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets each worker finish its request, and waits for them.
    pub fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Each worker blocks in accept: one connection apiece wakes them to see the flag.
        for _ in &self.threads {
            let _ = TcpStream::connect(self.local_addr);
        }
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a web view worker panicked");
            }
        }
        self.sampler.stop();
    }
}
