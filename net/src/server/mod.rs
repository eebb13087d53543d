//! The server: one mio event loop that owns every socket, and two store workers.
//!
//! The loop (`event_loop.rs`) accepts, reads until `WouldBlock`, decodes frames, and hands
//! anything that needs the store to a worker (`workers/`) over a channel; it never blocks on
//! disk. Workers answer through a channel and wake the loop with a [`mio::Waker`]. Each
//! connection's protocol state lives in its session (`session/`), its socket buffers in
//! `connection.rs`; who gets in at all is decided by `admission.rs`.
//!
//! Budgets give backpressure instead of memory growth: a connection stops being read while it
//! has too many upload bytes queued, too many answer bytes unread or too many gets at the
//! reader, and every connection stops while the writer's queue is full. Stopping is cheap: the
//! peer's kernel buffers fill, and TCP slows the sender. A request past the in-flight limit the
//! handshake announced is a broken client, and is disconnected.
//!
//! Shutdown ([`ShutdownHandle::shutdown`]): stop accepting and reading, let the workers finish
//! what they hold (so every `Stored` sent is true), send the answers, close, sync the store.

mod admission;
mod config;
mod connection;
mod event_loop;
mod listener;
mod session;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use storage::PartStore;
use tracing::{error, info};

pub use config::{Access, ServerConfig};
use event_loop::{EventLoop, LISTENER, WAKER};
use session::Shared;
use workers::{ExportTo, Outbox};

/// Totals of one `run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeSummary {
    pub connections: u64,
    pub parts_stored: u64,
    pub bytes_stored: u64,
}

/// Asks a running server to stop, from any thread (a signal handler's thread included).
#[derive(Clone)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Starts a graceful stop; `Server::run` returns once it is done.
    ///
    /// # Errors
    /// When the loop cannot be woken.
    pub fn shutdown(&self) -> io::Result<()> {
        self.requested.store(true, Ordering::SeqCst);
        self.waker.wake()
    }
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    store: Arc<dyn PartStore>,
    waker: Arc<Waker>,
    shutdown: Arc<AtomicBool>,
}

impl Server {
    /// Binds the listening socket. Nothing is served until [`Server::run`].
    ///
    /// # Errors
    /// When the address cannot be bound or the poller cannot be made.
    pub fn bind(config: ServerConfig, store: Arc<dyn PartStore>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = listener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Self {
            poll,
            listener,
            local_addr,
            config,
            store,
            waker,
            shutdown: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            requested: Arc::clone(&self.shutdown),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Serves until a shutdown is asked for, then syncs the store.
    ///
    /// # Errors
    /// When polling fails or the final sync fails; a failing connection is only logged.
    pub fn run(self) -> io::Result<ServeSummary> {
        let (read_jobs, read_queue) = mpsc::channel();
        let (uploads, upload_queue) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let outbox = Outbox {
            done: done_tx,
            waker: Arc::clone(&self.waker),
        };
        let export = self.config.export_dir.clone().map(|dir| ExportTo {
            dir,
            overwrite: self.config.export_overwrite,
        });
        let workers = [
            workers::spawn("store-reader", {
                let (store, outbox) = (Arc::clone(&self.store), outbox.clone());
                move || workers::run_reader(store, read_queue, outbox)
            })?,
            workers::spawn("store-writer", {
                let store = Arc::clone(&self.store);
                move || workers::run_writer(store, upload_queue, outbox, export)
            })?,
        ];
        let shared = Shared {
            limits: self.config.limits.clone(),
            peer_name: self.config.peer_name.clone(),
            key: self.config.access.key.clone(),
            read_only: self.config.access.read_only,
            read_jobs,
            uploads,
            queued_bytes: 0,
            shutting_down: false,
        };
        info!(addr = %self.local_addr, "serving");
        let mut event_loop = EventLoop::new(
            self.poll,
            self.listener,
            self.config.access.allow.clone(),
            shared,
            done,
            self.shutdown,
        );
        let result = event_loop.run();
        let summary = event_loop.summary;
        drop(event_loop);
        for handle in workers {
            if handle.join().is_err() {
                error!("a store worker panicked");
            }
        }
        self.store.sync().map_err(io::Error::other)?;
        info!(?summary, "stopped");
        result.map(|()| summary)
    }
}
