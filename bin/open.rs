//! Opening the store named on the command line, with context for the error message.

use std::path::Path;

use anyhow::Context;
use storage::{BackendKind, PartStore, open_store};

pub fn store(db: &Path, backend: Option<BackendKind>) -> anyhow::Result<Box<dyn PartStore>> {
    open_store(db, backend).with_context(|| format!("cannot open the store at {}", db.display()))
}
