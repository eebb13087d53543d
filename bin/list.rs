//! `p2p-store list`: what the store, or a remote peer, holds.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use storage::{BackendKind, Manifest, PartHash, PartInfo, PartKind, PartName};

use crate::{Status, open, peer};

/// List the parts in the store (or a peer's, with --from): name, size in bytes and blake3
/// hash, tab-separated; a file stored as chunks shows its own size and hash (as b3sum prints
/// it) and its number of parts.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the parts of the peer at ADDR instead of the local store.
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,

    /// Also list the chunks of files, each named b3-<hash>.
    #[arg(long)]
    all: bool,

    /// Print one JSON array of {"name","size","hash"} objects (files add "parts").
    #[arg(long)]
    json: bool,
}

/// One line of the listing.
#[derive(Debug, serde::Serialize)]
struct Entry {
    name: PartName,
    size: u64,
    hash: PartHash,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<usize>,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let entries = match &args.from {
        Some(addr) => {
            let mut client = peer::connect(addr)?;
            let parts = client
                .list()
                .with_context(|| format!("cannot list the parts of {addr}"))?;
            let manifests: Vec<PartInfo> = parts
                .iter()
                .filter(|info| info.kind == PartKind::Manifest)
                .cloned()
                .collect();
            let mut decoded = Vec::new();
            client.fetch(&manifests, |info, part| {
                decoded.push((info.name.clone(), part.map(|part| part.into_bytes())));
            })?;
            entries(parts, args.all, |name| {
                decoded
                    .iter()
                    .find(|(held, _)| held == name)
                    .and_then(|(_, bytes)| bytes.as_ref().ok().cloned())
            })
        }
        None => {
            let store = open::store(db, backend)?;
            let parts = store.list().context("cannot list the store")?;
            entries(parts, args.all, |name| store.get(name).ok())
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &entries)?;
        writeln!(out)?;
    } else {
        for entry in &entries {
            write!(out, "{}\t{}\t{}", entry.name, entry.size, entry.hash)?;
            match entry.parts {
                Some(parts) => writeln!(out, "\t{parts} parts")?,
                None => writeln!(out)?,
            }
        }
    }
    Ok(Status::Done)
}

/// The listing: chunks only when asked for, files with their size and part count read from
/// their manifests (`manifest` gives a manifest's bytes, if they can be had).
fn entries(
    parts: Vec<PartInfo>,
    all: bool,
    manifest: impl Fn(&PartName) -> Option<Vec<u8>>,
) -> Vec<Entry> {
    parts
        .into_iter()
        .filter(|info| all || !info.name.is_chunk())
        .map(|info| {
            let file = (info.kind == PartKind::Manifest)
                .then(|| manifest(&info.name))
                .flatten()
                .and_then(|bytes| Manifest::decode(&bytes).ok());
            Entry {
                size: file.as_ref().map_or(info.size, Manifest::file_size),
                hash: file.as_ref().map_or(info.hash, Manifest::file_hash),
                parts: file.map(|file| file.chunks().len()),
                name: info.name,
            }
        })
        .collect()
}
