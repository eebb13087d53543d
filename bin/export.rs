//! `p2p-store export`: write parts and files out as `OUT/<name>_recebida`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use net::transfer::{Observer, Outcome, TransferEvent};
use serde_json::Map;
use storage::{BackendKind, ExportOptions, Overwrite, PartName, StoreError};

use crate::report::{Report, Words};
use crate::{Status, open, peer};

/// What an exported file's name ends with: the original example's "received".
pub const SUFFIX: &str = "_recebida";

pub const EXAMPLES: &str = "Examples:
  p2p-store --db ./peer1.db export ./out
  p2p-store export --from 127.0.0.1:6881 ./out part2.txt
  p2p-store export --force ./out image.iso";

/// Write parts as OUT/<name>_recebida, each verified first. Corrupt parts are reported and
/// skipped; the others are written.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into; created if missing.
    out: PathBuf,

    /// Parts to export; all of them when none are named.
    #[arg(value_name = "NAME")]
    names: Vec<PartName>,

    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,

    /// Export the parts of the peer at ADDR (a running `serve`) instead of the local store.
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,
}

/// Files named `<name>_recebida`, replaced only when `force`.
pub fn options(force: bool) -> anyhow::Result<ExportOptions> {
    let overwrite = if force {
        Overwrite::Always
    } else {
        Overwrite::Never
    };
    Ok(ExportOptions::new(SUFFIX)?.overwrite(overwrite))
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let options = options(args.force)?;
    let mut report = Report::new("export", Words::Export, false);
    match &args.from {
        Some(addr) => export_remote(addr, &args, &options, &mut report)?,
        None => {
            let store = open::store(db, backend)?;
            let names = if args.names.is_empty() {
                storage::exportable_names(store.as_ref()).context("cannot list the store")?
            } else {
                args.names.clone()
            };
            report.set_total(names.len() as u64);
            export_into(store.as_ref(), &args.out, &names, &options, &mut report)?;
        }
    }
    Ok(report.finish(Map::new()))
}

/// Writes `names` of `store` into `out`, reporting each.
pub fn export_into(
    store: &dyn storage::PartStore,
    out: &Path,
    names: &[PartName],
    options: &ExportOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    storage::export_each(
        store,
        out,
        names,
        options,
        |(name, written)| match written {
            Ok(path) => report.exported(name.as_str(), &path),
            Err(err @ StoreError::ExportExists { .. }) => report.rejected(
                name.as_str(),
                &format!("{err}; pass --force to overwrite it"),
            ),
            Err(err) => report.rejected(name.as_str(), &err),
        },
    )
    .with_context(|| format!("cannot export to {}", out.display()))
}

/// Pulls the parts and files from the peer into a scratch store inside `OUT` (each verified,
/// memory bounded however large the files), then writes them with the same export code as a
/// local store: temp file, rename, no overwrite.
fn export_remote(
    addr: &str,
    args: &Args,
    options: &ExportOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".p2p-store-export.")
        .tempdir_in(&args.out)
        .with_context(|| format!("cannot create a scratch store in {}", args.out.display()))?;
    let staging = storage::open_store(&scratch.path().join("db"), Some(BackendKind::Fs))?;
    let mut pulled = Vec::new();
    let mut collect = |event: TransferEvent| match event {
        TransferEvent::Settled {
            name,
            outcome: Outcome::Stored | Outcome::AlreadyHad,
        } => pulled.push(name),
        TransferEvent::Planned { .. } | TransferEvent::Moved { .. } => {}
        other => report.on_event(other),
    };
    net::transfer::pull(
        &peer::dialer(peer::TIMEOUT),
        &[addr.to_owned()],
        &args.names,
        staging.as_ref(),
        &mut collect,
    )
    .with_context(|| format!("fetching from {addr} failed"))?;
    let names: Vec<PartName> = pulled
        .iter()
        .filter_map(|name| PartName::new(name.as_str()).ok())
        .collect();
    export_into(staging.as_ref(), &args.out, &names, options, report)
}
