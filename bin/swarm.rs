//! Fetching parts from several peers at once.
//!
//! Each peer gets a thread and its own connection; they take small batches of the parts their
//! peer holds from one shared queue, so a fast peer takes more and a slow one less. A peer whose
//! connection fails or stalls (its client times out) is dropped and its unfinished batch goes
//! back to the queue for the others; a peer that sends bytes that fail verification is named,
//! its batch goes back, and it is asked nothing more. Verified parts go to the caller's thread,
//! which alone touches the store.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use net::{Client, ClientError};
use storage::{PartInfo, PartName, VerifiedPart};

/// Most parts a peer takes from the queue at a time: enough to keep its connection busy, few
/// enough that the parts left to a peer that drops out are quickly taken by the others. Fewer
/// are taken while little is left, so every peer gets a share.
const BATCH_PARTS: usize = 8;

/// A peer to fetch from, with what it holds.
pub struct Peer {
    pub addr: String,
    pub client: Client,
    pub holds: HashMap<PartName, PartInfo>,
    /// Verified bytes received from this peer.
    pub received: u64,
    /// Why the peer stopped being asked, if it did.
    pub dropped: Option<String>,
}

/// The parts no peer has delivered yet, and how many batches are out.
struct Queue {
    parts: Vec<PartInfo>,
    out: usize,
    peers: usize,
    /// The last refusal of each part, to say why it was not delivered.
    refusals: HashMap<PartName, String>,
}

/// Fetches `parts` from whichever `peers` hold them, handing each verified part to `take` on
/// this thread. Returns the parts no peer could deliver, each with the reason.
pub fn fetch(
    peers: &mut [Peer],
    parts: Vec<PartInfo>,
    mut take: impl FnMut(VerifiedPart) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<(PartInfo, String)>> {
    let queue = Mutex::new(Queue {
        parts,
        out: 0,
        peers: peers.len(),
        refusals: HashMap::new(),
    });
    let changed = Condvar::new();
    let (delivered, arrivals) = mpsc::sync_channel::<VerifiedPart>(BATCH_PARTS * 2);
    std::thread::scope(|scope| {
        for peer in peers.iter_mut() {
            let (queue, changed, delivered) = (&queue, &changed, delivered.clone());
            scope.spawn(move || serve_queue(peer, queue, changed, &delivered));
        }
        drop(delivered);
        for part in arrivals {
            take(part)?;
        }
        anyhow::Ok(())
    })?;
    let reasons: Vec<String> = peers
        .iter()
        .filter_map(|peer| {
            peer.dropped
                .as_ref()
                .map(|why| format!("{}: {why}", peer.addr))
        })
        .collect();
    let mut left = queue.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(left
        .parts
        .into_iter()
        .map(|info| {
            let why = match left.refusals.remove(&info.name) {
                Some(refusal) => refusal,
                None if reasons.is_empty() => "no peer holds it".to_owned(),
                None => format!("no peer could deliver it ({})", reasons.join("; ")),
            };
            (info, why)
        })
        .collect())
}

/// One peer's thread: takes batches it can serve until none are left or the peer fails.
fn serve_queue(
    peer: &mut Peer,
    queue: &Mutex<Queue>,
    changed: &Condvar,
    delivered: &mpsc::SyncSender<VerifiedPart>,
) {
    while let Some(batch) = take_batch(peer, queue, changed) {
        let mut done = HashSet::new();
        let mut bad = None;
        let received = &mut peer.received;
        let addr = &peer.addr;
        let refuse = |name: &PartName, why: String| {
            let mut state = queue.lock().unwrap_or_else(|e| e.into_inner());
            state
                .refusals
                .insert(name.clone(), format!("{addr}: {why}"));
        };
        let result = peer.client.fetch(&batch, |info, result| match result {
            Ok(part) => {
                *received += part.size();
                done.insert(info.name.clone());
                // The receiver goes only when the caller failed; stop quietly then.
                let _ = delivered.send(part);
            }
            Err(err @ (ClientError::BadPart(_) | ClientError::Protocol(_))) => {
                refuse(&info.name, err.to_string());
                bad = Some(format!("sent bad data for {}: {err}", info.name));
            }
            Err(err) => {
                // The peer refused it (gone, or damaged on its disk): let another peer try.
                refuse(&info.name, err.to_string());
                peer.holds.remove(&info.name);
            }
        });
        let failure = match result {
            Err(err) => Some(format!("dropped: {err}")),
            Ok(()) => bad,
        };
        let left: Vec<PartInfo> = batch
            .into_iter()
            .filter(|info| !done.contains(&info.name))
            .collect();
        give_back(queue, changed, left);
        if let Some(why) = failure {
            tracing::warn!(peer = %peer.addr, %why, "no longer asking this peer");
            peer.dropped = Some(why);
            return;
        }
    }
}

/// The next batch of parts `peer` holds; waits while other peers' batches are out (they may
/// come back), and gives `None` once nothing this peer holds can come.
fn take_batch(peer: &Peer, queue: &Mutex<Queue>, changed: &Condvar) -> Option<Vec<PartInfo>> {
    let mut state = queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let share = (state.parts.len() / (2 * state.peers.max(1))).clamp(1, BATCH_PARTS);
        let mut batch = Vec::new();
        let mut index = 0;
        while index < state.parts.len() && batch.len() < share {
            if peer.holds.contains_key(&state.parts[index].name) {
                batch.push(state.parts.swap_remove(index));
            } else {
                index += 1;
            }
        }
        if !batch.is_empty() {
            state.out += 1;
            return Some(batch);
        }
        if state.out == 0 {
            changed.notify_all();
            return None;
        }
        state = changed.wait(state).unwrap_or_else(|e| e.into_inner());
    }
}

fn give_back(queue: &Mutex<Queue>, changed: &Condvar, left: Vec<PartInfo>) {
    let mut state = queue.lock().unwrap_or_else(|e| e.into_inner());
    state.parts.extend(left);
    state.out -= 1;
    changed.notify_all();
}
