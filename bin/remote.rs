//! Pulling a remote peer's parts and files into a local store, shared by `fetch` and
//! `export --from`.
//!
//! A file comes as its manifest first (to learn its chunks), then the chunks this store lacks,
//! then the manifest is stored, so a store never holds a file it cannot assemble, and pulling
//! again after an interruption moves only the chunks still missing.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use net::{Client, PushEvent};
use storage::{
    Manifest, OnConflict, PartHash, PartInfo, PartKind, PartName, PartStore, PutOutcome,
    VerifiedPart,
};

/// Bytes of fetched parts held before they are committed.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// The peer's entries named in `names` (all but chunks when empty), and the names it lacks.
pub fn select(
    client: &mut Client,
    names: &[PartName],
) -> anyhow::Result<(Vec<PartInfo>, Vec<PartName>)> {
    let remote = client.list()?;
    if names.is_empty() {
        let visible = remote.into_iter().filter(|info| !info.name.is_chunk());
        return Ok((visible.collect(), Vec::new()));
    }
    let mut missing = Vec::new();
    let mut chosen = Vec::new();
    for name in names {
        match remote.binary_search_by(|info| info.name.cmp(name)) {
            Ok(at) => chosen.push(remote[at].clone()),
            Err(_) => missing.push(name.clone()),
        }
    }
    Ok((chosen, missing))
}

/// Pulls `selected` into `store`, reporting each entry's fate (never a chunk's) to `report`.
/// Returns the bytes received.
///
/// # Errors
/// When the connection or the store fails; a single bad part is reported and the rest go on.
pub fn pull(
    client: &mut Client,
    store: &dyn PartStore,
    selected: &[PartInfo],
    report: &mut dyn FnMut(PushEvent),
) -> anyhow::Result<u64> {
    let mut wanted = Vec::new();
    let mut manifests = Vec::new();
    for info in selected {
        match store.lookup(&info.name).context("cannot read the store")? {
            Some(held) if held.hash == info.hash => {
                report(PushEvent::AlreadyHad(info.name.clone()))
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
    let mut received = 0;
    let mut files = Vec::new();
    client.fetch(&manifests, |info, fetched| {
        let decoded = fetched.map_err(|err| err.to_string()).and_then(|part| {
            received += part.size();
            Manifest::decode(part.bytes())
                .map(|manifest| (part, manifest))
                .map_err(|err| format!("its manifest is unusable: {err}"))
        });
        match decoded {
            Ok(file) => files.push(file),
            Err(reason) => report(PushEvent::Rejected(info.name.clone(), reason)),
        }
    })?;
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
    received += fetch_in_batches(client, store, &wanted, &mut |name, outcome| match outcome {
        Ok(event) if !name.is_chunk() => report(event),
        Ok(_) => {}
        Err(reason) if name.is_chunk() => {
            let hash = wanted
                .iter()
                .find(|info| &info.name == name)
                .map(|info| info.hash);
            if let Some(hash) = hash {
                failed_chunks.insert(hash, reason);
            }
        }
        Err(reason) => report(PushEvent::Rejected(name.clone(), reason)),
    })?;
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
    Ok(received)
}

/// Fetches `parts` and commits them in batches of about [`BATCH_BYTES`]; each part's outcome
/// goes to `outcome`. Returns the bytes received.
fn fetch_in_batches(
    client: &mut Client,
    store: &dyn PartStore,
    parts: &[PartInfo],
    outcome: &mut dyn FnMut(&PartName, Result<PushEvent, String>),
) -> anyhow::Result<u64> {
    let mut batch: Vec<VerifiedPart> = Vec::new();
    let mut batch_bytes = 0;
    let mut received = 0;
    let mut committed = Ok(());
    let commit = |batch: Vec<VerifiedPart>, outcome: &mut dyn FnMut(&PartName, _)| {
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
            outcome(part.name(), event);
        }
        anyhow::Ok(())
    };
    client.fetch(parts, |info, result| match result {
        Ok(part) => {
            received += part.size();
            batch_bytes += part.size();
            batch.push(part);
            if batch_bytes >= BATCH_BYTES && committed.is_ok() {
                batch_bytes = 0;
                committed = commit(std::mem::take(&mut batch), outcome);
            }
        }
        Err(err) => outcome(&info.name, Err(err.to_string())),
    })?;
    committed?;
    if !batch.is_empty() {
        commit(batch, outcome)?;
    }
    Ok(received)
}
