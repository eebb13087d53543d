//! A worker: accepts a connection, reads one request head within the limits, answers it, and
//! closes the connection. Each worker serves one client at a time, so the number of workers
//! bounds the threads, buffers and store reads the view takes.

use std::io::{BufWriter, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::request::{self, HeadError};
use super::response::{self, HEADERS_TOO_LARGE, REQUEST_TIMEOUT, Status};
use super::{View, WRITE_TIMEOUT, routes};

/// How long accepting pauses after it failed (out of descriptors, say), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves connections from `listener` until `stopping` is set.
pub(crate) fn serve(listener: &TcpListener, view: &View, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) if !stopping.load(Ordering::SeqCst) => {
                let span = tracing::debug_span!("http", %peer);
                let _entered = span.enter();
                answer(stream, view);
            }
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => {
                warn!(%err, "the web view cannot accept a connection; retrying shortly");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Reads one request from `stream` and answers it. Failures are the client's business and
/// only logged.
fn answer(mut stream: TcpStream, view: &View) {
    if let Err(err) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        debug!(%err, "cannot set a write timeout; dropping the connection");
        return;
    }
    let deadline = Instant::now() + view.request_timeout;
    let request = request::read_head(&mut stream, deadline);
    let mut out = BufWriter::new(&stream);
    let result = match request {
        Ok(request) => {
            debug!(method = %request.method, path = %request.path, "request");
            routes::handle(&request, view, &mut out)
        }
        Err(err) => {
            debug!(%err, "no request");
            match refusal(&err) {
                Some((status, message)) => response::text(&mut out, status, message),
                None => Ok(()),
            }
        }
    };
    if let Err(err) = result {
        debug!(%err, "the response was not delivered whole");
    }
}

/// What to tell a client whose request could not be read, if it can still be told anything.
fn refusal(err: &HeadError) -> Option<(Status, &'static str)> {
    match err {
        HeadError::TooLarge => Some((HEADERS_TOO_LARGE, "request head too large")),
        HeadError::Malformed(_) => Some((response::BAD_REQUEST, "not an HTTP/1.x request")),
        HeadError::Io(err) if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            Some((REQUEST_TIMEOUT, "request head too slow"))
        }
        HeadError::Io(_) | HeadError::Closed => None,
    }
}
