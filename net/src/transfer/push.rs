//! Pushing to one peer: local files, or the parts of a store. Every part is offered before its
//! bytes move, and a file's chunks all go before its manifest, which is offered only once the
//! peer holds every chunk.

use std::cell::RefCell;
use std::collections::HashSet;

use storage::{
    FileError, FileSource, LocalFile, Manifest, PartInfo, PartKind, PartName, PartStore, StoreError,
};

use super::TransferError;
use super::observe::{Counting, Observer, Outcome, Tally, TransferEvent};
use super::store_pages::store_pages;
use crate::{Client, ClientError, Outgoing, PushEvent};

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Files and parts (never chunks) by outcome.
    pub tally: Tally,
    /// Part bytes sent, chunks included.
    pub bytes_sent: u64,
}

/// Pushes `files`: those that fit in one part together, then each larger file as its chunks
/// of `chunk_size` (read one at a time; the peer is sent only those it lacks) and, once the
/// peer holds them all, its manifest. A file that cannot be read is reported and skipped.
///
/// # Errors
/// When the connection fails; files reported before that are settled.
pub fn push_files(
    client: &mut Client,
    files: &[FileSource],
    chunk_size: u64,
    observer: &mut dyn Observer,
) -> Result<PushReport, TransferError> {
    let counting = RefCell::new(Counting::new(observer));
    let total = files
        .iter()
        .filter_map(|file| std::fs::metadata(&file.path).ok())
        .map(|meta| meta.len())
        .sum();
    counting
        .borrow_mut()
        .event(TransferEvent::Planned { bytes: total });
    let mut large = Vec::new();
    let whole = files
        .iter()
        .filter_map(|file| match storage::open_file(file, chunk_size) {
            Ok(LocalFile::Whole(part)) => {
                moved(&counting, part.size());
                Some(Outgoing {
                    info: part.info(),
                    bytes: Some(part.into_bytes()),
                })
            }
            Ok(LocalFile::Chunked(chunks)) => {
                large.push(chunks);
                None
            }
            Err(err) => {
                let name = file.display_name();
                counting
                    .borrow_mut()
                    .settle(name, Outcome::Rejected(err.to_string()));
                None
            }
        });
    let mut bytes_sent = client
        .push(whole, already_sent, |event| settle(&counting, event))?
        .bytes_sent;
    for chunks in large {
        bytes_sent += push_chunked(client, *chunks, &counting)?;
    }
    let tally = counting.into_inner().tally;
    Ok(PushReport { tally, bytes_sent })
}

/// Pushes one large file: its chunks, then its manifest if every chunk is on the peer.
/// Returns the bytes sent.
fn push_chunked(
    client: &mut Client,
    mut chunks: storage::Chunker<std::fs::File>,
    counting: &RefCell<Counting<'_>>,
) -> Result<u64, ClientError> {
    let name = chunks.name().to_string();
    let failure = RefCell::new(None);
    let mut offered = HashSet::new();
    let outgoing = chunks.by_ref().map_while(|chunk| match chunk {
        Ok(chunk) => {
            moved(counting, chunk.size());
            // A chunk repeated in the file is offered once: the peer answers every offer
            // before it holds any, so a second offer would move the bytes again.
            let first = offered.insert(chunk.hash());
            Some(first.then(|| Outgoing {
                info: chunk.info(),
                bytes: Some(chunk.into_bytes()),
            }))
        }
        Err(err) => {
            failure.replace(Some(err.to_string()));
            None
        }
    });
    let mut bytes_sent = client
        .push(outgoing.flatten(), already_sent, |event| {
            if let PushEvent::Rejected(chunk, reason) = event {
                failure.replace(Some(format!("chunk {chunk}: {reason}")));
            }
        })?
        .bytes_sent;
    let manifest = match failure.into_inner() {
        Some(reason) => Err(reason),
        None => chunks.manifest().map_err(|err: FileError| err.to_string()),
    };
    match manifest {
        Ok(manifest) => {
            let outgoing = Outgoing {
                info: manifest.info(),
                bytes: Some(manifest.into_bytes()),
            };
            bytes_sent += client
                .push([outgoing], already_sent, |event| settle(counting, event))?
                .bytes_sent;
        }
        Err(reason) => counting
            .borrow_mut()
            .settle(name, Outcome::Rejected(reason)),
    }
    Ok(bytes_sent)
}

/// Pushes the parts of `store` named in `names` (with the chunks of named files), or all of
/// them, reading each one's bytes only if the peer wants them. Chunks and plain parts go
/// first, manifests last, so the peer has a file's chunks before its manifest.
///
/// # Errors
/// When the connection fails, or the store cannot be listed: the parts listed before that
/// are pushed and settled first, and no manifest is offered.
pub fn push_store(
    client: &mut Client,
    store: &dyn PartStore,
    names: Option<&[PartName]>,
    observer: &mut dyn Observer,
) -> Result<PushReport, TransferError> {
    let counting = RefCell::new(Counting::new(observer));
    let pages: Box<dyn Iterator<Item = Result<Vec<PartInfo>, StoreError>>> = match names {
        None => Box::new(store_pages(|after, limit| store.list_page(after, limit))),
        Some(names) => {
            let selected = select_with_chunks(store, &store.list()?, names, &counting)?;
            Box::new(std::iter::once(Ok(selected)))
        }
    };
    let load = |info: &PartInfo| {
        let bytes = store.get(&info.name).map_err(|err| err.to_string())?;
        moved(&counting, bytes.len() as u64);
        Ok(bytes)
    };
    let listing_failure = RefCell::new(None);
    let mut manifests = Vec::new();
    let parts = pages
        .map_while(|page| page.map_err(|err| listing_failure.replace(Some(err))).ok())
        .flat_map(|page| {
            let bytes = page.iter().map(|info| info.size).sum();
            counting
                .borrow_mut()
                .event(TransferEvent::Planned { bytes });
            let (held_back, parts): (Vec<PartInfo>, Vec<PartInfo>) = page
                .into_iter()
                .partition(|info| info.kind == PartKind::Manifest);
            manifests.extend(held_back);
            parts
        });
    let mut bytes_sent = 0;
    let outgoing = |info| Outgoing { info, bytes: None };
    bytes_sent += client
        .push(parts.map(outgoing), load, |event| settle(&counting, event))?
        .bytes_sent;
    if let Some(err) = listing_failure.into_inner() {
        return Err(err.into());
    }
    bytes_sent += client
        .push(manifests.into_iter().map(outgoing), load, |event| {
            settle(&counting, event)
        })?
        .bytes_sent;
    let tally = counting.into_inner().tally;
    Ok(PushReport { tally, bytes_sent })
}

/// The named parts of the store, with the chunks of the named files; a name the store does
/// not hold is reported.
fn select_with_chunks(
    store: &dyn PartStore,
    held: &[PartInfo],
    names: &[PartName],
    counting: &RefCell<Counting<'_>>,
) -> Result<Vec<PartInfo>, TransferError> {
    let mut selected = Vec::new();
    for name in names {
        let Ok(at) = held.binary_search_by(|info| info.name.cmp(name)) else {
            let refusal = Outcome::Rejected("not in the local store".into());
            counting.borrow_mut().settle(name.as_str(), refusal);
            continue;
        };
        let info = &held[at];
        if info.kind == PartKind::Manifest {
            match Manifest::decode(&store.get(name)?) {
                Ok(manifest) => selected.extend(manifest.chunk_infos()),
                Err(err) => {
                    let refusal = Outcome::Rejected(format!("its manifest is unusable: {err}"));
                    counting.borrow_mut().settle(name.as_str(), refusal);
                    continue;
                }
            }
        }
        selected.push(info.clone());
    }
    Ok(selected)
}

/// The `load` for parts whose bytes travel with their offer.
fn already_sent(_: &PartInfo) -> Result<Vec<u8>, String> {
    Err("the bytes were already sent".to_owned())
}

fn moved(counting: &RefCell<Counting<'_>>, bytes: u64) {
    counting.borrow_mut().event(TransferEvent::Moved { bytes });
}

/// Reports a pushed part's fate, unless it is a chunk.
fn settle(counting: &RefCell<Counting<'_>>, event: &PushEvent) {
    let (name, outcome) = match event {
        PushEvent::Stored(name) => (name, Outcome::Stored),
        PushEvent::AlreadyHad(name) => (name, Outcome::AlreadyHad),
        PushEvent::Rejected(name, reason) => (name, Outcome::Rejected(reason.clone())),
    };
    if !name.is_chunk() {
        counting.borrow_mut().settle(name.as_str(), outcome);
    }
}
