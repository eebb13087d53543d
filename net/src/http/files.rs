//! `GET /files/NAME`: a stored file, assembled chunk by chunk (a plain part whole), with
//! `Range` and an `ETag` (the file's blake3, as `b3sum` prints it) so that `curl -r`,
//! `wget -c` and browsers can resume.
//!
//! Nothing unverified is sent: each chunk is checked (by the store and against the manifest)
//! before any of its bytes go out. The first one is read before the status line, so a file
//! damaged at its start gets a `500`; one damaged further on is cut short where the damage
//! is, which a client sees as a download shorter than its `Content-Length`, and logged.

use std::io::{self, Write};
use std::ops::Range;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use storage::{Manifest, PartHash, PartKind, PartName, PartStore, StoreError};
use tracing::error;

use super::View;
use super::range::{self, Wanted};
use super::request::Request;
use super::response::{
    self, BAD_REQUEST, INTERNAL_ERROR, NOT_FOUND, OK, PARTIAL, RANGE_NOT_SATISFIABLE,
};

/// What is stored under a name.
enum Stored {
    /// A plain part: served from its bytes, read whole.
    Part { size: u64, hash: PartHash },
    /// A file: served from its chunks.
    File(Manifest),
}

impl Stored {
    fn size(&self) -> u64 {
        match self {
            Self::Part { size, .. } => *size,
            Self::File(manifest) => manifest.file_size(),
        }
    }

    fn hash(&self) -> PartHash {
        match self {
            Self::Part { hash, .. } => *hash,
            Self::File(manifest) => manifest.file_hash(),
        }
    }
}

/// Answers a request for the file `encoded_name` (as it appears in the path).
///
/// # Errors
/// The socket's, and a file found damaged after its first chunk went out.
pub(crate) fn send(
    view: &View,
    encoded_name: &str,
    request: &Request,
    out: &mut impl Write,
) -> io::Result<()> {
    let name = percent_decode_str(encoded_name)
        .decode_utf8()
        .ok()
        .and_then(|name| PartName::new(name).ok());
    let Some(name) = name else {
        return response::text(out, BAD_REQUEST, "not a valid name");
    };
    let store = view.store.as_ref();
    let stored = match look_up(store, &name) {
        Ok(Some(stored)) => stored,
        Ok(None) => return response::text(out, NOT_FOUND, "no such file"),
        Err(err) => return fail(out, &name, &err),
    };
    let size = stored.size();
    let etag = format!("\"{}\"", stored.hash());
    // A client resuming a download of other bytes (an old ETag) gets the whole new file.
    let range_header = match &request.if_range {
        Some(tag) if *tag != etag => None,
        _ => request.range.as_deref(),
    };
    let (status, range) = match range::wanted(range_header, size) {
        Wanted::Whole => (OK, 0..size),
        Wanted::Part(range) => (PARTIAL, range),
        Wanted::Unsatisfiable => {
            let content_range = format!("bytes */{size}");
            let extra = [("Content-Range", content_range.as_str())];
            response::head(out, RANGE_NOT_SATISFIABLE, "text/plain", 0, &extra)?;
            return out.flush();
        }
    };
    let mut chunks = body(store, &name, &stored, range.clone(), request.head_only());
    let first = match chunks.next().transpose() {
        Ok(first) => first,
        Err(err) => return fail(out, &name, &err),
    };
    let content_range = format!(
        "bytes {}-{}/{size}",
        range.start,
        range.end.saturating_sub(1)
    );
    let disposition = format!(
        "inline; filename*=UTF-8''{}",
        utf8_percent_encode(name.as_str(), NON_ALPHANUMERIC)
    );
    let mut extra = vec![
        ("Accept-Ranges", "bytes"),
        ("ETag", etag.as_str()),
        ("Content-Disposition", disposition.as_str()),
    ];
    if status == PARTIAL {
        extra.push(("Content-Range", content_range.as_str()));
    }
    let content_type = "application/octet-stream";
    response::head(out, status, content_type, range.end - range.start, &extra)?;
    for chunk in first.into_iter().map(Ok).chain(chunks) {
        match chunk {
            Ok(bytes) => out.write_all(&bytes)?,
            Err(err) => {
                error!(%err, file = %name, "a damaged file was cut short in the web view");
                return Err(io::Error::other(err));
            }
        }
    }
    out.flush()
}

/// The file or part stored under `name`, if any.
fn look_up(store: &dyn PartStore, name: &PartName) -> Result<Option<Stored>, StoreError> {
    let Some(info) = store.lookup(name)? else {
        return Ok(None);
    };
    if info.kind != PartKind::Manifest {
        return Ok(Some(Stored::Part {
            size: info.size,
            hash: info.hash,
        }));
    }
    let bytes = store.get(name)?;
    let manifest = Manifest::decode(&bytes).map_err(|reason| StoreError::BadManifest {
        name: name.clone(),
        reason,
    })?;
    Ok(Some(Stored::File(manifest)))
}

/// The verified bytes of `range`, in pieces; none for `HEAD` or an empty range.
fn body<'a>(
    store: &'a dyn PartStore,
    name: &'a PartName,
    stored: &'a Stored,
    range: Range<u64>,
    head_only: bool,
) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a> {
    if head_only || range.is_empty() {
        return Box::new(std::iter::empty());
    }
    match stored {
        Stored::Part { hash, .. } => Box::new(std::iter::once_with(move || {
            let bytes = store.get(name)?;
            // Both ends lie within the part, whose bytes are in memory. A verified read has
            // the size the index gave, unless the index is damaged.
            bytes
                .get(range.start as usize..range.end as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| StoreError::Corrupt {
                    name: name.clone(),
                    expected: *hash,
                    actual: PartHash::of(&bytes),
                })
        })),
        Stored::File(manifest) => Box::new(storage::read_range(store, name, manifest, range)),
    }
}

/// Answers for a file the store cannot serve, and logs it: the store's fault, not the
/// client's.
fn fail(out: &mut impl Write, name: &PartName, err: &StoreError) -> io::Result<()> {
    error!(%err, file = %name, "the web view cannot serve a file");
    response::text(
        out,
        INTERNAL_ERROR,
        "the file cannot be read back intact from this store",
    )
}
