//! Opening the store named on the command line, saying what to do about the usual failures.

use std::path::Path;

use storage::{BackendKind, PartStore, StoreError, open_store};

pub fn store(db: &Path, backend: Option<BackendKind>) -> anyhow::Result<Box<dyn PartStore>> {
    open_store(db, backend).map_err(|err| {
        let advice = match &err {
            StoreError::Locked { .. } => {
                "; stop that process, or use `--from ADDR` to talk to it if it is serving"
            }
            StoreError::BackendMismatch { .. } => "; drop `--backend`, or pick another --db",
            StoreError::NotAStore { .. } => "; pick another --db",
            _ => "",
        };
        anyhow::anyhow!("{err}{advice}")
            .context(format!("cannot open the store at {}", db.display()))
    })
}
