//! Writing a response: the status line and headers every response carries, then the body.
//! Every response says `Connection: close`: one request per connection keeps a worker's
//! time with a client bounded.

use std::io::{self, Write};

/// A status code and its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status(pub(crate) u16, pub(crate) &'static str);

pub(crate) const OK: Status = Status(200, "OK");
pub(crate) const PARTIAL: Status = Status(206, "Partial Content");
pub(crate) const BAD_REQUEST: Status = Status(400, "Bad Request");
pub(crate) const NOT_FOUND: Status = Status(404, "Not Found");
pub(crate) const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
pub(crate) const REQUEST_TIMEOUT: Status = Status(408, "Request Timeout");
pub(crate) const RANGE_NOT_SATISFIABLE: Status = Status(416, "Range Not Satisfiable");
pub(crate) const HEADERS_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
pub(crate) const INTERNAL_ERROR: Status = Status(500, "Internal Server Error");

/// Writes the status line and headers for a body of `length` bytes of `content_type`.
/// `extra` are further `(name, value)` headers; values come from the view, never a client.
///
/// # Errors
/// The socket's.
pub(crate) fn head(
    out: &mut impl Write,
    status: Status,
    content_type: &str,
    length: u64,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let Status(code, reason) = status;
    let mut text = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\
         Connection: close\r\nX-Content-Type-Options: nosniff\r\n"
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    out.write_all(text.as_bytes())
}

/// A whole response with a body held in memory; with `head_only`, the head alone (`HEAD`).
///
/// # Errors
/// The socket's.
pub(crate) fn send(
    out: &mut impl Write,
    status: Status,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let extra = [("Cache-Control", "no-store")];
    head(out, status, content_type, body.len() as u64, &extra)?;
    if !head_only {
        out.write_all(body)?;
    }
    out.flush()
}

/// A short plain-text answer, for errors.
///
/// # Errors
/// The socket's.
pub(crate) fn text(out: &mut impl Write, status: Status, message: &str) -> io::Result<()> {
    let body = format!("{message}\n");
    send(
        out,
        status,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        false,
    )
}
