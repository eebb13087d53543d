//! The event loop: one thread that owns every socket. It polls, accepts, drives sessions,
//! delivers the workers' answers, and keeps deadlines and shutdown.
//!
//! mio has no timers, so each poll waits at most until the earliest connection deadline known
//! (handshake, idle, or the grace after an error reply), and a second at most; only then are
//! all deadlines looked at, so an event costs nothing per idle connection. Write interest is
//! registered only while a connection has output pending.

mod pressure;
mod revisits;
mod stopping;
mod subscribers;

use std::collections::BTreeSet;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tracing::{debug, error, info, warn};

use super::admission::{self, Admission, Eviction, Verdict};
use super::connection::Connection;
use super::session::{Session, Shared};
use super::transport::Transport;
use super::workers::{ConnId, Inbox, ToReaders};
use super::{ServerCounters, WorkerStopped};
use crate::message::Response;
use revisits::Revisits;

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest between two sweeps of every connection's deadline. Sweeps are otherwise run only
/// when the earliest known deadline passes, so an event costs nothing per idle connection.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Longest the loop waits for workers and slow readers once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    admission: Admission,
    sessions: Slab<Session>,
    shared: Shared,
    inbox: Inbox,
    /// The store workers. While the loop runs it holds their job senders, so none of them
    /// ends unless it dies.
    pub(crate) workers: Vec<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
    next_serial: u64,
    accept_paused_until: Option<Instant>,
    /// When to next look at every connection's deadline.
    next_sweep: Instant,
    /// Sessions that stopped reading for the server's memory alone, to drive again once
    /// some of it is given back.
    waiting_for_memory: BTreeSet<usize>,
    /// The slot resumed last after memory was given back, so the next resumption starts
    /// after it.
    resumed_last: usize,
    /// Sessions that stopped at their share of reading, to drive again next turn.
    again: Revisits,
}

impl EventLoop {
    pub(crate) fn new(
        poll: Poll,
        listener: TcpListener,
        allow: Vec<IpNet>,
        shared: Shared,
        inbox: Inbox,
        workers: Vec<JoinHandle<()>>,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        Self {
            poll,
            listener: Some(listener),
            admission: Admission::new(allow, &shared.limits),
            sessions: Slab::new(),
            shared,
            inbox,
            workers,
            shutdown,
            next_serial: 0,
            accept_paused_until: None,
            next_sweep: Instant::now() + MAX_SWEEP_INTERVAL,
            waiting_for_memory: BTreeSet::new(),
            resumed_last: 0,
            again: Revisits::default(),
        }
    }

    pub(crate) fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut shutdown_deadline = None;
        loop {
            let wake_at = self
                .accept_paused_until
                .map_or(self.next_sweep, |until| until.min(self.next_sweep));
            let timeout = if self.again.is_empty() {
                wake_at.saturating_duration_since(Instant::now()) + Duration::from_millis(1)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            self.shared.turn.new_turn();
            // Those the last turn left with more to read come after the peers that just sent
            // something: a request that arrived waits for no one's backlog.
            let revisits = self.again.take();
            let mut listener_ready = false;
            for event in &events {
                match event.token() {
                    LISTENER => listener_ready = true,
                    // The workers' answers are taken right after this loop.
                    WAKER => {}
                    Token(token) => {
                        let gone =
                            event.is_error() || (event.is_read_closed() && event.is_write_closed());
                        self.on_socket(token - FIRST_CONNECTION, gone, now);
                    }
                }
            }
            for slot in revisits {
                if self.sessions.contains(slot) {
                    self.drive_slot(slot, now);
                }
            }
            // Accepted only once this batch's events are handled: a slot freed by one of them
            // and reused by a newcomer would otherwise get the rest of its old socket's events
            // (a reset taken for the newcomer's, which would then be closed).
            if listener_ready {
                self.accept(now);
            }
            self.take_done(now);
            (self.shared.counters).held_for_peers(self.shared.memory.used());
            if self.shared.news.swap(false, Ordering::SeqCst) {
                self.announce_all(now);
            }
            if let Some(worker) = self.dead_worker() {
                self.abandon_all(&worker);
                return Err(io::Error::other(WorkerStopped { worker }));
            }
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
        match self.admission.judge(&mut stream, peer, &self.sessions, now) {
            Verdict::Admit => {}
            Verdict::AdmitEvicting(slot, why) => self.evict(slot, why),
            Verdict::Refused => return,
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
            host: admission::host_of(peer),
        };
        self.next_serial += 1;
        self.shared.counters.opened();
        self.admission.opened(peer);
        debug!(%peer, slot, "accepted");
        let transport = Transport::new(self.shared.tls.clone());
        let conn = Connection::new(stream, peer, transport, now);
        let session = entry.insert(Session::new(conn, id, now));
        if let Some(deadline) = session.deadline(&self.shared.limits) {
            self.next_sweep = self.next_sweep.min(deadline);
        }
    }

    /// Drives the session of `slot`; one whose socket is `gone` (reset, or closed both ways)
    /// is closed at once, whether or not a budget stopped it: nothing can reach its peer.
    fn on_socket(&mut self, slot: usize, gone: bool, now: Instant) {
        if !self.sessions.contains(slot) {
            return;
        }
        if gone {
            self.sessions[slot]
                .span()
                .in_scope(|| debug!("the peer is gone"));
            return self.close(slot);
        }
        self.drive_slot(slot, now);
    }

    /// Drives one session and settles it; a session that stopped at its share of reading for
    /// this turn is driven again on the next turn, after everyone else has had theirs.
    fn drive_slot(&mut self, slot: usize, now: Instant) {
        let session = &mut self.sessions[slot];
        let was_greeted = session.is_greeted();
        let result = drive(&self.poll, &mut self.shared, session, now);
        if !was_greeted && session.is_greeted() {
            self.admission.greeted(session.conn.peer);
        }
        if session.yielded() {
            self.again.push(slot, session.starved());
        }
        self.note_stop(slot);
        self.settle(slot, result);
    }

    /// Notes what a session that stopped reading waits for, after a drive or a write: the
    /// memory alone, or nothing any more (what stopped it was given back after it stopped),
    /// in which case it is driven next turn. Any other stop ends with a worker's answer or a
    /// write, which drive it.
    fn note_stop(&mut self, slot: usize) {
        let session = &self.sessions[slot];
        if session.could_read_on(&self.shared) {
            self.again.push(slot, false);
        }
        if session.waits_for_memory(&self.shared) {
            self.waiting_for_memory.insert(slot);
        } else {
            self.waiting_for_memory.remove(&slot);
        }
    }

    /// Delivers the workers' answers and resumes the connections they unblock.
    fn take_done(&mut self, now: Instant) {
        let mut touched = Vec::new();
        for done in self.inbox.take() {
            if let Response::Stored { .. } = done.response {
                self.shared.counters.stored(done.released);
            }
            match self.sessions.get_mut(done.conn.slot) {
                Some(session) if session.id == done.conn => {
                    touched.push(done.conn.slot);
                    session.complete(done, &mut self.shared);
                }
                _ => self.shared.memory.release(done.released),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            if self.sessions.contains(slot) {
                self.drive_slot(slot, now);
            }
        }
        if self.shared.memory.is_pressed() {
            self.relieve_memory(now);
        }
        // Memory stops sessions only under pressure; once some of it is gone, they resume.
        // The peak counts, not what was held when this was last asked: one turn's requests
        // can fill the memory and the workers' answers empty it before the next, and a
        // session stopped in between has nothing else to wake it.
        let peak = self.shared.memory.take_peak();
        if self.shared.memory.used() < peak && self.shared.limits.max_memory / 2 <= peak {
            self.resume_waiting_for_memory(now);
        }
    }

    /// Drops a session that failed or finished.
    fn settle(&mut self, slot: usize, result: io::Result<()>) {
        let session = &self.sessions[slot];
        let close = match result {
            Ok(()) => session.is_finished(),
            Err(err) => {
                session
                    .span()
                    .in_scope(|| debug!(%err, "connection failed"));
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

    /// Closes a connection to make room for a new one, telling it why.
    fn evict(&mut self, slot: usize, why: Eviction) {
        let session = &mut self.sessions[slot];
        session.span().in_scope(|| match why {
            Eviction::Idle => info!("evicting an idle connection to make room"),
            Eviction::OverShare => {
                info!("evicting a connection of a host over its share to make room");
            }
        });
        if session.is_greeted() {
            admission::say_evicted(&mut session.conn, why);
        }
        self.close(slot);
    }

    fn close(&mut self, slot: usize) {
        let mut session = self.sessions.remove(slot);
        self.waiting_for_memory.remove(&slot);
        if session.has_jobs_at_workers() {
            // Its jobs still waiting at the readers would only take turns from the living.
            let _ = self.shared.read_jobs.send(ToReaders::Forget(session.id));
        }
        self.shared
            .memory
            .closed(session.conn.host(), session.charged(), session.releasable());
        self.shared.memory.give_back();
        self.admission
            .closed(session.conn.peer, session.is_greeted());
        self.shared.counters.closed();
        if let Err(err) = self.poll.registry().deregister(&mut session.conn.stream) {
            debug!(%err, "deregistering a closed connection");
        }
        session.span().in_scope(|| debug!("closed"));
    }

    /// Acts on every passed deadline and finds the next one.
    fn expire(&mut self, now: Instant) {
        self.next_sweep = now + MAX_SWEEP_INTERVAL;
        // Free body buffers are kept for a stream of bodies, not for a server that holds
        // nothing for anyone.
        if self.shared.memory.used() == 0 {
            let freed = self.shared.bodies.clear();
            self.shared.memory.freed_while_idle(freed);
        }
        // Quiet subscriptions get their heartbeats.
        self.announce_all(now);
        let mut expired = Vec::new();
        for (slot, session) in &self.sessions {
            // A stop nothing would end (no worker's answer, write or memory given back to
            // come) lasts until this sweep at most: a session its budgets stopped has no
            // deadline.
            if session.could_read_on(&self.shared) {
                self.again.push(slot, false);
            }
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
                let result = flush(&self.poll, session, &self.shared.counters, now);
                self.settle(slot, result);
            }
        }
    }
}

/// Reads and answers what the peer sent, then writes; once more if the write freed the
/// output budget that had stopped the reading.
fn drive(poll: &Poll, shared: &mut Shared, session: &mut Session, now: Instant) -> io::Result<()> {
    session.service(shared, now)?;
    shared.counters.read(session.conn.read_this_turn());
    flush(poll, session, &shared.counters, now)?;
    if session.is_subscribed() {
        // What the written bytes made room for, charged like any answer.
        session.announce(shared, now);
        flush(poll, session, &shared.counters, now)?;
        session.recharge(shared);
    }
    if session.stalled {
        session.service(shared, now)?;
        shared.counters.read(session.conn.read_this_turn());
        flush(poll, session, &shared.counters, now)?;
    }
    // What was written is no longer held: charged on, it would keep the memory looking full
    // and the sessions it stopped waiting.
    session.recharge(shared);
    Ok(())
}

/// Writes what the session has queued and keeps write interest only while output remains.
pub(super) fn flush(
    poll: &Poll,
    session: &mut Session,
    counters: &ServerCounters,
    now: Instant,
) -> io::Result<()> {
    let before = session.conn.pending_output();
    let pending = session.conn.flush()?;
    if session.conn.pending_output() < before {
        counters.written(before - session.conn.pending_output());
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
