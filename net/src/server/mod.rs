//! The server: one mio event loop that owns every socket, and two store workers.
//!
//! The loop accepts, reads until `WouldBlock`, decodes frames, and hands anything that needs
//! the store to a worker over a channel; it never blocks on disk. Workers answer through a
//! channel and wake the loop with a [`mio::Waker`]. Write interest is registered only while a
//! connection has output pending. mio has no timers, so each poll waits at most until the
//! earliest connection deadline known (handshake, idle, or the grace after an error reply),
//! and a second at most; only then are all deadlines looked at, so an event costs nothing per
//! idle connection.
//!
//! Budgets give backpressure instead of memory growth: a connection stops being read while it
//! has too many upload bytes queued, too many answer bytes unread or too many gets at the
//! reader, and every connection stops while the writer's queue is full. Stopping is cheap: the
//! peer's kernel buffers fill, and TCP slows the sender. A request past the in-flight limit the
//! handshake announced is a broken client, and is disconnected.
//!
//! Shutdown ([`ShutdownHandle::shutdown`]): stop accepting and reading, let the workers finish
//! what they hold (so every `Stored` sent is true), send the answers, close, sync the store.

mod connection;
mod session;
mod worker;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use storage::{Overwrite, PartStore};
use tracing::{debug, error, info, warn};

use ipnet::IpNet;

use crate::Limits;
use crate::auth::Key;
use crate::frame;
use crate::message::{ErrorCode, Response};
use connection::Connection;
use session::{Session, Shared};
use worker::{ConnId, Done, ExportTo, Outbox};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest between two sweeps of every connection's deadline. Sweeps are otherwise run only
/// when the earliest known deadline passes, so an event costs nothing per idle connection.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Longest the loop waits for workers and slow readers once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// The name this peer gives in its handshake.
    pub peer_name: String,
    /// Also write each stored part as `<dir>/<name>_recebida`.
    pub export_dir: Option<PathBuf>,
    pub export_overwrite: Overwrite,
    pub access: Access,
}

/// Who may connect, and what they may do.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Peers must prove knowledge of this key in the handshake.
    pub key: Option<Key>,
    /// Serve lists and gets; refuse pushes.
    pub read_only: bool,
    /// When not empty, only addresses in these networks may connect.
    pub allow: Vec<IpNet>,
}

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
        let mut listener = TcpListener::bind(config.listen)?;
        deepen_backlog(&listener)?;
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
            spawn("store-reader", {
                let (store, outbox) = (Arc::clone(&self.store), outbox.clone());
                move || worker::run_reader(store, read_queue, outbox)
            })?,
            spawn("store-writer", {
                let store = Arc::clone(&self.store);
                move || worker::run_writer(store, upload_queue, outbox, export)
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
        let mut event_loop = EventLoop {
            poll: self.poll,
            listener: Some(self.listener),
            allow: self.config.access.allow.clone(),
            sessions: Slab::new(),
            shared,
            done,
            shutdown: self.shutdown,
            next_serial: 0,
            accept_paused_until: None,
            next_sweep: Instant::now() + MAX_SWEEP_INTERVAL,
            summary: ServeSummary::default(),
        };
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

/// Connections the kernel completes and queues for `accept` while the loop is busy elsewhere.
/// mio listens with std's 128: a burst of connects past that has its SYNs dropped, and each
/// dropped client waits a second to retry. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Raises the listening socket's backlog to [`LISTEN_BACKLOG`]; Linux takes a second `listen`
/// on a listening socket as a new backlog.
fn deepen_backlog(listener: &TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `listen` only reads its two integer arguments; the descriptor is open for as long
    // as `listener` is borrowed.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(body)
}

struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    allow: Vec<IpNet>,
    sessions: Slab<Session>,
    shared: Shared,
    done: Receiver<Done>,
    shutdown: Arc<AtomicBool>,
    next_serial: u64,
    accept_paused_until: Option<Instant>,
    /// When to next look at every connection's deadline.
    next_sweep: Instant,
    summary: ServeSummary,
}

impl EventLoop {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut shutdown_deadline = None;
        loop {
            let wake_at = self
                .accept_paused_until
                .map_or(self.next_sweep, |until| until.min(self.next_sweep));
            let timeout =
                wake_at.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(now),
                    // The workers' answers are taken right after this loop.
                    WAKER => {}
                    Token(token) => self.on_socket(token - FIRST_CONNECTION, now),
                }
            }
            self.take_done(now);
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept(now);
            }
            if now >= self.next_sweep {
                self.expire(now);
            }
            if shutdown_deadline.is_none() && self.shutdown.load(Ordering::SeqCst) {
                info!(connections = self.sessions.len(), "shutting down");
                shutdown_deadline = Some(now + SHUTDOWN_GRACE);
                self.begin_shutdown();
            }
            if let Some(deadline) = shutdown_deadline {
                self.finish_shut_down_sessions(now);
                if self.sessions.is_empty() || now >= deadline {
                    return Ok(());
                }
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| now < until) {
            return;
        }
        self.accept_paused_until = None;
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    // Out of descriptors (EMFILE/ENFILE) or the like: the pending connection
                    // stays queued; retry shortly instead of spinning on it.
                    warn!(%err, "cannot accept a connection; retrying shortly");
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&plain_ip(peer))) {
            warn!(%peer, "refusing a connection: address not allowed");
            refuse(
                &mut stream,
                ErrorCode::Forbidden,
                "this address may not connect",
            );
            return;
        }
        if self.sessions.len() >= self.shared.limits.max_connections {
            warn!(%peer, max = self.shared.limits.max_connections, "refusing a connection: server full");
            refuse(
                &mut stream,
                ErrorCode::Busy,
                "the server holds its maximum number of connections; try again later",
            );
            return;
        }
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%err, "cannot set TCP_NODELAY");
        }
        let entry = self.sessions.vacant_entry();
        let slot = entry.key();
        let token = Token(slot + FIRST_CONNECTION);
        if let Err(err) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            error!(%err, %peer, "cannot register a connection");
            return;
        }
        let id = ConnId {
            slot,
            serial: self.next_serial,
        };
        self.next_serial += 1;
        self.summary.connections += 1;
        debug!(%peer, slot, "accepted");
        let session = entry.insert(Session::new(Connection::new(stream, peer, now), id, now));
        if let Some(deadline) = session.deadline(&self.shared.limits) {
            self.next_sweep = self.next_sweep.min(deadline);
        }
    }

    fn on_socket(&mut self, slot: usize, now: Instant) {
        if !self.sessions.contains(slot) {
            return;
        }
        let result = drive(&self.poll, &mut self.shared, &mut self.sessions[slot], now);
        self.settle(slot, result);
    }

    /// Delivers the workers' answers and resumes the connections they unblock.
    fn take_done(&mut self, now: Instant) {
        let was_full = self.shared.queued_bytes >= self.shared.limits.max_queued_bytes;
        let mut touched = Vec::new();
        while let Ok(done) = self.done.try_recv() {
            if let Response::Stored { .. } = done.response {
                self.summary.parts_stored += 1;
                self.summary.bytes_stored += done.released;
            }
            match self.sessions.get_mut(done.conn.slot) {
                Some(session) if session.id == done.conn => {
                    touched.push(done.conn.slot);
                    session.complete(done, &mut self.shared);
                }
                _ => self.shared.queued_bytes -= done.released,
            }
        }
        let now_open = self.shared.queued_bytes < self.shared.limits.max_queued_bytes;
        if was_full && now_open {
            touched.extend(
                self.sessions
                    .iter()
                    .filter(|(_, session)| session.stalled)
                    .map(|(slot, _)| slot),
            );
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            let result = drive(&self.poll, &mut self.shared, &mut self.sessions[slot], now);
            self.settle(slot, result);
        }
    }

    /// Drops a session that failed or finished.
    fn settle(&mut self, slot: usize, result: io::Result<()>) {
        let session = &self.sessions[slot];
        let close = match result {
            Ok(()) => session.is_finished(),
            Err(err) => {
                debug!(peer = %session.conn.peer, %err, "connection failed");
                true
            }
        };
        if close {
            self.close(slot);
        } else if let Some(deadline) = session.deadline(&self.shared.limits) {
            // Deadlines only move later with activity; a new or failing connection can bring
            // the next sweep forward.
            self.next_sweep = self.next_sweep.min(deadline);
        }
    }

    fn close(&mut self, slot: usize) {
        let mut session = self.sessions.remove(slot);
        if let Err(err) = self.poll.registry().deregister(&mut session.conn.stream) {
            debug!(%err, "deregistering a closed connection");
        }
        debug!(peer = %session.conn.peer, "closed");
    }

    /// Acts on every passed deadline and finds the next one.
    fn expire(&mut self, now: Instant) {
        self.next_sweep = now + MAX_SWEEP_INTERVAL;
        let mut expired = Vec::new();
        for (slot, session) in &self.sessions {
            match session.deadline(&self.shared.limits) {
                Some(deadline) if deadline <= now => expired.push(slot),
                Some(deadline) => self.next_sweep = self.next_sweep.min(deadline),
                None => {}
            }
        }
        for slot in expired {
            let session = &mut self.sessions[slot];
            if session.expire(&self.shared.limits) {
                self.close(slot);
            } else {
                let result = flush(&self.poll, session, now);
                self.settle(slot, result);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        self.shared.shutting_down = true;
        if let Some(mut listener) = self.listener.take()
            && let Err(err) = self.poll.registry().deregister(&mut listener)
        {
            debug!(%err, "deregistering the listener");
        }
    }

    /// Tells each connection with nothing left at the workers that the server is stopping.
    fn finish_shut_down_sessions(&mut self, now: Instant) {
        let slots: Vec<usize> = self.sessions.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            let session = &mut self.sessions[slot];
            session.shut_down();
            let result = flush(&self.poll, session, now);
            self.settle(slot, result);
        }
    }
}

/// Reads and answers what the peer sent, then writes; once more if the write freed the
/// output budget that had stopped the reading.
fn drive(poll: &Poll, shared: &mut Shared, session: &mut Session, now: Instant) -> io::Result<()> {
    session.service(shared, now)?;
    flush(poll, session, now)?;
    if session.stalled {
        session.service(shared, now)?;
        flush(poll, session, now)?;
    }
    Ok(())
}

/// Writes what the session has queued and keeps write interest only while output remains.
fn flush(poll: &Poll, session: &mut Session, now: Instant) -> io::Result<()> {
    let before = session.conn.pending_output();
    let pending = session.conn.flush()?;
    if session.conn.pending_output() < before {
        session.note_written(now);
    }
    if pending != session.wants_write {
        let interest = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let token = Token(session.id.slot + FIRST_CONNECTION);
        poll.registry()
            .reregister(&mut session.conn.stream, token, interest)?;
        session.wants_write = pending;
    }
    Ok(())
}

/// The peer's address, with an IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`)
/// given as the IPv4 address it is, so `--allow` rules for IPv4 networks apply to it.
fn plain_ip(peer: SocketAddr) -> std::net::IpAddr {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// Tells a connection refused at the door why, if its socket takes the bytes at once; never
/// waits for it.
fn refuse(stream: &mut TcpStream, code: ErrorCode, message: &str) {
    use std::io::Write;
    let refusal = Response::Error {
        code,
        message: message.into(),
    };
    if let Ok(frame) = frame::encode_response(&refusal) {
        let _ = stream.write(&frame);
    }
}
