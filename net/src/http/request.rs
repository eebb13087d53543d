//! Reading one request head from a client, within a byte limit and a deadline; parsing is
//! `httparse`'s. Only what the view acts on is kept.

use std::io::{self, ErrorKind, Read};
use std::time::Instant;

use super::{MAX_HEAD, MAX_HEADERS};

/// The parts of a request the view acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path as sent (still percent-encoded), without the query.
    pub(crate) path: String,
    /// What follows the `?`, if anything (still percent-encoded).
    pub(crate) query: Option<String>,
    pub(crate) range: Option<String>,
    pub(crate) if_range: Option<String>,
}

impl Request {
    pub(crate) fn head_only(&self) -> bool {
        self.method == "HEAD"
    }

    /// The percent-decoded value of the query parameter `key`, if given.
    ///
    /// # Errors
    /// When the value does not decode to UTF-8 text.
    pub(crate) fn param(&self, key: &str) -> Result<Option<String>, std::str::Utf8Error> {
        let Some(query) = self.query.as_deref() else {
            return Ok(None);
        };
        let value = (query.split('&')).find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='));
        let Some(value) = value else {
            return Ok(None);
        };
        let value = value.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&value).decode_utf8()?;
        Ok(Some(decoded.into_owned()))
    }
}

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error(
        "the request head is longer than {MAX_HEAD} bytes or has more than {MAX_HEADERS} headers"
    )]
    TooLarge,
    #[error("the request is not HTTP/1.x: {0}")]
    Malformed(httparse::Error),
    #[error("the client closed the connection before a whole request head")]
    Closed,
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
}

/// Reads from `stream` until a whole head has arrived. What follows the head (a body nobody
/// asked for, a pipelined request) is left unread: one request per connection.
///
/// # Errors
/// [`HeadError`]; a client too slow for `deadline` gets `Io` with `TimedOut`/`WouldBlock`.
pub(crate) fn read_head(
    stream: &mut std::net::TcpStream,
    deadline: Instant,
) -> Result<Request, HeadError> {
    let mut buf = [0u8; MAX_HEAD];
    let mut filled = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::from(ErrorKind::TimedOut).into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(count) => filled += count,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err.into()),
        }
        if let Some(request) = parse(&buf[..filled])? {
            return Ok(request);
        }
        if filled == buf.len() {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The request in `bytes`, `Ok(None)` while its head is incomplete.
fn parse(bytes: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(err) => return Err(HeadError::Malformed(err)),
    }
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .and_then(|header| std::str::from_utf8(header.value).ok())
            .map(str::to_owned)
    };
    let target = parsed.path.unwrap_or("/");
    Ok(Some(Request {
        method: parsed.method.unwrap_or_default().to_owned(),
        path: target
            .split_once('?')
            .map_or(target, |(path, _)| path)
            .to_owned(),
        query: target.split_once('?').map(|(_, query)| query.to_owned()),
        range: header("range"),
        if_range: header("if-range"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_read_once_complete() {
        let head = b"GET /files/a%20b?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n";
        for cut in 0..head.len() {
            assert!(parse(&head[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let request = parse(head).unwrap().unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/files/a%20b");
        assert_eq!(request.param("x"), Ok(Some("1".to_owned())));
        assert_eq!(request.param("y"), Ok(None));
        let mut odd = request.clone();
        odd.query = Some("after=%FF".into());
        assert!(odd.param("after").is_err());
        assert_eq!(request.range.as_deref(), Some("bytes=0-1"));
        assert_eq!(request.if_range, None);
    }

    #[test]
    fn too_many_headers_and_garbage_are_refused() {
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for index in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{index}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&many), Err(HeadError::TooLarge)));
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00 TLS\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }
}
