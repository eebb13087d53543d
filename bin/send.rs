//! `p2p-store send`: push parts to another peer.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use anyhow::Context;
use net::{Outgoing, PushEvent, PushSummary};
use storage::{BackendKind, PartName};

use crate::local_file::{Rejected, read_part};
use crate::{Status, open, peer};

/// Push parts to a peer: the given files, or else the parts of this store (--db). The peer
/// stores those it does not have; parts it already has are not sent.
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
    Ok(report.finish(summary))
}

/// Pushes files as they are read: each is hashed for its offer and kept until answered.
fn push_files(args: &Args, report: &Report) -> anyhow::Result<PushSummary> {
    let mut client = peer::connect(&args.to)?;
    let parts = args
        .files
        .iter()
        .filter_map(|path| match read_part(path, args.name.as_ref()) {
            Ok(part) => Some(Outgoing {
                info: part.info(),
                bytes: Some(part.into_bytes()),
            }),
            Err(Rejected(name, reason)) => {
                report.local_rejection(&name, &reason);
                None
            }
        });
    let no_load = |_: &storage::PartInfo| Err("the file's bytes were already sent".to_owned());
    client
        .push(parts, no_load, |event| report.event(event))
        .with_context(|| format!("pushing to {} failed", args.to))
}

/// Pushes parts of the local store, reading each one's bytes only if the peer wants them.
fn push_store(
    db: &Path,
    backend: Option<BackendKind>,
    args: &Args,
    report: &Report,
) -> anyhow::Result<PushSummary> {
    let store = open::store(db, backend)?;
    let mut held = store.list().context("cannot list the store")?;
    if !args.parts.is_empty() {
        for name in &args.parts {
            if !held.iter().any(|info| &info.name == name) {
                report.local_rejection(name.as_str(), "not in the local store");
            }
        }
        held.retain(|info| args.parts.contains(&info.name));
    }
    let mut client = peer::connect(&args.to)?;
    let parts = held.into_iter().map(|info| Outgoing { info, bytes: None });
    let load = |info: &storage::PartInfo| store.get(&info.name).map_err(|err| err.to_string());
    client
        .push(parts, load, |event| report.event(event))
        .with_context(|| format!("pushing to {} failed", args.to))
}

/// Prints each part's fate as a line (unless --json) and counts local rejections.
struct Report {
    json: bool,
    local_rejections: Cell<u64>,
}

impl Report {
    fn new(json: bool) -> Self {
        Self {
            json,
            local_rejections: Cell::new(0),
        }
    }

    fn local_rejection(&self, name: &str, reason: &str) {
        self.local_rejections.set(self.local_rejections.get() + 1);
        if !self.json {
            println!("rejected {name}: {reason}");
        }
    }

    fn event(&self, event: &PushEvent) {
        if self.json {
            return;
        }
        match event {
            PushEvent::Stored(name) => println!("stored {name}"),
            PushEvent::AlreadyHad(name) => println!("already had {name}"),
            PushEvent::Rejected(name, reason) => println!("rejected {name}: {reason}"),
        }
    }

    fn finish(self, mut summary: PushSummary) -> Status {
        summary.rejected += self.local_rejections.into_inner();
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
