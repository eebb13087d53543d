//! Pulling parts and files from peers into a store.
//!
//! A file comes as its manifest first (to learn its chunks), then the chunks this store lacks
//! from every peer that holds the file, then the file is checked whole and its manifest stored,
//! so a store never holds a file it cannot assemble, and pulling again after an interruption
//! moves only the chunks still missing.

use std::collections::{BTreeMap, HashMap, HashSet};

use storage::{
    Manifest, OnConflict, PartHash, PartInfo, PartKind, PartName, PartStore, PutOutcome,
    VerifiedPart,
};

use super::observe::{Counting, Observer, Outcome, Tally, TransferEvent};
use super::swarm::{self, Peer};
use super::{Dialer, TransferError};
use crate::tls::PeerId;
use crate::{Client, ClientError};

/// Bytes of fetched parts held before they are committed with one sync.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// Files and parts (never chunks) by outcome.
    pub tally: Tally,
    /// Verified bytes received, from every peer.
    pub bytes_received: u64,
    /// Verified bytes received from each peer reached, by address.
    pub peers: BTreeMap<String, u64>,
    /// The ID each peer reached proved in its TLS handshake, by address (none for a plaintext
    /// benchmark connection).
    pub peer_ids: BTreeMap<String, PeerId>,
    /// The peers dropped on the way, with why.
    pub dropped: Vec<(String, String)>,
}

/// Pulls `names` (every part and file of every peer when empty) from the peers at `addrs` into
/// `store`, each part verified. Where peers hold different content under one name, the first
/// peer given that holds the name decides which, and the others are not asked for it. A peer
/// that cannot be reached is reported and left out.
///
/// # Errors
/// [`TransferError::NoPeer`] when no peer can be reached, and failures of the store; a part no
/// peer delivers is reported and the rest go on.
pub fn pull(
    dialer: &Dialer,
    addrs: &[String],
    names: &[PartName],
    store: &dyn PartStore,
    observer: &mut dyn Observer,
) -> Result<PullReport, TransferError> {
    pull_checking(
        dialer,
        addrs,
        names,
        store,
        observer,
        FileCheck::BeforeStoring,
    )
}

/// Who reads a pulled file back to check it whole against its manifest's file hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileCheck {
    /// The pull, before it stores the manifest: a store never holds a file it cannot assemble.
    BeforeStoring,
    /// The caller, which reads every file back anyway and makes the same checks (each chunk
    /// against its hash, the whole against the file hash) before any byte is visible: export
    /// `--from`, whose scratch store is read once to write the files and then removed. The
    /// pull checking too would read each file twice.
    ByCaller,
}

/// [`pull`], with the whole-file check done where `check` says.
pub(crate) fn pull_checking(
    dialer: &Dialer,
    addrs: &[String],
    names: &[PartName],
    store: &dyn PartStore,
    observer: &mut dyn Observer,
    check: FileCheck,
) -> Result<PullReport, TransferError> {
    let mut counting = Counting::new(observer);
    let mut peers = connect_all(dialer, addrs, names, &mut counting)?;
    let selected = select(&peers, names, &mut counting);
    let mut pulling = Pulling {
        store,
        check,
        counting,
        failed_chunks: HashMap::new(),
        reported_drops: HashSet::new(),
        repaired_chunks: HashSet::new(),
    };
    pulling.run(&mut peers, selected)?;
    let mut report = PullReport {
        tally: pulling.counting.tally,
        ..PullReport::default()
    };
    for peer in peers {
        report.bytes_received += peer.received;
        report.peers.insert(peer.addr.clone(), peer.received);
        if let Some(id) = peer.client.server_id() {
            report.peer_ids.insert(peer.addr.clone(), id);
        }
        if let Some(why) = peer.dropped {
            report.dropped.push((peer.addr, why));
        }
    }
    Ok(report)
}

/// Connects to every peer and learns what each holds of what is asked for: every part when
/// `names` is empty, else just those names.
pub(crate) fn connect_all(
    dialer: &Dialer,
    addrs: &[String],
    names: &[PartName],
    counting: &mut Counting<'_>,
) -> Result<Vec<Peer>, TransferError> {
    let mut peers = Vec::new();
    let mut failures = Vec::new();
    for addr in addrs {
        let connected = dialer.dial(addr).and_then(|mut client| {
            let holds = holdings(&mut client, names)?;
            Ok(Peer {
                addr: addr.clone(),
                client,
                holds: holds
                    .into_iter()
                    .map(|info| (info.name.clone(), info))
                    .collect(),
                received: 0,
                dropped: None,
            })
        });
        match connected {
            Ok(peer) => peers.push(peer),
            Err(err) => {
                counting.event(TransferEvent::PeerUnreachable {
                    peer: addr.clone(),
                    reason: err.to_string(),
                });
                failures.push(format!("{addr}: {err}"));
            }
        }
    }
    if peers.is_empty() {
        return Err(TransferError::NoPeer(failures));
    }
    Ok(peers)
}

/// What the peer holds of `names`, asked name by name, or everything when none are named.
pub(crate) fn holdings(
    client: &mut Client,
    names: &[PartName],
) -> Result<Vec<PartInfo>, ClientError> {
    if names.is_empty() {
        return client.list();
    }
    let mut held = Vec::new();
    for name in names {
        held.extend(client.stat(name)?);
    }
    Ok(held)
}

/// The edition of each name to pull (every name but chunks when none are named): the first
/// peer's that holds it. A name no peer holds is reported.
fn select(peers: &[Peer], names: &[PartName], counting: &mut Counting<'_>) -> Vec<PartInfo> {
    let mut all: BTreeMap<&PartName, &PartInfo> = BTreeMap::new();
    for peer in peers {
        for (name, info) in &peer.holds {
            all.entry(name).or_insert(info);
        }
    }
    if names.is_empty() {
        let visible = all.into_values().filter(|info| !info.name.is_chunk());
        return visible.cloned().collect();
    }
    let mut chosen = Vec::new();
    for name in names {
        match all.get(name) {
            Some(info) => chosen.push((*info).clone()),
            None => {
                let refusal = Outcome::Rejected("the peer has no such part".into());
                counting.settle(name.as_str(), refusal);
            }
        }
    }
    chosen
}

/// One pull into a store.
struct Pulling<'a, 'o> {
    store: &'a dyn PartStore,
    check: FileCheck,
    counting: Counting<'o>,
    /// Why each chunk that could not be had failed, so its files can say so.
    failed_chunks: HashMap<PartHash, String>,
    /// The peers whose dropping was reported.
    reported_drops: HashSet<String>,
    /// Chunks this store held damaged and rewrote, so their files say they were repaired.
    repaired_chunks: HashSet<PartHash>,
}

impl Pulling<'_, '_> {
    fn run(&mut self, peers: &mut [Peer], selected: Vec<PartInfo>) -> Result<(), TransferError> {
        let mut wanted = Vec::new();
        let mut manifests = Vec::new();
        for info in selected {
            match self.store.lookup(&info.name)? {
                Some(held) if held.hash != info.hash => {
                    let reason = format!(
                        "this store holds other content under that name ({})",
                        held.hash
                    );
                    self.counting
                        .settle(info.name.as_str(), Outcome::Rejected(reason));
                }
                Some(held) if !self.needs_repair(&held)? => {
                    self.counting
                        .settle(info.name.as_str(), Outcome::AlreadyHad);
                }
                _ if info.kind == PartKind::Manifest => manifests.push(info),
                _ => wanted.push(info),
            }
        }
        let files = self.fetch_manifests(peers, manifests)?;
        let mut seen: HashSet<PartName> = wanted.iter().map(|info| info.name.clone()).collect();
        for (part, manifest) in &files {
            let file = part.info();
            let chunks: Vec<PartInfo> = manifest.chunk_infos().collect();
            // Whoever holds the file holds its chunks: a store keeps no manifest without them.
            for peer in peers.iter_mut().filter(|peer| peer.offers(&file)) {
                for chunk in &chunks {
                    peer.holds.insert(chunk.name.clone(), chunk.clone());
                }
            }
            for chunk in chunks {
                if !self.holds_readable(&chunk)? && seen.insert(chunk.name.clone()) {
                    wanted.push(chunk);
                }
            }
        }
        self.fetch_parts(peers, wanted)?;
        for (part, manifest) in files {
            self.keep_file(part, &manifest);
        }
        Ok(())
    }

    /// Whether this store holds `info` and can read it back, as far as it can tell without
    /// reading it whole ([`PartStore::known_damaged`]).
    fn holds_readable(&self, info: &PartInfo) -> Result<bool, storage::StoreError> {
        match self.store.lookup(&info.name)? {
            Some(held) if held.hash == info.hash => Ok(!self.store.known_damaged(&held)?),
            _ => Ok(false),
        }
    }

    /// Whether a part this store holds, or any chunk of a file it holds, cannot be read back:
    /// then it is fetched, and the store rewrites what is damaged.
    fn needs_repair(&self, held: &PartInfo) -> Result<bool, storage::StoreError> {
        if self.store.known_damaged(held)? {
            return Ok(true);
        }
        if held.kind != PartKind::Manifest {
            return Ok(false);
        }
        let manifest = match self.store.get(&held.name) {
            Ok(bytes) => Manifest::decode(&bytes).ok(),
            Err(err) if err.is_corruption() => None,
            Err(err) => return Err(err),
        };
        let Some(manifest) = manifest else {
            return Ok(true);
        };
        for chunk in manifest.chunk_infos() {
            if !self.holds_readable(&chunk)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Fetches and decodes the manifests; one that cannot be had or decoded is reported.
    fn fetch_manifests(
        &mut self,
        peers: &mut [Peer],
        manifests: Vec<PartInfo>,
    ) -> Result<Vec<(VerifiedPart, Manifest)>, TransferError> {
        let mut files = Vec::new();
        let mut unusable = Vec::new();
        let undelivered = swarm::fetch(peers, manifests, |part| {
            match Manifest::decode(part.bytes()) {
                Ok(manifest) => files.push((part, manifest)),
                Err(err) => unusable.push((part.name().clone(), err)),
            }
            Ok(())
        })?;
        self.report_dropped(peers);
        for (name, err) in unusable {
            let reason = format!("its manifest is unusable: {err}");
            self.counting
                .settle(name.as_str(), Outcome::Rejected(reason));
        }
        for (info, reason) in undelivered {
            self.counting
                .settle(info.name.as_str(), Outcome::Rejected(reason));
        }
        Ok(files)
    }

    /// Fetches plain parts and chunks, committing them in batches of one sync each.
    fn fetch_parts(
        &mut self,
        peers: &mut [Peer],
        wanted: Vec<PartInfo>,
    ) -> Result<(), TransferError> {
        let total = wanted.iter().map(|info| info.size).sum();
        self.counting.event(TransferEvent::Planned { bytes: total });
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let undelivered = swarm::fetch(peers, wanted, |part| {
            self.counting
                .event(TransferEvent::Moved { bytes: part.size() });
            batch_bytes += part.size();
            batch.push(part);
            if batch_bytes >= BATCH_BYTES {
                batch_bytes = 0;
                self.commit(std::mem::take(&mut batch))?;
            }
            Ok(())
        })?;
        self.commit(batch)?;
        self.report_dropped(peers);
        for (info, reason) in undelivered {
            self.settle_fetched(&info.name, info.hash, Err(reason));
        }
        Ok(())
    }

    /// Stores fetched parts with one sync and settles each.
    fn commit(&mut self, batch: Vec<VerifiedPart>) -> Result<(), storage::StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let results = self.store.put_batch(&batch, OnConflict::Refuse)?;
        for (part, result) in batch.iter().zip(results) {
            let outcome = match result {
                Ok(PutOutcome::AlreadyHad) => Ok(Outcome::AlreadyHad),
                Ok(PutOutcome::Repaired) => {
                    self.repaired_chunks.insert(part.hash());
                    Ok(Outcome::Repaired)
                }
                Ok(_) => Ok(Outcome::Stored),
                Err(err) => Err(err.to_string()),
            };
            self.settle_fetched(part.name(), part.hash(), outcome);
        }
        Ok(())
    }

    /// Reports a fetched part's fate; a chunk's failure is kept for its files instead.
    fn settle_fetched(
        &mut self,
        name: &PartName,
        hash: PartHash,
        outcome: Result<Outcome, String>,
    ) {
        match outcome {
            Ok(outcome) if !name.is_chunk() => self.counting.settle(name.as_str(), outcome),
            Ok(_) => {}
            Err(reason) if name.is_chunk() => {
                self.failed_chunks.insert(hash, reason);
            }
            Err(reason) => self
                .counting
                .settle(name.as_str(), Outcome::Rejected(reason)),
        }
    }

    /// Stores a file's manifest once its chunks are held and the file checks out whole.
    fn keep_file(&mut self, part: VerifiedPart, manifest: &Manifest) {
        let name = part.name().clone();
        let failure = manifest
            .chunks()
            .iter()
            .enumerate()
            .find_map(|(index, hash)| {
                self.failed_chunks
                    .get(hash)
                    .map(|reason| format!("chunk {index} ({hash}): {reason}"))
            });
        let check_here = self.check == FileCheck::BeforeStoring;
        let failure = failure.or_else(|| {
            let checked = check_here.then(|| storage::check_file(self.store, &name, manifest));
            checked.and_then(Result::err).map(|err| err.to_string())
        });
        let outcome = match failure {
            Some(reason) => Outcome::Rejected(reason),
            None => match self
                .store
                .put(&part.with_kind(PartKind::Manifest), OnConflict::Refuse)
            {
                Ok(PutOutcome::AlreadyHad)
                    if manifest
                        .chunks()
                        .iter()
                        .any(|hash| self.repaired_chunks.contains(hash)) =>
                {
                    Outcome::Repaired
                }
                Ok(PutOutcome::AlreadyHad) => Outcome::AlreadyHad,
                Ok(PutOutcome::Repaired) => Outcome::Repaired,
                Ok(_) => Outcome::Stored,
                Err(err) => Outcome::Rejected(err.to_string()),
            },
        };
        self.counting.settle(name.as_str(), outcome);
    }

    /// Tells the observer about peers dropped since the last call.
    fn report_dropped(&mut self, peers: &[Peer]) {
        swarm::report_dropped(peers, &mut self.reported_drops, &mut self.counting);
    }
}
