//! The JSON API: `/api/files` (what the store holds, as `list --json` describes it) and
//! `/api/stats` (the server's counters and recent throughput). The page draws itself from
//! these two, so a script sees exactly what a person sees.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;
use storage::{FileEntry, PartKind, PartStore, StoreError};
use tracing::error;

use super::View;
use super::history::Throughput;
use super::response::{self, INTERNAL_ERROR, OK};
use crate::CountersSnapshot;

/// Most files one listing gives; a store with more says `truncated`.
pub(crate) const MAX_LISTED: usize = 1000;

/// Names asked of the store at a time while listing.
const PAGE: usize = 256;

#[derive(Serialize)]
struct Files {
    files: Vec<FileEntry>,
    /// The store holds more files than [`MAX_LISTED`]; the first are given.
    truncated: bool,
}

#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    counters: CountersSnapshot,
    throughput: Throughput,
}

pub(crate) fn files(view: &View, out: &mut impl Write, head_only: bool) -> io::Result<()> {
    match list(view.store.as_ref()) {
        Ok(files) => json(out, &files, head_only),
        Err(err) => {
            error!(%err, "the web view cannot list the store");
            response::text(out, INTERNAL_ERROR, "the store cannot be listed")
        }
    }
}

pub(crate) fn stats(view: &View, out: &mut impl Write, head_only: bool) -> io::Result<()> {
    let stats = Stats {
        counters: view.counters.snapshot(),
        throughput: view.history.snapshot(),
    };
    json(out, &stats, head_only)
}

/// The first [`MAX_LISTED`] files and plain parts of `store` (chunks are not files), read a
/// page at a time so a large store costs a page of names and manifests beyond the answer.
fn list(store: &dyn PartStore) -> Result<Files, StoreError> {
    let mut files = Vec::new();
    let mut after: Option<String> = None;
    while files.len() <= MAX_LISTED {
        let page = store.list_page(after.as_deref(), PAGE)?;
        let Some(last) = page.last() else {
            return Ok(Files {
                files,
                truncated: false,
            });
        };
        after = Some(last.name.as_str().to_owned());
        let manifests: HashMap<_, _> = page
            .iter()
            .filter(|info| info.kind == PartKind::Manifest)
            .filter_map(|info| Some((info.name.clone(), store.get(&info.name).ok()?)))
            .collect();
        files.extend(storage::describe(page, false, &manifests));
    }
    files.truncate(MAX_LISTED);
    Ok(Files {
        files,
        truncated: true,
    })
}

fn json(out: &mut impl Write, value: &impl Serialize, head_only: bool) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    response::send(out, OK, "application/json", &body, head_only)
}
