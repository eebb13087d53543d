//! Healing a store from its peers: what [`storage::verify`] found damaged or gone is fetched
//! again, each part matched on (name, hash), and stored; a put of the bytes a damaged body
//! should hold writes the body again (see [`storage::PartStore::put_batch`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use storage::{OnConflict, PartInfo, PartName, PartStore, StoreError, VerifiedPart, VerifyReport};

use super::observe::{Counting, Observer, TransferEvent};
use super::pull::{connect_all, holdings};
use super::swarm::{self, Peer};
use super::{Dialer, TransferError};

/// Bytes of fetched parts held before they are committed with one sync.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// What a repair did with each corrupt part and file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// Those that read back whole now.
    pub repaired: Vec<PartName>,
    /// Those still damaged.
    pub unhealed: Vec<Unhealed>,
}

/// A part or file a repair could not heal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unhealed {
    pub name: PartName,
    /// Why no good copy came, when that is known, else what is still wrong.
    pub error: String,
}

impl fmt::Display for RepairReport {
    /// A line per repaired and per unhealed part, then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in &self.repaired {
            writeln!(f, "repaired {name}")?;
        }
        for left in &self.unhealed {
            writeln!(f, "unhealed {}: {}", left.name, left.error)?;
        }
        let (repaired, unhealed) = (self.repaired.len(), self.unhealed.len());
        write!(f, "{repaired} repaired, {unhealed} unhealed")
    }
}

/// Fetches from the peers at `addrs` good copies of what `found` (the [`storage::verify`]
/// report of `store`) lists as damaged, stores them, and checks every corrupt part and file
/// again. A manifest fetched again may show chunks missing too: those are fetched in another
/// round, and so on while a round has something new to ask for.
///
/// # Errors
/// Failures of the store. A peer that cannot be reached, or lacks a part, leaves the part
/// unhealed, with why.
pub fn repair(
    dialer: &Dialer,
    addrs: &[String],
    store: &dyn PartStore,
    found: &VerifyReport,
    observer: &mut dyn Observer,
) -> Result<RepairReport, TransferError> {
    let mut corrupt = Vec::new();
    for (name, _) in &found.corrupt {
        corrupt.extend(store.lookup(name)?);
    }
    let mut repairing = Repairing {
        dialer,
        addrs,
        store,
        counting: Counting::new(observer),
        peers: None,
        reported_drops: HashSet::new(),
        failures: HashMap::new(),
    };
    let mut asked = HashSet::new();
    let mut wanted = found.damaged.clone();
    let mut checked = None;
    loop {
        wanted.retain(|info| asked.insert(info.name.clone()));
        if wanted.is_empty() {
            break;
        }
        repairing.round(wanted)?;
        let check = storage::verify_parts(store, &corrupt)?;
        wanted = check.damaged.clone();
        checked = Some(check);
    }
    let left = checked
        .as_ref()
        .map_or(&found.corrupt, |check| &check.corrupt);
    let unhealed: Vec<Unhealed> = left
        .iter()
        .map(|(name, err)| Unhealed {
            name: name.clone(),
            error: repairing.explain(name, err),
        })
        .collect();
    let repaired = corrupt
        .into_iter()
        .map(|info| info.name)
        .filter(|name| unhealed.iter().all(|left| left.name != *name))
        .collect();
    Ok(RepairReport { repaired, unhealed })
}

/// One repair of a store.
struct Repairing<'a, 'o> {
    dialer: &'a Dialer,
    addrs: &'a [String],
    store: &'a dyn PartStore,
    counting: Counting<'o>,
    /// The peers, once the first round has dialed them.
    peers: Option<Vec<Peer>>,
    reported_drops: HashSet<String>,
    /// Why each part that was asked for did not come or could not be stored.
    failures: HashMap<PartName, String>,
}

impl Repairing<'_, '_> {
    /// Learns which peers hold `wanted`, fetches each from those that do, and stores it.
    fn round(&mut self, wanted: Vec<PartInfo>) -> Result<(), TransferError> {
        let names: Vec<PartName> = wanted.iter().map(|info| info.name.clone()).collect();
        let peers = match &mut self.peers {
            Some(peers) => {
                learn(peers, &names);
                peers
            }
            None => match connect_all(self.dialer, self.addrs, &names, &mut self.counting) {
                Ok(peers) => self.peers.insert(peers),
                Err(TransferError::NoPeer(reasons)) => {
                    let reason = format!("no peer could be reached: {}", reasons.join("; "));
                    for name in names {
                        self.failures.insert(name, reason.clone());
                    }
                    self.peers = Some(Vec::new());
                    return Ok(());
                }
                Err(err) => return Err(err),
            },
        };
        let total = wanted.iter().map(|info| info.size).sum();
        self.counting.event(TransferEvent::Planned { bytes: total });
        let (store, counting, failures) = (self.store, &mut self.counting, &mut self.failures);
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let undelivered = swarm::fetch(peers, wanted, |part| {
            counting.event(TransferEvent::Moved { bytes: part.size() });
            batch_bytes += part.size();
            batch.push(part);
            if batch_bytes >= BATCH_BYTES {
                batch_bytes = 0;
                commit(store, std::mem::take(&mut batch), failures)?;
            }
            Ok(())
        })?;
        commit(store, batch, failures)?;
        swarm::report_dropped(peers, &mut self.reported_drops, &mut self.counting);
        for (info, reason) in undelivered {
            self.failures.insert(info.name, reason);
        }
        Ok(())
    }

    /// Why `name` is still damaged (`err`): why no good copy of the part behind `err` came,
    /// when known, else `err` itself.
    fn explain(&self, name: &PartName, err: &StoreError) -> String {
        let behind = match err {
            StoreError::ChunkUnavailable { hash, .. } => PartName::chunk(hash),
            _ => name.clone(),
        };
        match self.failures.get(&behind) {
            Some(reason) => format!("no good copy of {behind}: {reason}"),
            None => err.to_string(),
        }
    }
}

/// Asks each live peer which of `names` it holds; a peer that fails is asked nothing more.
fn learn(peers: &mut [Peer], names: &[PartName]) {
    for peer in peers.iter_mut().filter(|peer| peer.dropped.is_none()) {
        match holdings(&mut peer.client, names) {
            Ok(held) => peer
                .holds
                .extend(held.into_iter().map(|info| (info.name.clone(), info))),
            Err(err) => peer.dropped = Some(format!("dropped: {err}")),
        }
    }
}

/// Stores fetched parts with one sync, keeping why any of them was refused.
fn commit(
    store: &dyn PartStore,
    batch: Vec<VerifiedPart>,
    failures: &mut HashMap<PartName, String>,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcomes = store.put_batch(&batch, OnConflict::Refuse)?;
    for (part, outcome) in batch.iter().zip(outcomes) {
        if let Err(err) = outcome {
            failures.insert(part.name().clone(), err.to_string());
        }
    }
    Ok(())
}
