//! `serve --export-dir`: writes each file the server reports stored as `DIR/<name>_recebida`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use net::ServerEvent;
use storage::{ExportOptions, PartName, PartStore};
use tracing::{debug, error, warn};

/// Exports what the server stores from a thread of its own, so the server's writer never
/// waits on DIR's disk. Chunks are skipped: a file is exported whole once its manifest is
/// stored. The thread ends when the server's events channel closes, that is once
/// `Server::run` has returned.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn(
    events: Receiver<ServerEvent>,
    store: Arc<dyn PartStore>,
    dir: PathBuf,
    options: ExportOptions,
) -> anyhow::Result<Exporter> {
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
        })
        .context("cannot start the exporter thread")?;
    Ok(Exporter(thread))
}

/// The exporting thread.
pub struct Exporter(JoinHandle<()>);

impl Exporter {
    /// Waits for the exports under way, at most `grace`: a stopping server does not wait on
    /// a large file being written out, which was only a copy of what the store holds.
    ///
    /// # Errors
    /// When the thread panicked.
    pub fn finish(self, grace: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + grace;
        while !self.0.is_finished() {
            if Instant::now() >= deadline {
                warn!("stopping with exports still being written");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0
            .join()
            .map_err(|_| anyhow::anyhow!("the exporter panicked"))
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
