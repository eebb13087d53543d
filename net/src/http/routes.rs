//! Which handler answers which path. The view is read-only: `GET` and `HEAD`, nothing else.

use std::io::{self, Write};

use super::request::Request;
use super::response::{self, BAD_REQUEST, METHOD_NOT_ALLOWED, NOT_FOUND};
use super::{View, api, files, metrics, page};

/// Answers `request` on `out`.
///
/// # Errors
/// The socket's; a damaged file cut short.
pub(crate) fn handle(request: &Request, view: &View, out: &mut impl Write) -> io::Result<()> {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return response::text(out, METHOD_NOT_ALLOWED, "read-only: GET and HEAD only");
    }
    let head_only = request.head_only();
    match request.path.as_str() {
        "/" => page::send(out, head_only),
        "/api/files" => match request.param("after") {
            Ok(after) => api::files(view, after, out, head_only),
            Err(_) => response::text(out, BAD_REQUEST, "after= is not UTF-8 text"),
        },
        "/api/stats" => api::stats(view, out, head_only),
        "/metrics" => metrics::send(view, out, head_only),
        path => match path.strip_prefix("/files/") {
            Some(name) => files::send(view, name, request, out),
            None => response::text(out, NOT_FOUND, "no such page"),
        },
    }
}
