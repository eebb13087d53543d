//! The blocking client: one connection (TLS 1.3 over TCP), many requests in flight on it.
//!
//! `connect.rs` opens it (`stream.rs` does TLS). Requests are written through a buffer that is
//! flushed only before the client waits for an answer, so a window of small offers leaves in a
//! few large writes; part bytes go to TLS straight from their buffer. Every part fetched is verified against its hash before
//! it is handed to the caller.

mod connect;
mod stream;
mod subscribe;

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::mem::size_of;
use std::time::Duration;

use storage::{PartHash, PartInfo, PartName, StoreError, VerifiedPart};

pub(crate) use connect::Connect;
use stream::Stream;
pub use stream::{TlsStream, secure};
pub use subscribe::{News, Subscription};

use crate::frame::{self, FrameError, MAX_PAGE_ENTRIES, MAX_REQUEST_HEADER, MAX_RESPONSE_HEADER};
use crate::message::{ErrorCode, Request, RequestId, Response};
use crate::tls::PeerId;

/// Requests kept in flight at most, whatever the server allows. Small parts keep coming
/// while the server syncs the last batch: pushing 1 KiB parts, 4096 gave 72,000-80,000
/// parts/s where 1024 gave 62,000-69,000 (4 interleaved rounds).
const MAX_WINDOW: u32 = 4096;

/// Part bytes held in memory for offers not yet answered.
const MAX_HELD_BYTES: u64 = 16 * 1024 * 1024;

/// Socket buffers of the client's reader and writer.
const IO_BUFFER: usize = 256 * 1024;

/// Memory a listing may take, counted as each entry's size plus its name's bytes (about ten
/// million entries with short names): a peer whose pages never end cannot make `list` grow
/// without bound.
pub const MAX_LISTING_BYTES: usize = 1 << 30;

/// Why a conversation with a peer failed. Each message says everything (no separate source),
/// so a report that prints the chain of causes does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {addr}: {cause}")]
    Connect { addr: String, cause: io::Error },
    #[error("the peer refused: {message} ({code:?})")]
    Refused { code: ErrorCode, message: String },
    #[error("the peer closed the connection")]
    Closed,
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the peer's ID is {found}, not {expected} as pinned: it may be an impostor")]
    WrongPeer { expected: PeerId, found: PeerId },
    #[error(
        "the peer refused this side's ID {own}: it trusts only the IDs it was given (serve --trust)"
    )]
    NotTrusted { own: PeerId },
    #[error("the TLS handshake failed: {0}")]
    Tls(String),
    #[error("the peer broke the protocol: {0}")]
    Protocol(String),
    #[error("bad frame from the peer: {0}")]
    Frame(FrameError),
    #[error("the peer sent bad data: {0}")]
    BadPart(StoreError),
    #[error("connection to the peer failed: {0}")]
    Io(io::Error),
    #[error("the peer did not answer within {after:?}")]
    TimedOut { after: Duration },
}

impl From<FrameError> for ClientError {
    fn from(err: FrameError) -> Self {
        Self::Frame(err)
    }
}

impl From<StoreError> for ClientError {
    fn from(err: StoreError) -> Self {
        Self::BadPart(err)
    }
}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// A part to push: described up front, its bytes either held already or loaded when the
/// server asks for them.
#[derive(Debug)]
pub struct Outgoing {
    pub info: PartInfo,
    pub bytes: Option<Vec<u8>>,
}

/// What became of one pushed part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    Stored(PartName),
    AlreadyHad(PartName),
    Rejected(PartName, String),
}

/// Totals of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushSummary {
    pub stored: u64,
    pub already_had: u64,
    pub rejected: u64,
    pub bytes_sent: u64,
}

impl PushSummary {
    /// Adds another push's totals.
    pub fn add(&mut self, other: &Self) {
        self.stored += other.stored;
        self.already_had += other.already_had;
        self.rejected += other.rejected;
        self.bytes_sent += other.bytes_sent;
    }

    fn count(&mut self, event: &PushEvent) {
        match event {
            PushEvent::Stored(_) => self.stored += 1,
            PushEvent::AlreadyHad(_) => self.already_had += 1,
            PushEvent::Rejected(..) => self.rejected += 1,
        }
    }
}

/// A handshaken connection to a peer.
pub struct Client {
    reader: BufReader<Stream>,
    /// Requests not yet handed to the stream.
    out: Vec<u8>,
    next_id: RequestId,
    window: u32,
    max_part_size: u64,
    server_name: String,
    server_id: Option<PeerId>,
    /// Longest wait for the peer on any one read or write.
    timeout: Duration,
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`, or `HOST:PORT#ID` to require the server's ID) with a
    /// one-time identity and no key, and does the handshake, giving `peer` as this side's
    /// name. `timeout` bounds the connect and every later wait for the peer. A
    /// [`Dialer`](crate::transfer::Dialer) sets a lasting identity and a key.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when no address of `addr` answers; [`ClientError::Refused`]
    /// when the handshake is refused.
    pub fn connect(addr: &str, peer: &str, timeout: Duration) -> Result<Self, ClientError> {
        crate::transfer::Dialer::new(peer)
            .timeout(timeout)
            .dial(addr)
    }

    /// The ID the server proved in the TLS handshake (`None` only on a plaintext benchmark
    /// connection).
    pub fn server_id(&self) -> Option<PeerId> {
        self.server_id
    }

    /// The name the server gave in its handshake.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Offers every part, sends the bytes of those the server wants, and reports each part's
    /// fate to `on_event` as it is known. A part without bytes is loaded with `load` only when
    /// the server wants it; a load that fails withdraws the offer and reports its reason.
    /// Bytes are not re-hashed here: the server verifies them against the offered hash.
    ///
    /// # Errors
    /// When the connection fails; parts reported before that are settled.
    pub fn push(
        &mut self,
        parts: impl IntoIterator<Item = Outgoing>,
        mut load: impl FnMut(&PartInfo) -> Result<Vec<u8>, String>,
        mut on_event: impl FnMut(&PushEvent),
    ) -> Result<PushSummary, ClientError> {
        let mut parts = parts.into_iter();
        let mut pending: HashMap<RequestId, Outgoing> = HashMap::new();
        let mut cancelled: HashMap<RequestId, String> = HashMap::new();
        let mut held = 0;
        let mut summary = PushSummary::default();
        let mut report = |summary: &mut PushSummary, event: PushEvent| {
            summary.count(&event);
            on_event(&event);
        };
        loop {
            while pending.len() < self.window as usize && held < MAX_HELD_BYTES {
                let Some(part) = parts.next() else { break };
                if part.info.size > self.max_part_size {
                    let reason = format!(
                        "{} bytes is more than the peer accepts ({})",
                        part.info.size, self.max_part_size
                    );
                    report(&mut summary, PushEvent::Rejected(part.info.name, reason));
                    continue;
                }
                let id = self.next_id();
                held += part.bytes.as_ref().map_or(0, |bytes| bytes.len() as u64);
                self.send(&Request::Offer {
                    id,
                    name: part.info.name.as_str().to_owned(),
                    hash: *part.info.hash.as_bytes(),
                    size: part.info.size,
                    kind: part.info.kind,
                })?;
                pending.insert(id, part);
            }
            if pending.is_empty() {
                return Ok(summary);
            }
            let response = self.receive()?;
            let id = response_id(&response).ok_or_else(|| unexpected(&response))?;
            let Some(part) = pending.get_mut(&id) else {
                return Err(ClientError::Protocol(format!(
                    "an answer for unknown request {id}"
                )));
            };
            if let Some(bytes) = &part.bytes
                && !matches!(response, Response::Want { .. })
            {
                held -= bytes.len() as u64;
            }
            let event = match response {
                Response::Want { id } => {
                    let bytes = match part.bytes.take() {
                        Some(bytes) => {
                            held -= bytes.len() as u64;
                            Ok(bytes)
                        }
                        None => load(&part.info),
                    };
                    match bytes {
                        Ok(bytes) => {
                            self.send_body(id, &bytes)?;
                            summary.bytes_sent += bytes.len() as u64;
                        }
                        Err(reason) => {
                            self.send(&Request::Cancel { id })?;
                            cancelled.insert(id, reason);
                        }
                    }
                    continue;
                }
                Response::Stored { .. } => PushEvent::Stored(part.info.name.clone()),
                Response::Have { .. } => PushEvent::AlreadyHad(part.info.name.clone()),
                Response::Conflict { existing, .. } => PushEvent::Rejected(
                    part.info.name.clone(),
                    format!(
                        "the peer holds other content under this name ({})",
                        PartHash::from_bytes(existing)
                    ),
                ),
                Response::Rejected { message, .. } => PushEvent::Rejected(
                    part.info.name.clone(),
                    cancelled.remove(&id).unwrap_or(message),
                ),
                other => return Err(unexpected(&other)),
            };
            pending.remove(&id);
            report(&mut summary, event);
        }
    }

    /// Every part the server holds, sorted by name, one page at a time.
    ///
    /// # Errors
    /// When the connection fails or the server sends a name that breaks the naming rules.
    pub fn list(&mut self) -> Result<Vec<PartInfo>, ClientError> {
        let mut parts: Vec<PartInfo> = Vec::new();
        let mut after: Option<String> = None;
        let mut listed_bytes = 0;
        loop {
            let id = self.next_id();
            self.send(&Request::List {
                id,
                after: after.clone(),
                limit: MAX_PAGE_ENTRIES,
            })?;
            match self.receive()? {
                Response::Page {
                    id: answered,
                    parts: page,
                    next,
                } if answered == id => {
                    let page_len = page.len();
                    for entry in page {
                        let info = entry
                            .into_info()
                            .map_err(|err| ClientError::Protocol(err.to_string()))?;
                        let floor = parts.last().map(|last| last.name.as_str());
                        if floor.max(after.as_deref()) >= Some(info.name.as_str()) {
                            return Err(ClientError::Protocol(format!(
                                "the listing went back to {:?}: names must increase",
                                info.name.as_str()
                            )));
                        }
                        listed_bytes += size_of::<PartInfo>() + info.name.as_str().len();
                        if listed_bytes > MAX_LISTING_BYTES {
                            return Err(ClientError::Protocol(format!(
                                "the listing passed {MAX_LISTING_BYTES} bytes after {} parts",
                                parts.len()
                            )));
                        }
                        parts.push(info);
                    }
                    let Some(next) = next else { return Ok(parts) };
                    // Each page must bring at least one part and move the cursor past it, so
                    // the listing ends within the byte budget.
                    let last = parts.last().map(|last| last.name.as_str());
                    if page_len == 0
                        || after.as_deref() >= Some(next.as_str())
                        || last > Some(next.as_str())
                    {
                        return Err(ClientError::Protocol(format!(
                            "the listing does not advance: {page_len} parts, then next {next:?} after {:?}",
                            after.as_deref().unwrap_or("")
                        )));
                    }
                    after = Some(next);
                }
                Response::Rejected { code, message, .. } => {
                    return Err(ClientError::Refused { code, message });
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// What the server holds under `name`, without listing everything: `None` when it holds
    /// nothing by that name.
    ///
    /// # Errors
    /// When the connection fails, the server refuses, or it answers for another name or with
    /// a name that breaks the naming rules.
    pub fn stat(&mut self, name: &PartName) -> Result<Option<PartInfo>, ClientError> {
        let id = self.next_id();
        self.send(&Request::Stat {
            id,
            name: name.as_str().to_owned(),
        })?;
        match self.receive()? {
            Response::Entry {
                id: answered,
                entry,
            } if answered == id => {
                let Some(entry) = entry else { return Ok(None) };
                let info = entry
                    .into_info()
                    .map_err(|err| ClientError::Protocol(err.to_string()))?;
                if info.name != *name {
                    return Err(ClientError::Protocol(format!(
                        "asked about {name}, the peer answered about {}",
                        info.name
                    )));
                }
                Ok(Some(info))
            }
            Response::Rejected { code, message, .. } => Err(ClientError::Refused { code, message }),
            other => Err(unexpected(&other)),
        }
    }

    /// Fetches `parts` with a window of requests in flight, verifying each against the hash
    /// it was listed with, and hands each result to `on_part` as it arrives.
    ///
    /// # Errors
    /// When the connection fails; a part the server refuses or sends damaged is reported to
    /// `on_part` and the others go on.
    pub fn fetch(
        &mut self,
        parts: &[PartInfo],
        mut on_part: impl FnMut(&PartInfo, Result<VerifiedPart, ClientError>),
    ) -> Result<(), ClientError> {
        let mut queue = parts.iter();
        let mut waiting: HashMap<RequestId, &PartInfo> = HashMap::new();
        loop {
            while waiting.len() < self.window as usize {
                let Some(info) = queue.next() else { break };
                let id = self.next_id();
                self.send(&Request::Get {
                    id,
                    name: info.name.as_str().to_owned(),
                })?;
                waiting.insert(id, info);
            }
            if waiting.is_empty() {
                return Ok(());
            }
            let response = self.receive()?;
            let info = response_id(&response)
                .and_then(|id| waiting.remove(&id))
                .ok_or_else(|| unexpected(&response))?;
            let result = match response {
                Response::Part { hash, size, .. } => {
                    let sent = PartHash::from_bytes(hash);
                    if sent == info.hash && size == info.size {
                        let bytes = self.receive_body(size)?;
                        VerifiedPart::new(info.name.clone(), info.hash, bytes)
                            .map_err(ClientError::from)
                    } else {
                        // Other content than listed: its bytes are skipped, never held.
                        self.skip_body(size)?;
                        Err(ClientError::Protocol(format!(
                            "{} now holds {sent} ({size} bytes), not the listed {}",
                            info.name, info.hash
                        )))
                    }
                }
                Response::Rejected { code, message, .. } => {
                    Err(ClientError::Refused { code, message })
                }
                other => return Err(unexpected(&other)),
            };
            on_part(info, result);
        }
    }

    fn next_id(&mut self) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        frame::encode_into::<MAX_REQUEST_HEADER>(request, &mut self.out)?;
        if self.out.len() >= IO_BUFFER {
            self.write_out().map_err(|err| self.timed_out(err.into()))?;
        }
        Ok(())
    }

    /// Sends a body's header and bytes; large bytes go to the stream from their own buffer.
    fn send_body(&mut self, id: RequestId, bytes: &[u8]) -> Result<(), ClientError> {
        self.send(&Request::Body {
            id,
            size: bytes.len() as u64,
        })?;
        if self.out.len() + bytes.len() <= IO_BUFFER {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        self.write_out()
            .and_then(|()| self.reader.get_mut().write_all(bytes))
            .map_err(|err| self.timed_out(err.into()))
    }

    /// Hands the buffered requests to the stream.
    fn write_out(&mut self) -> io::Result<()> {
        self.reader.get_mut().write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Names a socket timeout as what it is: the peer did not answer in time. With a timeout
    /// set, a blocked read or write fails with `WouldBlock` (or `TimedOut`), which would
    /// otherwise read as "Resource temporarily unavailable".
    fn timed_out(&self, err: ClientError) -> ClientError {
        let io = match &err {
            ClientError::Io(io) | ClientError::Frame(FrameError::Io(io)) => io,
            _ => return err,
        };
        match io.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::TimedOut {
                after: self.timeout,
            },
            _ => err,
        }
    }

    /// Flushes what is buffered and waits for the next response; a connection-ending `Error`
    /// becomes [`ClientError::Refused`].
    fn receive(&mut self) -> Result<Response, ClientError> {
        // A whole answer already read waits for nothing from us: the small requests buffered
        // meanwhile leave together, in a few large records, once an answer must be waited
        // for. What the stream already took (large bodies) leaves at once, as before.
        let write_out = if self.has_whole_frame() {
            Ok(())
        } else {
            self.write_out()
        };
        write_out
            .and_then(|()| self.reader.get_mut().flush())
            .map_err(|err| self.timed_out(err.into()))?;
        let read = frame::read_buffered::<Response, MAX_RESPONSE_HEADER>(&mut self.reader);
        match read.map_err(|err| self.timed_out(err.into()))? {
            None => Err(ClientError::Closed),
            Some(Response::Error { code, message }) => Err(ClientError::Refused { code, message }),
            Some(response) => Ok(response),
        }
    }

    /// Whether the read buffer holds a whole frame header (or a length too large to wait for),
    /// so the next answer can be decoded, or refused, without waiting on the peer.
    fn has_whole_frame(&self) -> bool {
        frame::starts_with_header::<MAX_RESPONSE_HEADER>(self.reader.buffer())
    }

    /// Reads and drops a body, keeping the stream's frame boundaries.
    fn skip_body(&mut self, size: u64) -> Result<(), ClientError> {
        let skipped = io::copy(&mut (&mut self.reader).take(size), &mut io::sink())?;
        if skipped < size {
            return Err(FrameError::Truncated.into());
        }
        Ok(())
    }

    fn receive_body(&mut self, size: u64) -> Result<Vec<u8>, ClientError> {
        // The server's announced limit bounds what it accepts; it may hold larger parts,
        // stored before it was lowered, up to what any store holds.
        if size > storage::MAX_PART_SIZE {
            return Err(ClientError::Protocol(format!(
                "a part of {size} bytes, more than any store holds ({})",
                storage::MAX_PART_SIZE
            )));
        }
        let size = usize::try_from(size).expect("a checked part size fits in memory");
        let mut bytes = Vec::with_capacity(size);
        (&mut self.reader)
            .take(size as u64)
            .read_to_end(&mut bytes)
            .map_err(|err| self.timed_out(err.into()))?;
        if bytes.len() < size {
            return Err(FrameError::Truncated.into());
        }
        Ok(bytes)
    }
}

fn response_id(response: &Response) -> Option<RequestId> {
    match response {
        Response::Have { id }
        | Response::Want { id }
        | Response::Conflict { id, .. }
        | Response::Stored { id }
        | Response::Rejected { id, .. }
        | Response::Page { id, .. }
        | Response::Part { id, .. }
        | Response::Entry { id, .. }
        | Response::Subscribed { id, .. }
        | Response::Announced { id, .. } => Some(*id),
        Response::Welcome { .. }
        | Response::Error { .. }
        | Response::Challenge { .. }
        | Response::Proven { .. } => None,
    }
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected {response:?}"))
}
