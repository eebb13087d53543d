//! The JSON API: `/api/files` (what the store holds, as `list --json` describes it, a page
//! of [`MAX_LISTED`] at a time: `?after=NAME` gives the next) and `/api/stats` (the
//! server's counters and recent throughput). The page draws itself from
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
    /// More files follow these: ask again with `?after=` the `next` name.
    truncated: bool,
    /// The name to give as `after` for the following page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    counters: CountersSnapshot,
    throughput: Throughput,
}

pub(crate) fn files(
    view: &View,
    after: Option<String>,
    out: &mut impl Write,
    head_only: bool,
) -> io::Result<()> {
    match list(view.store.as_ref(), after) {
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

/// The first [`MAX_LISTED`] files and plain parts of `store` named after `after` (chunks are
/// not files), read a page at a time so a large store costs a page of names and manifests
/// beyond the answer.
fn list(store: &dyn PartStore, mut after: Option<String>) -> Result<Files, StoreError> {
    let mut files = Vec::new();
    while files.len() <= MAX_LISTED {
        let page = store.list_page(after.as_deref(), PAGE)?;
        let Some(last) = page.last() else {
            return Ok(Files {
                files,
                truncated: false,
                next: None,
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
    let next = files.last().map(|file| file.name.as_str().to_owned());
    Ok(Files {
        files,
        truncated: true,
        next,
    })
}

fn json(out: &mut impl Write, value: &impl Serialize, head_only: bool) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    response::send(out, OK, "application/json", &body, head_only)
}

#[cfg(test)]
mod tests {
    use storage::{MemStore, OnConflict, PartName, VerifiedPart};

    use super::*;

    #[test]
    fn files_come_a_page_at_a_time_and_the_next_page_starts_after_the_last_name() {
        let store = MemStore::default();
        let parts: Vec<VerifiedPart> = (0..MAX_LISTED + 205)
            .map(|i| {
                let name = PartName::new(format!("part-{i:05}")).unwrap();
                VerifiedPart::hashing(name, vec![1]).unwrap()
            })
            .collect();
        store.put_batch(&parts, OnConflict::Refuse).unwrap();
        let first = list(&store, None).unwrap();
        assert_eq!(first.files.len(), MAX_LISTED);
        assert!(first.truncated);
        let next = first.next.clone().unwrap();
        assert_eq!(next, format!("part-{:05}", MAX_LISTED - 1));
        let second = list(&store, Some(next)).unwrap();
        assert_eq!(second.files.len(), 205);
        assert_eq!(
            second.files[0].name.as_str(),
            format!("part-{MAX_LISTED:05}")
        );
        assert!(!second.truncated);
        assert_eq!(second.next, None);
    }
}
