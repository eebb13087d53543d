//! `p2p-store import`: store local files as parts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::{BackendKind, ImportOptions, OnConflict, PartName};

use crate::report::{Report, Words};
use crate::{Status, cli, open};

/// Store files as parts, each named by its file name (larger files as chunks: see --part-size).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store import part2.txt part3.txt
  p2p-store --db ./peer2.db import --name notes-v2.txt notes.txt
  p2p-store import --replace --part-size 4194304 image.iso")]
pub struct Args {
    /// Files to store.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Store the file under this name instead of its file name (one file only).
    #[arg(long, value_name = "NAME")]
    name: Option<PartName>,

    /// Replace a part of the same name that holds different bytes (refused otherwise).
    #[arg(long)]
    replace: bool,

    #[command(flatten)]
    part_size: cli::PartSize,
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let files = cli::sources(args.files, args.name);
    let store = open::store(db, backend)?;
    let options = ImportOptions::default()
        .on_conflict(OnConflict::when(args.replace))
        .chunk_size(args.part_size.bytes);
    let mut report = Report::new("import", Words::Transfer, false);
    storage::import_files(store.as_ref(), &files, options, |(name, outcome)| {
        report.put(&name, outcome)
    })
    .context("cannot store the parts")?;
    Ok(report.finish([]))
}
