//! The server: one mio event loop that owns every socket, and the store workers.
//!
//! The loop (`event_loop.rs`) accepts, reads until `WouldBlock`, decodes frames, and hands
//! anything that needs the store to a worker (`workers/`) over a channel; it never blocks on
//! disk. Workers answer through a channel and wake the loop with a [`mio::Waker`]. Each
//! connection's protocol state lives in its session (`session/`), its socket buffers in
//! `connection.rs`; who gets in at all is decided by `admission.rs`. What the server does is
//! reported as [`ServerEvent`]s (`events.rs`) for the caller to act on; the server runs no
//! side jobs (exports, mirrors) itself, except that a caller may give it a [`BeforeAck`] hook
//! (`before_ack.rs`) that must be done before a part is acknowledged.
//!
//! Budgets give backpressure instead of memory growth: a connection stops being read while it
//! has too many upload bytes queued, too many answer bytes unread or too many gets at the
//! reader, and every connection stops while the writer's queue is full. Stopping is cheap: the
//! peer's kernel buffers fill, and TCP slows the sender. A request past the in-flight limit the
//! handshake announced is a broken client, and is disconnected.
//!
//! Shutdown ([`ShutdownHandle::shutdown`]): stop accepting and reading, let the workers finish
//! what they hold (so every `Stored` sent is true), send the answers, close, sync the store.
//!
//! A worker that dies (a panic in a store backend: sled unwraps some I/O errors) is not
//! restarted, since whatever broke the store is likely to break it again. The loop notices at
//! once (a dying worker's outbox wakes it; each sweep checks too), logs it, tells every
//! connection `Error ShuttingDown` and closes it, so no connection waits for an answer that
//! will never come; the live workers finish what they hold, the store is synced, and
//! [`Server::run`] returns [`WorkerStopped`] (as an `io::Error`), so `serve` exits non-zero.

mod admission;
mod before_ack;
mod body_pool;
mod config;
mod connection;
mod counters;
mod event_loop;
mod events;
mod fd_limit;
mod listener;
mod memory;
mod output;
mod session;
mod transport;
mod turn_shares;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use storage::{Feed, FeedStore, PartStore};
use tracing::{error, info};

pub use before_ack::{BeforeAck, NotDone};
use body_pool::BodyPool;
pub use config::{Access, ConfigError, MAX_PEER_NAME, ServerConfig};
pub use counters::{CountersSnapshot, ServerCounters};
use event_loop::{EventLoop, LISTENER, WAKER};
use events::EventSender;
pub use events::ServerEvent;
pub use fd_limit::raise_fd_limit;
use session::Shared;

use crate::tls::{self, Identity, IdentityError, PeerId, Trust};

/// Totals of one `run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeSummary {
    pub connections: u64,
    pub parts_stored: u64,
    pub bytes_stored: u64,
}

/// Why [`Server::run`] stopped without being asked to: a store worker died. Comes wrapped in
/// the `io::Error` that `run` returns (see [`std::io::Error::get_ref`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store worker {worker} stopped unexpectedly")]
pub struct WorkerStopped {
    /// The worker's thread name.
    pub worker: String,
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
    events: Option<Sender<ServerEvent>>,
    before_ack: Option<Arc<dyn BeforeAck>>,
    counters: Arc<ServerCounters>,
    id: PeerId,
    tls: Option<Arc<rustls::ServerConfig>>,
    feed: Arc<Feed>,
    /// Set when the feed has news the loop has not announced yet.
    news: Arc<AtomicBool>,
}

/// Why a server could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {cause}")]
    Listen { addr: SocketAddr, cause: io::Error },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl Server {
    /// Checks the configuration and binds the listening socket. Nothing is served until
    /// [`Server::run`].
    ///
    /// # Errors
    /// [`BindError::Config`] for a setting the server cannot run with; [`BindError::Listen`]
    /// when the address cannot be bound or the poller cannot be made.
    pub fn bind(config: ServerConfig, store: Arc<dyn PartStore>) -> Result<Self, BindError> {
        config.validate()?;
        let identity = match &config.identity {
            Some(identity) => Arc::clone(identity),
            None => Arc::new(Identity::generate()?),
        };
        let trust = match config.access.trusted.as_slice() {
            [] => Trust::Anyone,
            ids => Trust::Only(Arc::new(ids.iter().copied().collect())),
        };
        let tls = (!config.plaintext)
            .then(|| tls::server_config(&identity, trust))
            .transpose()?;
        let addr = config.listen;
        Self::listen(config, store, identity.id(), tls)
            .map_err(|cause| BindError::Listen { addr, cause })
    }

    fn listen(
        config: ServerConfig,
        store: Arc<dyn PartStore>,
        id: PeerId,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = listener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let feed = Feed::new();
        let store: Arc<dyn PartStore> = Arc::new(FeedStore::new(store, Arc::clone(&feed)));
        let news = Arc::new(AtomicBool::new(false));
        feed.on_publish({
            let (news, waker) = (Arc::clone(&news), Arc::clone(&waker));
            // One wake-up for any number of entries added before the loop looks.
            move || {
                if !news.swap(true, Ordering::SeqCst)
                    && let Err(err) = waker.wake()
                {
                    tracing::warn!(%err, "cannot wake the event loop for subscribers");
                }
            }
        });
        Ok(Self {
            poll,
            listener,
            local_addr,
            config,
            store,
            waker,
            feed,
            news,
            shutdown: Arc::new(AtomicBool::new(false)),
            events: None,
            before_ack: None,
            counters: Arc::default(),
            id,
            tls,
        })
    }

    /// The ID of the key this server shows its peers.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// What the server does, as [`ServerEvent`]s, from now until `run` returns (then the
    /// channel closes). The channel is unbounded so the store writer never waits for the
    /// listener: take events promptly. A second call replaces the first receiver.
    pub fn events(&mut self) -> Receiver<ServerEvent> {
        let (sender, receiver) = mpsc::channel();
        self.events = Some(sender);
        receiver
    }

    /// Has `hook` run on every newly stored part before its `Stored` answer goes out (a
    /// second call replaces the first hook). The hook runs on a thread of its own; the store
    /// writer goes on committing meanwhile, and the answers keep their order.
    pub fn run_before_ack(&mut self, hook: Arc<dyn BeforeAck>) {
        self.before_ack = Some(hook);
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store as the server writes it: what is put through it is announced to the
    /// server's subscribers too. Give it, not the store given to [`Server::bind`], to anything
    /// else that writes while the server runs (a watched folder, a mirror).
    pub fn store(&self) -> Arc<dyn PartStore> {
        Arc::clone(&self.store)
    }

    /// The live totals of this server, readable from any thread while it runs.
    pub fn counters(&self) -> Arc<ServerCounters> {
        Arc::clone(&self.counters)
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
    /// When polling fails, a store worker dies ([`WorkerStopped`]) or the final sync fails; a
    /// failing connection is only logged.
    pub fn run(self) -> io::Result<ServeSummary> {
        let (read_jobs, read_queue) = mpsc::channel();
        let (to_writer, upload_queue) = mpsc::channel();
        let (to_verifier, unverified) = mpsc::channel();
        let (outbox, inbox) = workers::mailbox(Arc::clone(&self.waker));
        let bodies = Arc::new(BodyPool::new(self.config.limits.max_memory));
        let events = EventSender::new(self.events);
        let mut workers =
            workers::spawn_readers(Arc::clone(&self.store), read_queue, outbox.clone())?;
        let verifier_outbox = outbox.clone();
        let acks = match self.before_ack {
            Some(hook) => {
                let (commits, committed) = mpsc::channel();
                let bodies = Arc::clone(&bodies);
                workers.push(workers::spawn("store-acks", move || {
                    workers::run_acker(hook, committed, outbox, &bodies);
                })?);
                workers::Acks::AfterHook(commits)
            }
            None => workers::Acks::Now(outbox),
        };
        // The writer before the verifier: when the writer dies, the verifier ends too, and the
        // first worker found ended is the one named.
        workers.push(workers::spawn("store-writer", {
            let store = Arc::clone(&self.store);
            let bodies = Arc::clone(&bodies);
            move || workers::run_writer(store, upload_queue, acks, events, &bodies)
        })?);
        workers.push(workers::spawn("body-verifier", {
            let to_writer = to_writer.clone();
            move || workers::run_verifier(unverified, to_writer, verifier_outbox)
        })?);
        let shared = Shared {
            limits: self.config.limits.clone(),
            peer_name: self.config.peer_name.clone(),
            own_id: self.id,
            tls: self.tls,
            key: self.config.access.key.clone(),
            read_only: self.config.access.read_only,
            read_jobs,
            uploads: workers::UploadQueue {
                to_verifier,
                to_writer,
            },
            memory: memory::Memory::new(self.config.limits.max_memory),
            turn: turn_shares::TurnShares::new(),
            bodies,
            counters: Arc::clone(&self.counters),
            shutting_down: false,
            feed: Arc::clone(&self.feed),
            news: Arc::clone(&self.news),
        };
        info!(addr = %self.local_addr, id = %self.id, "serving");
        let mut event_loop = EventLoop::new(
            self.poll,
            self.listener,
            self.config.access.allow.clone(),
            shared,
            inbox,
            workers,
            self.shutdown,
        );
        let result = event_loop.run();
        let summary = self.counters.summary();
        let workers = std::mem::take(&mut event_loop.workers);
        drop(event_loop);
        for handle in workers {
            if handle.join().is_err() {
                error!("a store worker panicked");
            }
        }
        let synced = self.store.sync().map_err(io::Error::other);
        info!(?summary, "stopped");
        result.and(synced).map(|()| summary)
    }
}
