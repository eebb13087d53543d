//! `p2p-store send`: push parts to another peer.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use net::{Client, Outgoing, PushEvent, PushSummary};
use storage::{BackendKind, Manifest, PartInfo, PartKind, PartName, PartStore};

use crate::local_file::{self, Chunks, LocalFile, Rejected};
use crate::progress::Progress;
use crate::{Status, open, peer};

/// Push parts to a peer: the given files, or else the parts of this store (--db). The peer
/// stores those it does not have; parts it already has are not sent, so pushing again after
/// an interruption sends only what is missing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The peer to push to, as HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    to: String,

    /// Files to push, each named by its file name. Without files, the store's parts are pushed.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Push the one file given under this name.
    #[arg(long, value_name = "NAME", requires = "files")]
    name: Option<PartName>,

    /// Push only this part of the store (repeatable).
    #[arg(long = "part", value_name = "NAME", conflicts_with = "files")]
    parts: Vec<PartName>,

    /// Print one JSON object {"stored","already_had","rejected","bytes_sent"} instead of lines.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    part_size: crate::cli::PartSize,

    /// Seconds without progress after which the peer counts as gone and the send fails.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    if args.name.is_some() && args.files.len() != 1 {
        use clap::CommandFactory;
        crate::cli::Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--name takes exactly one FILE",
            )
            .exit();
    }
    let report = Report::new(args.json);
    let summary = if args.files.is_empty() {
        push_store(db, backend, &args, &report)?
    } else {
        push_files(&args, &report)?
    };
    Ok(report.finish(summary.bytes_sent))
}

/// Pushes files: those that fit in one part together, then each large file as its chunks
/// (read one at a time; the peer is sent only those it lacks) and, once they are all held,
/// its manifest.
fn push_files(args: &Args, report: &Report) -> anyhow::Result<PushSummary> {
    let mut client = peer::connect_with(&args.to, Duration::from_secs(args.timeout.max(1)))?;
    let total = args
        .files
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum();
    let progress = Progress::bytes("send", total, args.json);
    let mut large = Vec::new();
    let whole = args.files.iter().filter_map(|path| {
        match local_file::open(path, args.name.as_ref(), args.part_size.bytes) {
            Ok(LocalFile::Whole(part)) => {
                progress.add(part.size());
                Some(Outgoing {
                    info: part.info(),
                    bytes: Some(part.into_bytes()),
                })
            }
            Ok(LocalFile::Chunked(chunks)) => {
                large.push(chunks);
                None
            }
            Err(Rejected(name, reason)) => {
                report.local_rejection(&name, &reason);
                None
            }
        }
    });
    let no_load = |_: &PartInfo| Err("the bytes were already sent".to_owned());
    let mut summary = client
        .push(whole, no_load, |event| report.event(event))
        .with_context(|| format!("pushing to {} failed", args.to))?;
    for chunks in large {
        let sent = push_chunked(&mut client, *chunks, report, &progress)
            .with_context(|| format!("pushing to {} failed", args.to))?;
        summary.add(&sent);
    }
    progress.finish();
    Ok(summary)
}

/// Pushes one large file: its chunks, then its manifest if every chunk is on the peer.
fn push_chunked(
    client: &mut Client,
    mut chunks: Chunks,
    report: &Report,
    progress: &Progress,
) -> Result<PushSummary, net::ClientError> {
    let name = chunks.name().clone();
    let failure = RefCell::new(None);
    let mut offered = HashSet::new();
    let outgoing = chunks.by_ref().map_while(|chunk| match chunk {
        Ok(chunk) => {
            progress.add(chunk.size());
            // A chunk repeated in the file is offered once: the peer answers every offer
            // before it holds any, so a second offer would move the bytes again.
            let first = offered.insert(chunk.hash());
            Some(first.then(|| Outgoing {
                info: chunk.info(),
                bytes: Some(chunk.into_bytes()),
            }))
        }
        Err(Rejected(_, reason)) => {
            failure.replace(Some(reason));
            None
        }
    });
    let no_load = |_: &PartInfo| Err("the bytes were already sent".to_owned());
    let chunk_summary = client.push(outgoing.flatten(), no_load, |event| {
        if let PushEvent::Rejected(chunk, reason) = event {
            failure.replace(Some(format!("chunk {chunk}: {reason}")));
        }
    })?;
    let mut summary = PushSummary {
        bytes_sent: chunk_summary.bytes_sent,
        ..PushSummary::default()
    };
    let manifest = match failure.into_inner() {
        Some(reason) => Err(reason),
        None => chunks.manifest().map_err(|Rejected(_, reason)| reason),
    };
    match manifest {
        Ok(manifest) => {
            let outgoing = Outgoing {
                info: manifest.info(),
                bytes: Some(manifest.into_bytes()),
            };
            let no_load = |_: &PartInfo| Err("the bytes were already sent".to_owned());
            summary.add(&client.push([outgoing], no_load, |event| report.event(event))?);
        }
        Err(reason) => report.event(&PushEvent::Rejected(name, reason)),
    }
    Ok(summary)
}

/// Pushes parts of the local store, reading each one's bytes only if the peer wants them.
/// Chunks and plain parts go first, manifests last, so a peer always has a file's chunks
/// before its manifest; chunks are reported only when they fail.
fn push_store(
    db: &Path,
    backend: Option<BackendKind>,
    args: &Args,
    report: &Report,
) -> anyhow::Result<PushSummary> {
    let store = open::store(db, backend)?;
    let held = store.list().context("cannot list the store")?;
    let selected = if args.parts.is_empty() {
        held
    } else {
        select_with_chunks(store.as_ref(), &held, &args.parts, report)?
    };
    let (manifests, parts): (Vec<PartInfo>, Vec<PartInfo>) = selected
        .into_iter()
        .partition(|info| info.kind == PartKind::Manifest);
    let mut client = peer::connect_with(&args.to, Duration::from_secs(args.timeout.max(1)))?;
    let load = |info: &PartInfo| store.get(&info.name).map_err(|err| err.to_string());
    let mut summary = PushSummary::default();
    for round in [parts, manifests] {
        let outgoing = round.into_iter().map(|info| Outgoing { info, bytes: None });
        let sent = client
            .push(outgoing, load, |event| report.event(event))
            .with_context(|| format!("pushing to {} failed", args.to))?;
        summary.add(&sent);
    }
    Ok(summary)
}

/// The named parts of the store, with the chunks of the named files.
fn select_with_chunks(
    store: &dyn PartStore,
    held: &[PartInfo],
    names: &[PartName],
    report: &Report,
) -> anyhow::Result<Vec<PartInfo>> {
    let mut selected = Vec::new();
    for name in names {
        let Some(info) = held.iter().find(|info| &info.name == name) else {
            report.local_rejection(name.as_str(), "not in the local store");
            continue;
        };
        if info.kind == PartKind::Manifest {
            let bytes = store.get(name)?;
            let manifest = Manifest::decode(&bytes)
                .with_context(|| format!("the manifest of {name} is unusable"))?;
            selected.extend(manifest.chunk_infos());
        }
        selected.push(info.clone());
    }
    Ok(selected)
}

/// Prints each part's fate as a line (unless --json) and counts them; chunks are counted by
/// their file, not on their own.
struct Report {
    json: bool,
    stored: Cell<u64>,
    already_had: Cell<u64>,
    rejected: Cell<u64>,
}

impl Report {
    fn new(json: bool) -> Self {
        Self {
            json,
            stored: Cell::new(0),
            already_had: Cell::new(0),
            rejected: Cell::new(0),
        }
    }

    fn local_rejection(&self, name: &str, reason: &str) {
        self.rejected.set(self.rejected.get() + 1);
        if !self.json {
            println!("rejected {name}: {reason}");
        }
    }

    fn event(&self, event: &PushEvent) {
        let (PushEvent::Stored(name) | PushEvent::AlreadyHad(name) | PushEvent::Rejected(name, _)) =
            event;
        if name.is_chunk() {
            return;
        }
        let (count, line) = match event {
            PushEvent::Stored(name) => (&self.stored, format!("stored {name}")),
            PushEvent::AlreadyHad(name) => (&self.already_had, format!("already had {name}")),
            PushEvent::Rejected(name, reason) => {
                (&self.rejected, format!("rejected {name}: {reason}"))
            }
        };
        count.set(count.get() + 1);
        if !self.json {
            println!("{line}");
        }
    }

    fn finish(self, bytes_sent: u64) -> Status {
        let summary = PushSummary {
            stored: self.stored.get(),
            already_had: self.already_had.get(),
            rejected: self.rejected.get(),
            bytes_sent,
        };
        if self.json {
            println!(
                "{}",
                serde_json::to_string(&summary).expect("a summary serialises")
            );
        } else {
            println!(
                "{} stored, {} already had, {} rejected, {} bytes sent",
                summary.stored, summary.already_had, summary.rejected, summary.bytes_sent
            );
        }
        Status::from_failures(summary.rejected as usize)
    }
}
