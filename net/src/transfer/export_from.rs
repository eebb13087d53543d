//! Exporting a peer's files without a store of one's own: pulled into a scratch store inside
//! the destination, each part verified, memory bounded however large the files, then written
//! out by the same export code as a local store's (temp file, rename, no overwrite), which
//! checks each file whole as it reads it back, once.

use std::path::Path;

use storage::{BackendKind, ExportOptions, ExportOutcome, PartName};

use super::observe::{Observer, Outcome, TransferEvent};
use super::pull::{FileCheck, pull_checking};
use super::{Dialer, TransferError};

/// Pulls `names` (all when empty) from the peer at `addr` and writes them into `out`. Parts
/// that cannot be pulled are reported to `observer`; the written files are returned.
///
/// # Errors
/// When the peer cannot be reached, or `out` or the scratch store cannot be made.
pub fn export_from(
    dialer: &Dialer,
    addr: &str,
    names: &[PartName],
    out: &Path,
    options: &ExportOptions,
    observer: &mut dyn Observer,
) -> Result<Vec<ExportOutcome>, TransferError> {
    let scratch_in = |source| storage::StoreError::Io {
        context: format!("cannot create a scratch store in {}", out.display()),
        source,
    };
    std::fs::create_dir_all(out).map_err(scratch_in)?;
    let scratch = tempfile::Builder::new()
        .prefix(".p2p-store-export.")
        .tempdir_in(out)
        .map_err(scratch_in)?;
    let staging = storage::open_store(&scratch.path().join("db"), Some(BackendKind::Fs))?;
    let mut pulled = Vec::new();
    let mut collect = |event: TransferEvent| match event {
        TransferEvent::Settled {
            name,
            outcome: Outcome::Stored | Outcome::AlreadyHad | Outcome::Repaired,
        } => pulled.extend(PartName::new(name).ok()),
        other => observer.on_event(other),
    };
    let addrs = [addr.to_owned()];
    // The export reads each file back and checks it whole before renaming it into place, so
    // the pull does not read it back first.
    let (store, check) = (staging.as_ref(), FileCheck::ByCaller);
    pull_checking(dialer, &addrs, names, store, &mut collect, check)?;
    Ok(storage::export(
        staging.as_ref(),
        out,
        Some(&pulled),
        options,
    )?)
}
