//! Mirroring a peer: keeping a store a superset of the peer's. The mirror subscribes to what
//! the peer newly stores (PROTOCOL.md §8.4) and pulls each announced part or file; when the
//! peer cannot resume from the mirror's cursor (the first time, after the peer restarted, or
//! after too long apart) it pulls whatever the peer holds that the store lacks. A lost
//! connection is retried with backoff, resuming from the cursor, so nothing stored meanwhile
//! is missed.
//!
//! Chains and cycles converge: only parts a store newly holds are announced, so a part that
//! comes back around is already held and goes no further. A name that holds other bytes
//! here is never overwritten: the pull reports the conflict, and the local part stays.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use storage::{Cursor, PartName, PartStore};

use super::observe::{Outcome, TransferEvent};
use super::{Dialer, TransferError, pull};
use crate::ClientError;
use crate::client::{News, Subscription};

/// The first wait before reconnecting to a peer that went away; it doubles up to
/// [`MAX_BACKOFF`] while the peer stays away.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Announcements pulled together at most, when a burst of them has arrived.
const MAX_BATCH: usize = 1024;

/// A mirror running on its own thread until [`Mirror::stop`].
pub struct Mirror {
    addr: String,
    stop: Arc<AtomicBool>,
    /// The socket of the subscription under way, to end its wait at once.
    socket: Arc<Mutex<Option<TcpStream>>>,
    thread: JoinHandle<()>,
}

/// Starts mirroring the peer at `addr` into `store`, logging what it stores and why it
/// waits (`tracing`, target `net::transfer::mirror`). Give it a server's
/// [`store`](crate::Server::store), so what it brings is announced to the server's own
/// subscribers in turn.
///
/// # Errors
/// When the thread cannot be started.
pub fn mirror(dialer: Dialer, addr: &str, store: Arc<dyn PartStore>) -> std::io::Result<Mirror> {
    let stop = Arc::new(AtomicBool::new(false));
    let socket = Arc::new(Mutex::new(None));
    let following = Following {
        dialer,
        addr: addr.to_owned(),
        store,
        stop: Arc::clone(&stop),
        socket: Arc::clone(&socket),
        cursor: Cursor::default(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("mirror {addr}"))
        .spawn(move || following.run())?;
    Ok(Mirror {
        addr: addr.to_owned(),
        stop,
        socket,
        thread,
    })
}

impl Mirror {
    /// Stops the mirror and waits for it, at most `within`: a pull under way is given that
    /// long to finish (what it stored is durable either way).
    pub fn stop(self, within: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(socket) = lock(&self.socket).take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + within;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.thread.is_finished() {
            tracing::warn!(peer = %self.addr, "mirror: a pull is still under way; leaving it");
        }
    }
}

/// The mirror's thread.
struct Following {
    dialer: Dialer,
    addr: String,
    store: Arc<dyn PartStore>,
    stop: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    cursor: Cursor,
}

impl Following {
    fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        while !self.stopped() {
            match self.follow(&mut backoff) {
                Ok(()) => {}
                Err(_) if self.stopped() => {}
                Err(err) => {
                    let peer = &self.addr;
                    tracing::warn!(%peer, %err, ?backoff, "mirror: lost the peer; trying again");
                    self.wait(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Subscribes and follows until the connection fails or the mirror stops.
    fn follow(&mut self, backoff: &mut Duration) -> Result<(), TransferError> {
        let client = self.dialer.dial(&self.addr)?;
        let (mut subscription, first) = client.subscribe(self.cursor)?;
        *lock(&self.socket) = Some(subscription.socket().map_err(ClientError::from)?);
        tracing::info!(peer = %self.addr, "mirror: following the peer");
        let followed = self.keep_up(&mut subscription, first, backoff);
        // The stop's handle to the socket goes with the connection, so the peer sees it end.
        lock(&self.socket).take();
        followed
    }

    /// Acts on the news until the connection fails or the mirror stops. The waits between
    /// attempts start over only once the peer has sent news that could be acted on: a peer
    /// that accepts the subscription and then breaks the protocol (a name the rules refuse,
    /// say, which it will send again from the same cursor) is not dialled twice a second.
    fn keep_up(
        &mut self,
        subscription: &mut Subscription,
        first: News,
        backoff: &mut Duration,
    ) -> Result<(), TransferError> {
        self.act_on(vec![first])?;
        while !self.stopped() {
            let mut news = vec![subscription.next_news()?];
            // A burst of announcements that has already arrived is pulled as one.
            while news.len() < MAX_BATCH
                && let Some(more) = subscription.ready_news()?
            {
                news.push(more);
            }
            self.act_on(news)?;
            *backoff = FIRST_BACKOFF;
        }
        Ok(())
    }

    /// Pulls what `news` names (everything the peer holds, if it says to catch up) in one
    /// pull, then moves the cursor past it.
    fn act_on(&mut self, news: Vec<News>) -> Result<(), TransferError> {
        let catch_up = news.iter().any(|news| matches!(news, News::CatchUp { .. }));
        let names: Vec<PartName> = (news.iter())
            .filter_map(|news| match news {
                News::Stored { info, .. } => Some(info.name.clone()),
                News::CatchUp { .. } | News::Quiet { .. } => None,
            })
            .collect();
        if catch_up || !names.is_empty() {
            let names = if catch_up { Vec::new() } else { names };
            let peers = [self.addr.clone()];
            pull(
                &self.dialer,
                &peers,
                &names,
                self.store.as_ref(),
                &mut log_event,
            )?;
        }
        if let Some(last) = news.into_iter().last() {
            self.move_to(last);
        }
        Ok(())
    }

    fn move_to(&mut self, news: News) {
        self.cursor = match news {
            News::Stored { cursor, .. } | News::CatchUp { cursor } | News::Quiet { cursor } => {
                cursor
            }
        };
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `wait`, or less when the mirror is stopped meanwhile.
    fn wait(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stopped() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(wait));
        }
    }
}

/// Logs what a mirror's pull did: what it stored, and what it did not store and why (a
/// local part of that name with other bytes, which is kept; a part the peer no longer has).
fn log_event(event: TransferEvent) {
    match event {
        TransferEvent::Settled { name, outcome } => match outcome {
            Outcome::Stored | Outcome::Repaired => tracing::info!(name, "mirror: stored"),
            Outcome::AlreadyHad => tracing::debug!(name, "mirror: already had"),
            Outcome::Rejected(why) => tracing::warn!(name, %why, "mirror: not stored"),
        },
        TransferEvent::PeerUnreachable { peer, reason }
        | TransferEvent::PeerDropped { peer, reason } => {
            tracing::warn!(%peer, %reason, "mirror: the pull lost the peer");
        }
        _ => {}
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
