//! Watching a directory: files that appear or change in it are imported into a store once
//! they settle (see [`settle`]), a changed file replacing what its name held. Only the
//! directory's own regular files are taken (symbolic links are not followed), not those of its
//! subdirectories, and names that
//! start with `.` are left alone: editors, `rsync` and downloads write their unfinished files
//! under such names and rename them when done. A file removed from the directory stays in the
//! store.
//!
//! The operating system's notifications come through `notify` (inotify on Linux); when it
//! says events were lost, the whole directory is looked at again.

mod settle;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use settle::{Look, Settling};

use crate::{
    FileOutcome, FileSource, ImportOptions, OnConflict, PartStore, PutOutcome, StoreError,
};

/// How a directory is watched.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct WatchOptions {
    /// How long a file must be left alone, its size and time unchanged, before it is taken.
    pub settle: Duration,
    /// How files are imported; a changed file always replaces what its name held.
    pub import: ImportOptions,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(1),
            import: ImportOptions::default(),
        }
    }
}

impl WatchOptions {
    pub fn settle(self, settle: Duration) -> Self {
        Self { settle, ..self }
    }

    pub fn import(self, import: ImportOptions) -> Self {
        Self { import, ..self }
    }
}

/// What the watcher did, as it happens.
#[derive(Debug)]
pub enum Watched {
    /// A file was imported, or refused with why.
    File(FileOutcome),
    /// The store could not take a batch (its files are tried again after [`RETRY_AFTER`]), or
    /// the directory could not be read.
    Failed(StoreError),
}

/// How long files wait to be tried again after the store failed to take them.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why a directory cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot read the directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {dir}: {source}")]
    Notify {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error(
        "{dir} is inside a store (its keys and records would be served): watch another directory"
    )]
    InsideStore { dir: PathBuf },
    #[error("cannot start the watch thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A directory being watched, until [`Watching::stop_within`], or drop (which waits for the
/// import under way, however long).
pub struct Watching {
    stop: Sender<Signal>,
    thread: Option<JoinHandle<()>>,
    _watcher: RecommendedWatcher,
}

/// What reaches the watching thread.
enum Signal {
    Changed(Vec<PathBuf>),
    Rescan,
    Stop,
}

/// Starts watching `dir` from a thread of its own: its files are imported into `store` once
/// they settle, those already there included. Each outcome is logged (`tracing`, target
/// `storage::watch`) and handed to `on_event`.
///
/// # Errors
/// When `dir` cannot be read or watched, or is a store's directory or inside one.
pub fn watch(
    dir: &Path,
    store: Arc<dyn PartStore>,
    options: WatchOptions,
    on_event: impl FnMut(Watched) + Send + 'static,
) -> Result<Watching, WatchError> {
    let dir = dir.canonicalize().map_err(|source| WatchError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    if dir.ancestors().any(crate::is_store) {
        return Err(WatchError::InsideStore { dir });
    }
    let (signals, received) = mpsc::channel();
    let notified = signals.clone();
    let watched = dir.clone();
    let notify_error = |source| WatchError::Notify {
        dir: dir.clone(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let signal = match event {
            Ok(event) if event.need_rescan() => Signal::Rescan,
            Ok(event) if is_removal_of(&event, &watched) => {
                // The watch ends with the directory: one made again under its name is another.
                tracing::warn!(
                    dir = %watched.display(),
                    "watch: the watched directory was removed; files put in a new one of that \
                     name are not seen until serve is started again"
                );
                return;
            }
            Ok(event) if touches_contents(event.kind) => Signal::Changed(event.paths),
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(%err, "the directory watch reported an error; looking again");
                Signal::Rescan
            }
        };
        let _ = notified.send(signal);
    })
    .map_err(notify_error)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(notify_error)?;
    signals
        .send(Signal::Rescan)
        .expect("the receiver is held here");
    let options = WatchOptions {
        import: options.import.on_conflict(OnConflict::Replace),
        ..options
    };
    let thread = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || run(&dir, store.as_ref(), options, &received, on_event))
        .map_err(WatchError::Thread)?;
    Ok(Watching {
        stop: signals,
        thread: Some(thread),
        _watcher: watcher,
    })
}

impl Watching {
    /// Stops watching, waiting at most `within` for the import under way (if any): a huge
    /// file can take minutes to read. Past that, the import is left to the process's end;
    /// what it committed is durable, and a file it did not finish has no manifest (its
    /// chunks are garbage for `gc`). Returns whether the watch had stopped in time.
    pub fn stop_within(mut self, within: Duration) -> bool {
        let _ = self.stop.send(Signal::Stop);
        let deadline = Instant::now() + within;
        let Some(thread) = self.thread.take() else {
            return true;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
            return true;
        }
        tracing::warn!("watch: an import is still under way; leaving it");
        false
    }

    fn join(&mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.join();
    }
}

/// Whether `event` says the watched directory itself was removed.
fn is_removal_of(event: &notify::Event, dir: &Path) -> bool {
    matches!(event.kind, EventKind::Remove(_)) && event.paths.iter().any(|path| path == dir)
}

/// Whether an event can mean a file's bytes or name changed (a read or an open cannot).
fn touches_contents(kind: EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// The watching thread: gathers changed files, and imports each batch that settles.
fn run(
    dir: &Path,
    store: &dyn PartStore,
    options: WatchOptions,
    signals: &Receiver<Signal>,
    mut on_event: impl FnMut(Watched),
) {
    let mut settling = Settling::new(options.settle);
    loop {
        let wait = settling
            .next_due()
            .map_or(Duration::from_secs(3600), |due| {
                due.saturating_duration_since(Instant::now())
            });
        let now = Instant::now();
        match signals.recv_timeout(wait) {
            Ok(Signal::Changed(paths)) => {
                for path in paths.into_iter().filter(|path| is_taken(dir, path)) {
                    let look = Look::of(&path);
                    settling.touched(path, now, look);
                }
            }
            Ok(Signal::Rescan) => {
                for path in files_in(dir, &mut on_event) {
                    let look = Look::of(&path);
                    settling.touched(path, now, look);
                }
            }
            Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let settled = settling.settled(Instant::now(), Look::of);
        if settled.is_empty() {
            continue;
        }
        let sources: Vec<FileSource> = (settled.iter())
            .map(|path| FileSource::new(path).not_following_links())
            .collect();
        let imported = crate::import_files(store, &sources, options.import, |outcome| {
            report(Watched::File(outcome), &mut on_event);
        });
        if let Err(err) = imported {
            report(Watched::Failed(err), &mut on_event);
            let retry = Instant::now() + RETRY_AFTER;
            for path in settled {
                let look = Look::of(&path);
                settling.touched(path, retry, look);
            }
        }
    }
}

/// Whether a changed path is one of the directory's own files the watch takes.
fn is_taken(dir: &Path, path: &Path) -> bool {
    let hidden = (path.file_name()).is_none_or(|name| name.as_encoded_bytes().starts_with(b"."));
    path.parent() == Some(dir) && !hidden
}

/// The directory's files as they are now; an unreadable directory is reported as a failure
/// of the watch and yields none.
fn files_in(dir: &Path, on_event: &mut impl FnMut(Watched)) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| is_taken(dir, path) && Look::of(path).is_some())
            .collect(),
        Err(source) => {
            let err = StoreError::Io {
                context: format!("cannot read the watched directory {}", dir.display()),
                source,
            };
            report(Watched::Failed(err), on_event);
            Vec::new()
        }
    }
}

/// Logs what the watcher did, then hands it on.
fn report(event: Watched, on_event: &mut impl FnMut(Watched)) {
    match &event {
        Watched::File((name, Ok(PutOutcome::AlreadyHad))) => {
            tracing::debug!(name, "watch: already had")
        }
        Watched::File((name, Ok(outcome))) => tracing::info!(name, ?outcome, "watch: stored"),
        Watched::File((name, Err(err))) => tracing::warn!(name, %err, "watch: refused"),
        Watched::Failed(err) => tracing::warn!(%err, "watch: the store failed"),
    }
    on_event(event);
}
