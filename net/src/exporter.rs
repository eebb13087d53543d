//! A consumer of a server's events that writes each file it stores out as `<dir>/<name><suffix>`:
//! what `serve --export-dir` runs. The server itself does no exports; the caller attaches this
//! to [`Server::events`](crate::Server::events) when it wants them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use storage::{ExportOptions, PartName, PartStore};
use tracing::{debug, error, warn};

use crate::ServerEvent;

/// The exporting thread: exports what the server stores from a thread of its own, so the
/// server's writer never waits on the destination's disk. Chunks are skipped: a file is
/// exported whole once its manifest is stored. The thread ends when the events channel
/// closes, that is once [`Server::run`](crate::Server::run) has returned.
pub struct Exporter(JoinHandle<()>);

/// The exporting thread panicked (a bug, or a store backend that panics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the exporter panicked")]
pub struct ExporterPanicked;

impl Exporter {
    /// Starts exporting each file reported on `events` from `store` into `dir`. Failures are
    /// logged, one file's failure not stopping the others.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn(
        events: Receiver<ServerEvent>,
        store: Arc<dyn PartStore>,
        dir: PathBuf,
        options: ExportOptions,
    ) -> std::io::Result<Self> {
        let thread = std::thread::Builder::new()
            .name("exporter".into())
            .spawn(move || {
                while let Ok(first) = events.recv() {
                    let names: Vec<PartName> = std::iter::once(first)
                        .chain(events.try_iter())
                        .filter_map(|event| match event {
                            ServerEvent::Stored { name, .. } if !name.is_chunk() => Some(name),
                            _ => None,
                        })
                        .collect();
                    export_stored(store.as_ref(), &dir, &names, &options);
                }
            })?;
        Ok(Self(thread))
    }

    /// Waits for the exports under way, at most `grace`: a stopping server does not wait on
    /// a large file being written out, which was only a copy of what the store holds.
    ///
    /// # Errors
    /// When the thread panicked.
    pub fn finish(self, grace: Duration) -> Result<(), ExporterPanicked> {
        let deadline = Instant::now() + grace;
        while !self.0.is_finished() {
            if Instant::now() >= deadline {
                warn!("stopping with exports still being written");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0.join().map_err(|_| ExporterPanicked)
    }
}

fn export_stored(store: &dyn PartStore, dir: &Path, names: &[PartName], options: &ExportOptions) {
    if names.is_empty() {
        return;
    }
    let exported = storage::export_each(
        store,
        dir,
        names,
        options,
        |(name, written)| match written {
            Ok(path) => debug!(%name, path = %path.display(), "exported"),
            Err(err) => warn!(%name, %err, "cannot export a stored part"),
        },
    );
    if let Err(err) = exported {
        error!(%err, dir = %dir.display(), "cannot export stored parts");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use storage::{MemStore, OnConflict, PartKind, VerifiedPart};

    use super::*;

    fn stored(part: &VerifiedPart) -> ServerEvent {
        ServerEvent::Stored {
            name: part.name().clone(),
            kind: PartKind::Plain,
            size: part.size(),
            peer: None,
        }
    }

    #[test]
    fn exports_each_stored_file_but_no_chunk_and_ends_with_the_channel() {
        let store = MemStore::new();
        let name = PartName::new("a.txt").unwrap();
        let file = VerifiedPart::hashing(name, b"hello".to_vec()).unwrap();
        let chunk = VerifiedPart::chunk(b"chunk".to_vec()).unwrap();
        for part in [&file, &chunk] {
            store.put(part, OnConflict::Refuse).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let (events, receiver) = mpsc::channel();
        let options = ExportOptions::new(".out").unwrap();
        let exporter =
            Exporter::spawn(receiver, Arc::new(store), dir.path().to_owned(), options).unwrap();
        events.send(stored(&chunk)).unwrap();
        events.send(stored(&file)).unwrap();
        drop(events);
        exporter.finish(Duration::from_secs(10)).unwrap();
        let written: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(written, ["a.txt.out"]);
        assert_eq!(
            std::fs::read(dir.path().join("a.txt.out")).unwrap(),
            b"hello"
        );
    }
}
