//! `p2p-store export`: write parts and files out as `OUT/<name>_recebida`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::{BackendKind, ExportOptions, Overwrite, PartName, StoreError};

use crate::report::{Report, Words};
use crate::{Status, open, peer};

/// What an exported file's name ends with: the original example's "received".
pub const SUFFIX: &str = "_recebida";

/// Write parts as OUT/<name>_recebida, each verified first; a corrupt one is reported and skipped.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store --db ./peer1.db export ./out
  p2p-store export --from 127.0.0.1:6881 ./out part2.txt
  p2p-store export --force ./out image.iso")]
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
    Ok(ExportOptions::new(SUFFIX)?.overwrite(Overwrite::when(force)))
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let options = options(args.force)?;
    let mut report = Report::new("export", Words::Export, false);
    match &args.from {
        Some(addr) => export_remote(addr, &args, &options, &mut report)?,
        None => {
            let store = open::existing(db, backend)?;
            let names = if args.names.is_empty() {
                storage::exportable_names(store.as_ref()).context("cannot list the store")?
            } else {
                args.names.clone()
            };
            report.set_total(names.len() as u64);
            storage::export_each(
                store.as_ref(),
                &args.out,
                &names,
                &options,
                |(name, written)| report_written(&mut report, &name, written),
            )
            .with_context(|| format!("cannot export to {}", args.out.display()))?;
        }
    }
    Ok(report.finish([]))
}

/// Reports one file's export, saying how to replace a file that is already there.
fn report_written(report: &mut Report, name: &PartName, written: Result<PathBuf, StoreError>) {
    match written {
        Ok(path) => report.exported(name.as_str(), &path),
        Err(err @ StoreError::ExportExists { .. }) => report.rejected(
            name.as_str(),
            &format!("{err}; pass --force to overwrite it"),
        ),
        Err(err) => report.rejected(name.as_str(), &err),
    }
}

/// Writes the peer's files into OUT; what cannot be pulled is reported as it fails.
fn export_remote(
    addr: &str,
    args: &Args,
    options: &ExportOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dialer = peer::dialer(peer::TIMEOUT)?;
    let exported =
        net::transfer::export_from(&dialer, addr, &args.names, &args.out, options, report)
            .with_context(|| format!("exporting from {addr} failed"))?;
    for (name, written) in exported {
        report_written(report, &name, written);
    }
    Ok(())
}
