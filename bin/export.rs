//! `p2p-store export`: write parts out as `OUT/<name>_recebida`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::{BackendKind, Overwrite, PartName};

use crate::{Status, open};

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
}

pub fn run(db: &Path, backend: Option<BackendKind>, args: Args) -> anyhow::Result<Status> {
    let store = open::store(db, backend)?;
    let names = (!args.names.is_empty()).then_some(args.names.as_slice());
    let overwrite = if args.force {
        Overwrite::Always
    } else {
        Overwrite::Never
    };
    let outcomes = storage::export(store.as_ref(), &args.out, names, overwrite)
        .with_context(|| format!("cannot export to {}", args.out.display()))?;
    let mut failed = 0;
    for (name, written) in &outcomes {
        match written {
            Ok(path) => println!("exported {name} -> {}", path.display()),
            Err(err) => {
                println!("failed {name}: {err}");
                failed += 1;
            }
        }
    }
    println!("{} exported, {failed} failed", outcomes.len() - failed);
    Ok(Status::from_failures(failed))
}
