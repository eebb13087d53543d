//! Opening the store named on the command line, saying what to do about the usual failures.

use std::path::Path;

use storage::{BackendKind, PartStore, StoreError, open_existing_store, open_store};

/// The store at `db`, created if missing: for commands that add to it.
pub fn store(db: &Path, backend: Option<BackendKind>) -> anyhow::Result<Box<dyn PartStore>> {
    open_store(db, backend).map_err(|err| advise(db, err))
}

/// The store at `db`, which must exist: for commands that only read or remove.
pub fn existing(db: &Path, backend: Option<BackendKind>) -> anyhow::Result<Box<dyn PartStore>> {
    open_existing_store(db, backend).map_err(|err| advise(db, err))
}

/// The error, with what to do about it.
fn advise(db: &Path, err: StoreError) -> anyhow::Error {
    let recover = format!(
        "; run `p2p-store --db {} recover` to rebuild it",
        db.display()
    );
    let advice = match &err {
        StoreError::IndexDamaged { .. }
        | StoreError::PackDamaged { .. }
        | StoreError::UnsupportedFormat { .. } => recover.as_str(),
        StoreError::Locked { .. } => {
            "; stop that process, or use `--from ADDR` to talk to it if it is serving"
        }
        StoreError::BackendMismatch { .. } => "; drop `--backend`, or pick another --db",
        StoreError::NotAStore { .. } => "; pick another --db",
        StoreError::NoStore { .. } => "; check --db (`import`, `fetch` and `serve` create one)",
        _ => "",
    };
    anyhow::anyhow!("{err}{advice}").context(format!("cannot open the store at {}", db.display()))
}
