//! Pulling remote peers' parts and files into a local store, shared by `fetch` and
//! `export --from`.
//!
//! A file comes as its manifest first (to learn its chunks), then the chunks this store lacks,
//! then the manifest is stored, so a store never holds a file it cannot assemble, and pulling
//! again after an interruption moves only the chunks still missing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use net::PushEvent;
use storage::{
    Manifest, OnConflict, PartHash, PartInfo, PartKind, PartName, PartStore, PutOutcome,
    VerifiedPart,
};

use crate::peer;
use crate::progress::Progress;
use crate::swarm::{self, Peer};

/// Bytes of fetched parts held before they are committed.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Connects to every peer and reads what each holds; a peer that cannot be reached is
/// reported on stderr and left out, and none reachable is an error.
pub fn connect_all(addrs: &[String], timeout: Duration) -> anyhow::Result<Vec<Peer>> {
    let mut peers = Vec::new();
    let mut failures = Vec::new();
    for addr in addrs {
        let connected = peer::connect_with(addr, timeout).and_then(|mut client| {
            let listing = client
                .list()
                .with_context(|| format!("cannot list the parts of {addr}"))?;
            let holds = listing
                .into_iter()
                .map(|info| (info.name.clone(), info))
                .collect();
            Ok(Peer {
                addr: addr.clone(),
                client,
                holds,
                received: 0,
                dropped: None,
            })
        });
        match connected {
            Ok(peer) => peers.push(peer),
            Err(err) => {
                eprintln!("warning: leaving out {addr}: {err:#}");
                failures.push(format!("{err:#}"));
            }
        }
    }
    anyhow::ensure!(
        !peers.is_empty(),
        "no peer could be reached: {}",
        failures.join("; ")
    );
    Ok(peers)
}

/// The entries named in `names` (every peer's, but chunks, when empty), and the names no peer
/// has. Where peers disagree on a name, the first peer given wins.
pub fn select(peers: &[Peer], names: &[PartName]) -> (Vec<PartInfo>, Vec<PartName>) {
    let mut all: BTreeMap<&PartName, &PartInfo> = BTreeMap::new();
    for peer in peers {
        for (name, info) in &peer.holds {
            all.entry(name).or_insert(info);
        }
    }
    if names.is_empty() {
        let visible = all.into_values().filter(|info| !info.name.is_chunk());
        return (visible.cloned().collect(), Vec::new());
    }
    let mut missing = Vec::new();
    let mut chosen = Vec::new();
    for name in names {
        match all.get(name) {
            Some(info) => chosen.push((*info).clone()),
            None => missing.push(name.clone()),
        }
    }
    (chosen, missing)
}

/// Pulls `selected` into `store` from the peers, reporting each entry's fate (never a
/// chunk's) to `report`.
///
/// # Errors
/// When the store fails; a part no peer delivers is reported and the rest go on.
pub fn pull(
    peers: &mut [Peer],
    store: &dyn PartStore,
    selected: &[PartInfo],
    report: &mut dyn FnMut(PushEvent),
    quiet: bool,
) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    let mut manifests = Vec::new();
    for info in selected {
        match store.lookup(&info.name).context("cannot read the store")? {
            Some(held) if held.hash == info.hash => {
                report(PushEvent::AlreadyHad(info.name.clone()));
            }
            Some(held) => report(PushEvent::Rejected(
                info.name.clone(),
                format!(
                    "this store holds other content under that name ({})",
                    held.hash
                ),
            )),
            None if info.kind == PartKind::Manifest => manifests.push(info.clone()),
            None => wanted.push(info.clone()),
        }
    }
    let files = fetch_manifests(peers, manifests, report)?;
    let mut seen: HashSet<PartName> = wanted.iter().map(|info| info.name.clone()).collect();
    for (_, manifest) in &files {
        for chunk in manifest.chunk_infos() {
            let held = store.lookup(&chunk.name)?;
            if held.is_none_or(|held| held.hash != chunk.hash) && seen.insert(chunk.name.clone()) {
                wanted.push(chunk);
            }
        }
    }
    let mut failed_chunks: HashMap<PartHash, String> = HashMap::new();
    let mut outcome =
        |name: &PartName, hash: PartHash, result: Result<PushEvent, String>| match result {
            Ok(event) if !name.is_chunk() => report(event),
            Ok(_) => {}
            Err(reason) if name.is_chunk() => {
                failed_chunks.insert(hash, reason);
            }
            Err(reason) => report(PushEvent::Rejected(name.clone(), reason)),
        };
    let progress = Progress::bytes("fetch", wanted.iter().map(|info| info.size).sum(), quiet);
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    let undelivered = swarm::fetch(peers, wanted, |part| {
        progress.add(part.size());
        batch_bytes += part.size();
        batch.push(part);
        if batch_bytes >= BATCH_BYTES {
            batch_bytes = 0;
            commit(store, std::mem::take(&mut batch), &mut outcome)?;
        }
        Ok(())
    })?;
    commit(store, batch, &mut outcome)?;
    progress.finish();
    for (info, reason) in undelivered {
        outcome(&info.name, info.hash, Err(reason));
    }
    for (part, manifest) in files {
        let name = part.name().clone();
        let failure = manifest
            .chunks()
            .iter()
            .enumerate()
            .find_map(|(index, hash)| {
                failed_chunks
                    .get(hash)
                    .map(|reason| format!("chunk {index} ({hash}): {reason}"))
            });
        let failure = failure.or_else(|| {
            storage::check_file(store, &name, &manifest)
                .err()
                .map(|err| err.to_string())
        });
        let event = match failure {
            Some(reason) => PushEvent::Rejected(name, reason),
            None => match store.put(&part.with_kind(PartKind::Manifest), OnConflict::Refuse) {
                Ok(PutOutcome::AlreadyHad) => PushEvent::AlreadyHad(name),
                Ok(_) => PushEvent::Stored(name),
                Err(err) => PushEvent::Rejected(name, err.to_string()),
            },
        };
        report(event);
    }
    Ok(())
}

/// Fetches and decodes the manifests; one that cannot be had or decoded is reported.
fn fetch_manifests(
    peers: &mut [Peer],
    manifests: Vec<PartInfo>,
    report: &mut dyn FnMut(PushEvent),
) -> anyhow::Result<Vec<(VerifiedPart, Manifest)>> {
    let mut files = Vec::new();
    let undelivered = swarm::fetch(peers, manifests, |part| {
        match Manifest::decode(part.bytes()) {
            Ok(manifest) => files.push((part, manifest)),
            Err(err) => report(PushEvent::Rejected(
                part.name().clone(),
                format!("its manifest is unusable: {err}"),
            )),
        }
        Ok(())
    })?;
    for (info, reason) in undelivered {
        report(PushEvent::Rejected(info.name, reason));
    }
    Ok(files)
}

/// Where each fetched part's fate goes: stored or already had, or why not.
type Outcome<'a> = dyn FnMut(&PartName, PartHash, Result<PushEvent, String>) + 'a;

/// Stores fetched parts with one sync and reports each.
fn commit(
    store: &dyn PartStore,
    batch: Vec<VerifiedPart>,
    outcome: &mut Outcome<'_>,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let results = store
        .put_batch(&batch, OnConflict::Refuse)
        .context("cannot store the fetched parts")?;
    for (part, result) in batch.iter().zip(results) {
        let name = part.name().clone();
        let event = match result {
            Ok(PutOutcome::AlreadyHad) => Ok(PushEvent::AlreadyHad(name)),
            Ok(_) => Ok(PushEvent::Stored(name)),
            Err(err) => Err(err.to_string()),
        };
        outcome(part.name(), part.hash(), event);
    }
    Ok(())
}
