//! Writing stored parts out as `<out>/<name><suffix>` files.
//!
//! Each file is verified first, written to a temp file inside `<out>` and renamed into place,
//! so a reader never sees a partial file; a few are written at once, so that their syncs
//! overlap. A manifest is written as the file it describes, assembled chunk by chunk, each
//! chunk verified; a chunk missing or damaged leaves no file. The destination is always
//! `<out>` joined with one validated [`PartName`] plus a suffix without separators: a single
//! plain file name, so nothing is ever written outside `<out>`. An existing file is kept
//! unless the caller asks to overwrite it; a symlink in its place is replaced, never followed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::durable::{self, Existing};
use crate::error::IoContext;
use crate::file::assemble;
use crate::{Manifest, PartKind, PartName, PartStore, StoreError, VerifiedPart};

/// Files written at once. Each waits for its fdatasync, and syncs in flight together keep the
/// disk busy and share its cache flushes (see `durable`).
const WRITTEN_AT_ONCE: usize = 4;

/// Whether an existing exported file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    #[default]
    Never,
    Always,
}

impl Overwrite {
    /// `Always` when `replace`, else `Never`.
    pub fn when(replace: bool) -> Self {
        if replace { Self::Always } else { Self::Never }
    }
}

/// How parts are written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    suffix: String,
    overwrite: Overwrite,
}

impl ExportOptions {
    /// Files named `<name><suffix>`, never over an existing file.
    ///
    /// # Errors
    /// [`StoreError::BadExportSuffix`] for a suffix that would make the name a path.
    pub fn new(suffix: &str) -> Result<Self, StoreError> {
        if suffix.contains(['/', '\0']) {
            return Err(StoreError::BadExportSuffix(suffix.to_owned()));
        }
        Ok(Self {
            suffix: suffix.to_owned(),
            overwrite: Overwrite::Never,
        })
    }

    pub fn overwrite(self, overwrite: Overwrite) -> Self {
        Self { overwrite, ..self }
    }

    /// The file `name` is exported as.
    pub fn file_name(&self, name: &PartName) -> String {
        format!("{name}{}", self.suffix)
    }
}

/// One part's export: the file written, or why not.
pub type ExportOutcome = (PartName, Result<PathBuf, StoreError>);

/// Exports `names`, or every part but chunks when `names` is `None`, into `out` (created if
/// missing).
/// One part failing (corrupt, already exported) does not stop the others.
///
/// # Errors
/// Only when `out` cannot be created or synced, or the store cannot be listed.
pub fn export(
    store: &dyn PartStore,
    out: &Path,
    names: Option<&[PartName]>,
    options: &ExportOptions,
) -> Result<Vec<ExportOutcome>, StoreError> {
    let names = match names {
        Some(names) => names.to_vec(),
        None => exportable_names(store)?,
    };
    let mut outcomes = Vec::with_capacity(names.len());
    export_each(store, out, &names, options, |outcome| {
        outcomes.push(outcome)
    })?;
    Ok(outcomes)
}

/// The names an export of everything writes: every part but chunks, which are written as
/// part of their files.
///
/// # Errors
/// When the store cannot be listed.
pub fn exportable_names(store: &dyn PartStore) -> Result<Vec<PartName>, StoreError> {
    Ok(store
        .list()?
        .into_iter()
        .map(|info| info.name)
        .filter(|name| !name.is_chunk())
        .collect())
}

/// [`export`] of `names`, handing each outcome to `on_each` (to report progress) in the order
/// of `names`, with one sync of `out` at the end.
///
/// # Errors
/// Only when `out` cannot be created or synced.
pub fn export_each(
    store: &dyn PartStore,
    out: &Path,
    names: &[PartName],
    options: &ExportOptions,
    mut on_each: impl FnMut(ExportOutcome),
) -> Result<(), StoreError> {
    durable::ensure_dir(out)?;
    let mut any_written = false;
    in_order_on_threads(
        names,
        |name| export_one(store, out, name, options),
        |name, written| {
            any_written |= written.is_ok();
            on_each((name.clone(), written));
        },
    );
    if any_written {
        durable::sync_dir(out)?;
    }
    Ok(())
}

fn export_one(
    store: &dyn PartStore,
    out: &Path,
    name: &PartName,
    options: &ExportOptions,
) -> Result<PathBuf, StoreError> {
    let (dest, existing) = destination(out, name, options)?;
    let is_manifest = store
        .lookup(name)?
        .is_some_and(|info| info.kind == PartKind::Manifest);
    if is_manifest {
        let manifest = assemble::manifest_of(store, name)?;
        write_assembled(store, out, &dest, existing, name, &manifest)?;
    } else {
        let bytes = store.get(name)?;
        durable::write_file(out, &dest, &bytes, existing)?;
    }
    Ok(dest)
}

/// Exports parts just stored, from the bytes in hand: a plain part is written as it is (it
/// was verified against its hash on the way in, and these are the bytes the store made
/// durable, so reading them back would only repeat that check); a manifest is assembled from
/// its chunks, each verified as the store reads it, and the whole against the file hash.
/// Chunks are skipped: they are written as part of their files. Every file is synced, and
/// `out` once at the end, before this returns.
///
/// # Errors
/// Only when `out` cannot be created or synced; each part's own failure is in its outcome.
pub fn export_stored(
    store: &dyn PartStore,
    out: &Path,
    parts: &[&VerifiedPart],
    options: &ExportOptions,
) -> Result<Vec<ExportOutcome>, StoreError> {
    durable::ensure_dir(out)?;
    let files: Vec<&VerifiedPart> = parts
        .iter()
        .copied()
        .filter(|part| !part.name().is_chunk())
        .collect();
    let mut outcomes: Vec<ExportOutcome> = Vec::with_capacity(files.len());
    in_order_on_threads(
        &files,
        |part| export_part(store, out, part, options),
        |part, written| outcomes.push((part.name().clone(), written)),
    );
    if outcomes.iter().any(|(_, written)| written.is_ok()) {
        durable::sync_dir(out)?;
    }
    Ok(outcomes)
}

fn export_part(
    store: &dyn PartStore,
    out: &Path,
    part: &VerifiedPart,
    options: &ExportOptions,
) -> Result<PathBuf, StoreError> {
    let (dest, existing) = destination(out, part.name(), options)?;
    if part.kind() == PartKind::Manifest {
        let manifest =
            Manifest::decode(part.bytes()).map_err(|reason| StoreError::BadManifest {
                name: part.name().clone(),
                reason,
            })?;
        write_assembled(store, out, &dest, existing, part.name(), &manifest)?;
    } else {
        durable::write_file(out, &dest, part.bytes(), existing)?;
    }
    Ok(dest)
}

/// Runs `work` on every item, [`WRITTEN_AT_ONCE`] at a time, and hands each result to
/// `deliver` on this thread, in the order of `items`.
fn in_order_on_threads<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    mut deliver: impl FnMut(&T, R),
) {
    let next = AtomicUsize::new(0);
    let (finished, results) = mpsc::channel();
    std::thread::scope(|scope| {
        let mut started = 0;
        for _ in 0..WRITTEN_AT_ONCE.min(items.len()) {
            let (next, work, finished) = (&next, &work, finished.clone());
            let worker = move || {
                let _stop = StopOthersOnPanic {
                    next,
                    end: items.len(),
                };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { return };
                    if finished.send((index, work(item))).is_err() {
                        return;
                    }
                }
            };
            match std::thread::Builder::new().spawn_scoped(scope, worker) {
                Ok(_) => started += 1,
                Err(err) => {
                    tracing::warn!(%err, "cannot start a thread to export with");
                    break;
                }
            }
        }
        drop(finished);
        if started == 0 {
            for item in items {
                deliver(item, work(item));
            }
            return;
        }
        let mut early = BTreeMap::new();
        let mut due = 0;
        for (index, result) in results {
            early.insert(index, result);
            while let Some(result) = early.remove(&due) {
                deliver(&items[due], result);
                due += 1;
            }
        }
    });
}

/// Ends the other workers' turns once one panics (sled can, on an I/O error): the panic ends
/// the export, so the items left are not worked on unseen.
struct StopOthersOnPanic<'a> {
    next: &'a AtomicUsize,
    end: usize,
}

impl Drop for StopOthersOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.next.store(self.end, Ordering::Relaxed);
        }
    }
}

/// Where `name` is exported, and whether a file already there may be replaced.
fn destination(
    out: &Path,
    name: &PartName,
    options: &ExportOptions,
) -> Result<(PathBuf, Existing), StoreError> {
    let dest = out.join(options.file_name(name));
    let existing = match options.overwrite {
        Overwrite::Never if dest.symlink_metadata().is_ok() => {
            return Err(StoreError::ExportExists { path: dest });
        }
        Overwrite::Never => Existing::Keep,
        Overwrite::Always => Existing::Replace,
    };
    Ok((dest, existing))
}

/// Writes the file `manifest` describes to `dest`, chunk by chunk, each verified.
fn write_assembled(
    store: &dyn PartStore,
    out: &Path,
    dest: &Path,
    existing: Existing,
    name: &PartName,
    manifest: &Manifest,
) -> Result<(), StoreError> {
    durable::write_file_with(out, dest, existing, |file| {
        assemble::read_chunks(store, name, manifest, |bytes| {
            file.write_all(bytes)
                .context(|| format!("writing {}", dest.display()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first item finishes only after the items taken at the same time have, and is still
    /// delivered first.
    #[test]
    fn results_are_delivered_in_the_order_of_the_items() {
        let items: Vec<usize> = (0..WRITTEN_AT_ONCE * 3).collect();
        let others_done = AtomicUsize::new(0);
        let mut delivered = Vec::new();
        in_order_on_threads(
            &items,
            |&item| {
                if item == 0 {
                    let others_at_once = WRITTEN_AT_ONCE - 1;
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while others_done.load(Ordering::SeqCst) < others_at_once {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "the other items were never worked on beside the first"
                        );
                        std::thread::yield_now();
                    }
                } else {
                    others_done.fetch_add(1, Ordering::SeqCst);
                }
                item * 10
            },
            |&item, result| delivered.push((item, result)),
        );
        let expected: Vec<(usize, usize)> = items.iter().map(|&item| (item, item * 10)).collect();
        assert_eq!(delivered, expected);
    }
}
