//! Fetching parts from several peers at once.
//!
//! Each live peer gets a thread and its own connection. A peer is asked only for parts it
//! listed under the same name *and hash*, so two peers holding different editions of a name
//! never stand in for each other. Every part has a queue entry; each peer keeps its own list of
//! the entries it can serve and takes small batches from it, so a fast peer takes more and a
//! slow one less, and taking costs nothing per part the peer cannot serve. A peer whose
//! connection fails or stalls (its client times out) is dropped and its unfinished batch goes
//! back to the other holders; a peer that answers a part with other content, or refuses it, is
//! not asked for that part again; only a peer whose bytes fail their own hash is blamed and
//! dropped. Verified parts go to the caller's thread, which alone touches the store; when it
//! fails, the peers stop after their current batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, MutexGuard};

use storage::{PartInfo, PartName, StoreError, VerifiedPart};

use super::observe::{Counting, TransferEvent};
use crate::{Client, ClientError};

/// Most parts a peer takes from the queue at a time: enough to keep its connection busy, few
/// enough that the parts left to a peer that drops out are quickly taken by the others. Fewer
/// are taken while little is left, so every peer gets a share.
const BATCH_PARTS: usize = 8;

/// A peer to fetch from, with what it holds.
pub(crate) struct Peer {
    pub(crate) addr: String,
    pub(crate) client: Client,
    /// What the peer holds, by name: what it listed, and the chunks of the files it holds.
    pub(crate) holds: HashMap<PartName, PartInfo>,
    /// Verified bytes received from this peer.
    pub(crate) received: u64,
    /// Why the peer stopped being asked, if it did.
    pub(crate) dropped: Option<String>,
}

impl Peer {
    /// Whether the peer holds this very part: the same name with the same hash.
    pub(crate) fn offers(&self, info: &PartInfo) -> bool {
        self.holds
            .get(&info.name)
            .is_some_and(|held| held.hash == info.hash)
    }
}

/// Tells the observer about the peers dropped since the last call; `reported` holds the
/// peers it was told about.
pub(crate) fn report_dropped(
    peers: &[Peer],
    reported: &mut HashSet<String>,
    counting: &mut Counting<'_>,
) {
    for peer in peers {
        if let Some(reason) = &peer.dropped
            && reported.insert(peer.addr.clone())
        {
            counting.event(TransferEvent::PeerDropped {
                peer: peer.addr.clone(),
                reason: reason.clone(),
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Out,
    Delivered,
}

/// The parts to fetch and who may serve each.
struct Queue {
    parts: Vec<PartInfo>,
    state: Vec<State>,
    waiting: usize,
    /// Per live peer, the entries it may be asked for (some may be taken by now).
    candidates: Vec<VecDeque<usize>>,
    /// Per entry, the live peers that hold it.
    holders: Vec<Vec<usize>>,
    /// Per live peer, the entries it refused or answered with other content.
    declined: Vec<HashSet<usize>>,
    /// Per live peer, whether it is still being asked.
    active: Vec<bool>,
    /// Batches taken and not yet given back.
    out: usize,
    /// The last refusal of each entry, to say why it was not delivered.
    refusals: HashMap<usize, String>,
    /// The caller failed: take nothing more.
    stopped: bool,
}

/// The queue and the signal that it changed.
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Fetches `parts` from whichever live `peers` hold them, handing each verified part to `take`
/// on this thread. Returns the parts no peer could deliver, each with the reason.
///
/// # Errors
/// `take`'s error, once the peers have stopped.
pub(crate) fn fetch(
    peers: &mut [Peer],
    parts: Vec<PartInfo>,
    mut take: impl FnMut(VerifiedPart) -> Result<(), StoreError>,
) -> Result<Vec<(PartInfo, String)>, StoreError> {
    let mut live: Vec<&mut Peer> = peers.iter_mut().filter(|p| p.dropped.is_none()).collect();
    let shared = Shared {
        queue: Mutex::new(Queue::new(parts, &live)),
        changed: Condvar::new(),
    };
    let (delivered, arrivals) = mpsc::sync_channel::<VerifiedPart>(BATCH_PARTS * 2);
    std::thread::scope(|scope| {
        for (index, peer) in live.iter_mut().enumerate() {
            let (shared, delivered) = (&shared, delivered.clone());
            scope.spawn(move || serve_queue(index, peer, shared, &delivered));
        }
        drop(delivered);
        for part in arrivals {
            if let Err(err) = take(part) {
                shared.lock().stopped = true;
                shared.changed.notify_all();
                return Err(err);
            }
        }
        Ok(())
    })?;
    let reasons: Vec<String> = peers
        .iter()
        .filter_map(|peer| {
            peer.dropped
                .as_ref()
                .map(|why| format!("{}: {why}", peer.addr))
        })
        .collect();
    Ok(shared
        .queue
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .undelivered(&reasons))
}

impl Queue {
    fn new(parts: Vec<PartInfo>, peers: &[&mut Peer]) -> Self {
        let mut candidates = vec![VecDeque::new(); peers.len()];
        let mut holders = vec![Vec::new(); parts.len()];
        for (entry, info) in parts.iter().enumerate() {
            for (peer, held) in peers.iter().enumerate() {
                if held.offers(info) {
                    candidates[peer].push_back(entry);
                    holders[entry].push(peer);
                }
            }
        }
        Self {
            state: vec![State::Waiting; parts.len()],
            waiting: parts.len(),
            parts,
            candidates,
            holders,
            declined: vec![HashSet::new(); peers.len()],
            active: vec![true; peers.len()],
            out: 0,
            refusals: HashMap::new(),
            stopped: false,
        }
    }

    /// The parts not delivered, with why: the last refusal, else the dropped peers' reasons.
    fn undelivered(mut self, dropped: &[String]) -> Vec<(PartInfo, String)> {
        let mut left = Vec::new();
        for (entry, info) in self.parts.into_iter().enumerate() {
            if self.state[entry] == State::Delivered {
                continue;
            }
            let why = match self.refusals.remove(&entry) {
                Some(refusal) => refusal,
                None if dropped.is_empty() => "no peer holds it".to_owned(),
                None => format!("no peer could deliver it ({})", dropped.join("; ")),
            };
            left.push((info, why));
        }
        left
    }

    /// Up to a fair share of the entries `peer` may serve, or none.
    fn take(&mut self, peer: usize) -> Vec<usize> {
        let active = self.active.iter().filter(|&&active| active).count();
        let share = (self.waiting / (2 * active.max(1))).clamp(1, BATCH_PARTS);
        let mut batch = Vec::new();
        while batch.len() < share {
            let Some(entry) = self.candidates[peer].pop_front() else {
                break;
            };
            if self.state[entry] == State::Waiting {
                self.state[entry] = State::Out;
                self.waiting -= 1;
                batch.push(entry);
            }
        }
        batch
    }

    /// Puts entries `peer` did not deliver back within reach of every live holder that has
    /// not declined them.
    fn give_back(&mut self, entries: Vec<usize>) {
        for entry in entries {
            self.state[entry] = State::Waiting;
            self.waiting += 1;
            for &holder in &self.holders[entry] {
                if self.active[holder] && !self.declined[holder].contains(&entry) {
                    self.candidates[holder].push_front(entry);
                }
            }
        }
    }
}

/// What one batch came to.
#[derive(Default)]
struct BatchResult {
    delivered: HashSet<usize>,
    /// Why the peer must be dropped, if it must.
    failure: Option<String>,
}

/// One peer's thread: takes batches it can serve until none are left or the peer fails.
fn serve_queue(
    index: usize,
    peer: &mut Peer,
    shared: &Shared,
    delivered: &mpsc::SyncSender<VerifiedPart>,
) {
    while let Some(batch) = take_batch(index, shared) {
        let infos: Vec<PartInfo> = {
            let queue = shared.lock();
            batch
                .iter()
                .map(|&entry| queue.parts[entry].clone())
                .collect()
        };
        let result = fetch_batch(index, peer, shared, &batch, &infos, delivered);
        let mut queue = shared.lock();
        let left = batch
            .into_iter()
            .filter(|entry| !result.delivered.contains(entry));
        for &entry in &result.delivered {
            queue.state[entry] = State::Delivered;
        }
        if let Some(why) = &result.failure {
            queue.active[index] = false;
            tracing::warn!(peer = %peer.addr, %why, "no longer asking this peer");
            peer.dropped = Some(why.clone());
        }
        queue.give_back(left.collect());
        queue.out -= 1;
        shared.changed.notify_all();
        if result.failure.is_some() {
            return;
        }
    }
    shared.lock().active[index] = false;
}

/// Asks `peer` for one batch and sorts out each answer.
fn fetch_batch(
    index: usize,
    peer: &mut Peer,
    shared: &Shared,
    batch: &[usize],
    infos: &[PartInfo],
    delivered: &mpsc::SyncSender<VerifiedPart>,
) -> BatchResult {
    let mut result = BatchResult::default();
    let addr = peer.addr.clone();
    let received = &mut peer.received;
    let entry_of: HashMap<&PartName, usize> = infos
        .iter()
        .map(|info| &info.name)
        .zip(batch.iter().copied())
        .collect();
    let outcome = peer.client.fetch(infos, |info, part| {
        let entry = entry_of[&info.name];
        match part {
            Ok(part) => {
                *received += part.size();
                result.delivered.insert(entry);
                if delivered.send(part).is_err() {
                    // The caller failed; it has stopped the queue.
                    result.failure = Some("the fetch was stopped".into());
                }
            }
            Err(err) => {
                let blame = matches!(err, ClientError::BadPart(_));
                let mut queue = shared.lock();
                queue.refusals.insert(entry, format!("{addr}: {err}"));
                queue.declined[index].insert(entry);
                if blame {
                    result.failure = Some(format!("sent bad data for {}: {err}", info.name));
                }
            }
        }
    });
    if let Err(err) = outcome {
        result.failure = Some(format!("dropped: {err}"));
    }
    result
}

/// The next batch for peer `index`; waits while other peers' batches are out (they may come
/// back to it), and gives `None` once nothing it can serve can come, or the fetch stopped.
fn take_batch(index: usize, shared: &Shared) -> Option<Vec<usize>> {
    let mut queue = shared.lock();
    loop {
        if queue.stopped {
            return None;
        }
        let batch = queue.take(index);
        if !batch.is_empty() {
            queue.out += 1;
            return Some(batch);
        }
        if queue.out == 0 {
            shared.changed.notify_all();
            return None;
        }
        queue = shared
            .changed
            .wait(queue)
            .unwrap_or_else(|e| e.into_inner());
    }
}
