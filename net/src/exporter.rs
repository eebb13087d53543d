//! What `serve --export-dir` gives the server to do before each acknowledgement: write each
//! file it stores out as `<dir>/<name><suffix>`, synced, so the file exists when the sender is
//! told `Stored`. Runs on the server's acknowledging thread, never on its event loop.

use std::path::PathBuf;
use std::sync::Arc;

use storage::{ExportOptions, PartStore, VerifiedPart};
use tracing::{debug, warn};

use crate::server::{BeforeAck, NotDone};

/// Exports what the server stores, before it is acknowledged (attach it with
/// [`Server::run_before_ack`](crate::Server::run_before_ack)). Chunks are skipped: a file is
/// exported whole, assembled from the store, when its manifest is stored. A plain part is
/// written from the bytes just verified and committed, without reading them back.
pub struct Exporter {
    store: Arc<dyn PartStore>,
    dir: PathBuf,
    options: ExportOptions,
}

impl Exporter {
    /// Exports files stored in `store` into `dir` (created when missing), as `options` say.
    pub fn new(store: Arc<dyn PartStore>, dir: PathBuf, options: ExportOptions) -> Self {
        Self {
            store,
            dir,
            options,
        }
    }
}

impl BeforeAck for Exporter {
    fn stored(&self, parts: &[&VerifiedPart]) -> Vec<NotDone> {
        let store = self.store.as_ref();
        match storage::export_stored(store, &self.dir, parts, &self.options) {
            Ok(outcomes) => outcomes
                .into_iter()
                .filter_map(|(name, written)| match written {
                    Ok(path) => {
                        debug!(%name, path = %path.display(), "exported");
                        None
                    }
                    Err(err) => {
                        warn!(%name, %err, "a stored part cannot be exported");
                        let reason = format!("cannot be exported: {err}");
                        Some(NotDone { name, reason })
                    }
                })
                .collect(),
            Err(err) => {
                warn!(%err, dir = %self.dir.display(), "cannot export stored parts");
                let files = parts.iter().filter(|part| !part.name().is_chunk());
                files
                    .map(|part| NotDone {
                        name: part.name().clone(),
                        reason: format!("cannot be exported: {err}"),
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use storage::{MemStore, OnConflict, PartName};

    use super::*;

    #[test]
    fn exports_each_stored_file_but_no_chunk_and_reports_what_it_cannot_write() {
        let store = MemStore::new();
        let name = PartName::new("a.txt").unwrap();
        let file = VerifiedPart::hashing(name.clone(), b"hello".to_vec()).unwrap();
        let chunk = VerifiedPart::chunk(b"chunk".to_vec()).unwrap();
        for part in [&file, &chunk] {
            store.put(part, OnConflict::Refuse).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let options = ExportOptions::new(".out").unwrap();
        let exporter = Exporter::new(Arc::new(store), dir.path().to_owned(), options);
        assert_eq!(exporter.stored(&[&chunk, &file]), []);
        let written: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(written, ["a.txt.out"]);
        assert_eq!(
            std::fs::read(dir.path().join("a.txt.out")).unwrap(),
            b"hello"
        );
        let again = exporter.stored(&[&file]);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].name, name);
        assert!(again[0].reason.contains("a.txt.out"), "{}", again[0].reason);
    }
}
