//! The messages of protocol version 2, exactly as they travel inside a frame's header (inside
//! TLS; version 1 sent the same frames in the clear).
//!
//! Names travel as plain strings and hashes as 32 raw bytes: a peer's bad name must reach
//! [`storage::PartName`] validation and be answered with a reason, not fail decoding and cost
//! the connection. Variants are only ever added at the end of an enum, since the variant index
//! is what goes on the wire; the golden tests below pin every encoding.

use serde::{Deserialize, Serialize};
use storage::{PartHash, PartInfo, PartKind, PartName};

/// First bytes of every handshake, so a stray client of another protocol is told apart at once.
pub const MAGIC: [u8; 4] = *b"P2PS";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Every version this build can serve; an unknown one is refused with this list.
pub const SUPPORTED_VERSIONS: [u16; 1] = [PROTOCOL_VERSION];

/// Identifies a request on its connection; the client picks it, the server echoes it.
pub type RequestId = u64;

/// A blake3 hash as it travels: 32 raw bytes.
pub type WireHash = [u8; PartHash::LEN];

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The first frame on a connection.
    Hello {
        magic: [u8; 4],
        version: u16,
        peer: String,
    },
    /// "I have this part": answered with `Have`, `Want`, `Conflict` or `Rejected`. A
    /// manifest is accepted only once every chunk it lists is on the server.
    Offer {
        id: RequestId,
        name: String,
        hash: WireHash,
        size: u64,
        kind: PartKind,
    },
    /// The bytes of an offer the server answered with `Want`; `size` raw bytes follow the
    /// header and must equal the offer's size. Answered with `Stored`, `Have`, `Conflict` or
    /// `Rejected`.
    Body { id: RequestId, size: u64 },
    /// One page of the server's parts, sorted by name, starting after `after`.
    List {
        id: RequestId,
        after: Option<String>,
        limit: u32,
    },
    /// The bytes of one part: answered with `Part` (and its body) or `Rejected`.
    Get { id: RequestId, name: String },
    /// Withdraws an offer answered with `Want` whose bytes the client can no longer send;
    /// answered with `Rejected` (code `Cancelled`).
    Cancel { id: RequestId },
    /// The answer to a `Challenge`: the client's own nonce, and its proof of the key over
    /// the server's nonce and its own (see `auth`).
    Prove { nonce: WireHash, proof: WireHash },
    /// What the server holds under one name, without listing everything: answered with
    /// `Entry` (`None` when it holds nothing by that name) or `Rejected`.
    Stat { id: RequestId, name: String },
    /// Follow what the server newly stores: answered with `Subscribed`, then an `Announced`
    /// for each plain part or file stored from then on, for as long as the connection lasts.
    /// `epoch` and `after` are the cursor of an earlier subscription (`0, 0` for none): when
    /// the server still has what came after it, nothing in between is missed.
    Subscribe {
        id: RequestId,
        epoch: u64,
        after: u64,
    },
}

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The handshake succeeded; the limits bind the client from now on.
    Welcome {
        version: u16,
        peer: String,
        max_part_size: u64,
        max_in_flight: u32,
    },
    /// The server already holds this exact part: nothing to send.
    Have { id: RequestId },
    /// Send the offered part's bytes.
    Want { id: RequestId },
    /// The name holds other bytes on the server; they are kept.
    Conflict { id: RequestId, existing: WireHash },
    /// The part's bytes are durable on the server.
    Stored { id: RequestId },
    /// This request failed; the connection goes on.
    Rejected {
        id: RequestId,
        code: ErrorCode,
        message: String,
    },
    /// One page of a `List`; `next` is the `after` for the following page, `None` at the end.
    Page {
        id: RequestId,
        parts: Vec<WireEntry>,
        next: Option<String>,
    },
    /// A part for a `Get`; `size` raw bytes follow the header. The client verifies them.
    Part {
        id: RequestId,
        hash: WireHash,
        size: u64,
    },
    /// The connection failed and the server closes it after this frame.
    Error { code: ErrorCode, message: String },
    /// Sent instead of `Welcome` by a server with a key: prove it with `Prove`.
    Challenge { nonce: WireHash },
    /// The server's proof of the key over the client's nonce and its own; `Welcome` follows.
    Proven { proof: WireHash },
    /// The answer to a `Stat`: the part held under that name, or `None`.
    Entry {
        id: RequestId,
        entry: Option<WireEntry>,
    },
    /// The answer to a `Subscribe`, and again whenever the client fell too far behind:
    /// `resumed` says announcements go on right after the client's cursor; otherwise the
    /// client missed some and catches up by listing. Announcements follow `seq` of `epoch`.
    Subscribed {
        id: RequestId,
        epoch: u64,
        seq: u64,
        resumed: bool,
    },
    /// A part or file the server stored, number `seq` of the subscription's epoch; `None`
    /// says only that the server is there, after some quiet, at `seq`.
    Announced {
        id: RequestId,
        seq: u64,
        entry: Option<WireEntry>,
    },
}

/// One part in a `Page`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    pub name: String,
    pub hash: WireHash,
    pub size: u64,
    pub kind: PartKind,
}

impl From<&PartInfo> for WireEntry {
    fn from(info: &PartInfo) -> Self {
        Self {
            name: info.name.as_str().to_owned(),
            hash: *info.hash.as_bytes(),
            size: info.size,
            kind: info.kind,
        }
    }
}

impl WireEntry {
    /// Validates the entry's name, as every name from a peer must be.
    ///
    /// # Errors
    /// The rule the name breaks.
    pub fn into_info(self) -> Result<PartInfo, storage::NameError> {
        Ok(PartInfo {
            name: PartName::new(self.name)?,
            hash: PartHash::from_bytes(self.hash),
            size: self.size,
            kind: self.kind,
        })
    }
}

/// Why a request or a connection failed. On the wire a `u32`: a known code's position in
/// this enum (only append), and [`ErrorCode::Other`] for a number this build does not know,
/// so a peer that adds codes does not break older ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A frame could not be decoded, or carried bytes after its message.
    Malformed,
    /// A frame's header is longer than the limit.
    FrameTooLarge,
    /// A part is larger than the server accepts.
    PartTooLarge,
    /// The handshake's magic is not [`MAGIC`].
    BadMagic,
    /// The handshake asked for a version the server does not speak.
    UnsupportedVersion,
    /// A request came before the handshake, or a second handshake came.
    HandshakeRequired,
    /// The part name breaks a naming rule.
    InvalidName,
    /// The bytes do not hash to the offered hash; nothing was stored.
    HashMismatch,
    /// No part by that name.
    NotFound,
    /// The name already holds other bytes.
    Conflict,
    /// The stored copy is damaged on the server.
    Corrupt,
    /// The server could not read or write its store.
    StorageFailed,
    /// A `Body` or `Cancel` for an id with no offer answered `Want`, or a `Body` of another
    /// size than offered.
    UnexpectedBody,
    /// A request id already in flight on this connection.
    DuplicateId,
    /// The server holds its maximum number of connections.
    Busy,
    /// The handshake or the next frame did not arrive in time.
    Timeout,
    /// The server is stopping.
    ShuttingDown,
    /// The client withdrew its offer.
    Cancelled,
    /// A new request while `max_in_flight` requests were already in flight.
    TooManyRequests,
    /// A manifest that does not decode, or lists chunks the server does not hold.
    BadManifest,
    /// The client did not prove knowledge of the server's key.
    AuthFailed,
    /// The server serves reads only; pushes are refused.
    ReadOnly,
    /// The client's address is not among those the server lets in.
    Forbidden,
    /// A manifest past the bounds on what a file may claim: more chunks than
    /// [`storage::MAX_MANIFEST_CHUNKS`], or one chunk listed more often than
    /// [`storage::MAX_CHUNK_REPEATS`]. Pushing more chunks cannot make it acceptable.
    ManifestTooLarge,
    /// The client's host (IPv4 address, or IPv6 /64) already holds as many connections as the
    /// server gives one host.
    TooManyConnections,
    /// The connection was idle while the server was full, and was closed to let another in.
    Evicted,
    /// The part is stored, but what the server does before acknowledging a part failed:
    /// writing it out to the directory `serve --export-dir` names. Sending it again is
    /// answered `Have`; the file must be exported from the store instead.
    ExportFailed,
    /// A code from a newer peer, by its number: the request (in `Rejected`) or the connection
    /// (in `Error`) failed for a reason this build cannot name. Never sent for a known code.
    Other(u32),
}

impl ErrorCode {
    /// The known codes in wire order: a code's number is its position here.
    const KNOWN: [Self; 27] = [
        Self::Malformed,
        Self::FrameTooLarge,
        Self::PartTooLarge,
        Self::BadMagic,
        Self::UnsupportedVersion,
        Self::HandshakeRequired,
        Self::InvalidName,
        Self::HashMismatch,
        Self::NotFound,
        Self::Conflict,
        Self::Corrupt,
        Self::StorageFailed,
        Self::UnexpectedBody,
        Self::DuplicateId,
        Self::Busy,
        Self::Timeout,
        Self::ShuttingDown,
        Self::Cancelled,
        Self::TooManyRequests,
        Self::BadManifest,
        Self::AuthFailed,
        Self::ReadOnly,
        Self::Forbidden,
        Self::ManifestTooLarge,
        Self::TooManyConnections,
        Self::Evicted,
        Self::ExportFailed,
    ];

    /// The number that stands for this code on the wire.
    pub fn number(self) -> u32 {
        match self {
            Self::Other(number) => number,
            known => Self::KNOWN
                .iter()
                .position(|code| *code == known)
                .and_then(|index| u32::try_from(index).ok())
                .expect("every named code is in KNOWN"),
        }
    }

    /// The code a number stands for; [`ErrorCode::Other`] when this build does not know it.
    pub fn from_number(number: u32) -> Self {
        usize::try_from(number)
            .ok()
            .and_then(|index| Self::KNOWN.get(index).copied())
            .unwrap_or(Self::Other(number))
    }
}

/// As a bare `u32`: the same bytes a unit-only enum's variant index takes, so the encoding of
/// the known codes is what it always was.
impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.number())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u32::deserialize(deserializer).map(Self::from_number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn encoded_request(request: &Request) -> String {
        hex(&frame::encode_request(request).expect("encodes"))
    }

    fn encoded_response(response: &Response) -> String {
        hex(&frame::encode_response(response).expect("encodes"))
    }

    const HASH: WireHash = [0xab; 32];
    const HASH_HEX: &str = "abababababababababababababababababababababababababababababababab";

    /// Pins every request's bytes: a change here is a protocol change and needs a new version.
    #[test]
    fn request_encodings_are_pinned() {
        let cases = [
            (
                Request::Hello {
                    magic: MAGIC,
                    version: 1,
                    peer: "p2".into(),
                },
                // len=20 | tag 0 | magic | version 1 | string len 2 | "p2"
                "14000000 00000000 50325053 0100 0200000000000000 7032".replace(' ', ""),
            ),
            (
                // The Hello of this version (PROTOCOL.md §12.1), inside TLS.
                Request::Hello {
                    magic: MAGIC,
                    version: PROTOCOL_VERSION,
                    peer: "p2".into(),
                },
                "14000000 00000000 50325053 0200 0200000000000000 7032".replace(' ', ""),
            ),
            (
                Request::Offer {
                    id: 7,
                    name: "a".into(),
                    hash: HASH,
                    size: 5,
                    kind: PartKind::Manifest,
                },
                format!(
                    "41000000 01000000 0700000000000000 010000000000000061 {HASH_HEX} 0500000000000000 01000000"
                )
                .replace(' ', ""),
            ),
            (
                Request::Body { id: 7, size: 5 },
                "14000000 02000000 0700000000000000 0500000000000000".replace(' ', ""),
            ),
            (
                Request::List {
                    id: 1,
                    after: Some("a".into()),
                    limit: 100,
                },
                "1a000000 03000000 0100000000000000 01 010000000000000061 64000000"
                    .replace(' ', ""),
            ),
            (
                Request::Get {
                    id: 2,
                    name: "a".into(),
                },
                "15000000 04000000 0200000000000000 010000000000000061".replace(' ', ""),
            ),
            (
                Request::Cancel { id: 7 },
                "0c000000 05000000 0700000000000000".replace(' ', ""),
            ),
            (
                Request::Prove {
                    nonce: [1; 32],
                    proof: HASH,
                },
                format!(
                    "44000000 06000000 {} {HASH_HEX}",
                    "01".repeat(32)
                )
                .replace(' ', ""),
            ),
            (
                Request::Stat {
                    id: 9,
                    name: "a".into(),
                },
                "15000000 07000000 0900000000000000 010000000000000061".replace(' ', ""),
            ),
            (
                Request::Subscribe {
                    id: 9,
                    epoch: 0x0102,
                    after: 3,
                },
                // len=28 | tag 8 | id 9 | epoch 0x0102 | after 3
                "1c000000 08000000 0900000000000000 0201000000000000 0300000000000000"
                    .replace(' ', ""),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(encoded_request(&request), expected, "{request:?}");
        }
    }

    /// Pins every response's bytes.
    #[test]
    fn response_encodings_are_pinned() {
        let cases = [
            (
                Response::Welcome {
                    version: 1,
                    peer: "p1".into(),
                    max_part_size: 1024,
                    max_in_flight: 8,
                },
                "1c000000 00000000 0100 0200000000000000 7031 0004000000000000 08000000"
                    .replace(' ', ""),
            ),
            (
                Response::Welcome {
                    version: PROTOCOL_VERSION,
                    peer: "p1".into(),
                    max_part_size: 268_435_456,
                    max_in_flight: 4096,
                },
                "1c000000 00000000 0200 0200000000000000 7031 0000001000000000 00100000"
                    .replace(' ', ""),
            ),
            (
                Response::Have { id: 3 },
                "0c000000 01000000 0300000000000000".replace(' ', ""),
            ),
            (
                Response::Want { id: 3 },
                "0c000000 02000000 0300000000000000".replace(' ', ""),
            ),
            (
                Response::Conflict {
                    id: 3,
                    existing: HASH,
                },
                format!("2c000000 03000000 0300000000000000 {HASH_HEX}").replace(' ', ""),
            ),
            (
                Response::Stored { id: 3 },
                "0c000000 04000000 0300000000000000".replace(' ', ""),
            ),
            (
                Response::Rejected {
                    id: 3,
                    code: ErrorCode::InvalidName,
                    message: "x".into(),
                },
                "19000000 05000000 0300000000000000 06000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Page {
                    id: 4,
                    parts: vec![WireEntry {
                        name: "a".into(),
                        hash: HASH,
                        size: 5,
                        kind: PartKind::Plain,
                    }],
                    next: None,
                },
                format!(
                    "4a000000 06000000 0400000000000000 0100000000000000 010000000000000061 {HASH_HEX} 0500000000000000 00000000 00"
                )
                .replace(' ', ""),
            ),
            (
                Response::Part {
                    id: 4,
                    hash: HASH,
                    size: 5,
                },
                format!("34000000 07000000 0400000000000000 {HASH_HEX} 0500000000000000")
                    .replace(' ', ""),
            ),
            (
                Response::Rejected {
                    id: 3,
                    code: ErrorCode::BadManifest,
                    message: "x".into(),
                },
                "19000000 05000000 0300000000000000 13000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Challenge { nonce: HASH },
                format!("24000000 09000000 {HASH_HEX}").replace(' ', ""),
            ),
            (
                Response::Proven { proof: HASH },
                format!("24000000 0a000000 {HASH_HEX}").replace(' ', ""),
            ),
            (
                Response::Rejected {
                    id: 3,
                    code: ErrorCode::Forbidden,
                    message: "x".into(),
                },
                "19000000 05000000 0300000000000000 16000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Rejected {
                    id: 3,
                    code: ErrorCode::ManifestTooLarge,
                    message: "x".into(),
                },
                "19000000 05000000 0300000000000000 17000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Error {
                    code: ErrorCode::ShuttingDown,
                    message: "x".into(),
                },
                "11000000 08000000 10000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Entry {
                    id: 9,
                    entry: Some(WireEntry {
                        name: "a".into(),
                        hash: HASH,
                        size: 5,
                        kind: PartKind::Manifest,
                    }),
                },
                format!(
                    "42000000 0b000000 0900000000000000 01 010000000000000061 {HASH_HEX} 0500000000000000 01000000"
                )
                .replace(' ', ""),
            ),
            (
                Response::Entry { id: 9, entry: None },
                "0d000000 0b000000 0900000000000000 00".replace(' ', ""),
            ),
            (
                Response::Error {
                    code: ErrorCode::TooManyConnections,
                    message: "x".into(),
                },
                "11000000 08000000 18000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Error {
                    code: ErrorCode::Evicted,
                    message: "x".into(),
                },
                "11000000 08000000 19000000 010000000000000078".replace(' ', ""),
            ),
            (
                Response::Subscribed {
                    id: 9,
                    epoch: 0x0102,
                    seq: 4,
                    resumed: true,
                },
                "1d000000 0c000000 0900000000000000 0201000000000000 0400000000000000 01"
                    .replace(' ', ""),
            ),
            (
                Response::Announced {
                    id: 9,
                    seq: 5,
                    entry: Some(WireEntry {
                        name: "a".into(),
                        hash: HASH,
                        size: 2,
                        kind: PartKind::Manifest,
                    }),
                },
                format!(
                    "4a000000 0d000000 0900000000000000 0500000000000000 01 \
                     0100000000000000 61 {HASH_HEX} 0200000000000000 01000000"
                )
                .replace(' ', ""),
            ),
            (
                Response::Announced {
                    id: 9,
                    seq: 5,
                    entry: None,
                },
                "15000000 0d000000 0900000000000000 0500000000000000 00".replace(' ', ""),
            ),
        ];
        for (response, expected) in cases {
            assert_eq!(encoded_response(&response), expected, "{response:?}");
        }
    }

    /// A code this build does not know decodes as `Other` with its number, in `Rejected` and
    /// in `Error` alike, and encodes back to the same bytes.
    #[test]
    fn unknown_error_codes_decode_as_other() {
        let cases = [
            (
                "19000000 05000000 0300000000000000 63000000 010000000000000078",
                Response::Rejected {
                    id: 3,
                    code: ErrorCode::Other(99),
                    message: "x".into(),
                },
            ),
            (
                "11000000 08000000 1b000000 010000000000000078",
                Response::Error {
                    code: ErrorCode::Other(27),
                    message: "x".into(),
                },
            ),
            (
                "11000000 08000000 ffffffff 010000000000000078",
                Response::Error {
                    code: ErrorCode::Other(u32::MAX),
                    message: "x".into(),
                },
            ),
        ];
        for (wire, expected) in cases {
            let bytes: Vec<u8> = (0..wire.replace(' ', "").len())
                .step_by(2)
                .map(|at| u8::from_str_radix(&wire.replace(' ', "")[at..at + 2], 16).unwrap())
                .collect();
            let (decoded, used) = frame::decode::<Response, { frame::MAX_RESPONSE_HEADER }>(&bytes)
                .unwrap()
                .unwrap();
            assert_eq!((decoded, used), (expected.clone(), bytes.len()));
            assert_eq!(encoded_response(&expected), wire.replace(' ', ""));
        }
    }

    /// Every known code keeps its number, and numbers map back to the same code.
    #[test]
    fn known_codes_keep_their_numbers() {
        assert_eq!(ErrorCode::Malformed.number(), 0);
        assert_eq!(ErrorCode::Forbidden.number(), 22);
        assert_eq!(ErrorCode::ManifestTooLarge.number(), 23);
        assert_eq!(ErrorCode::TooManyConnections.number(), 24);
        assert_eq!(ErrorCode::Evicted.number(), 25);
        assert_eq!(ErrorCode::ExportFailed.number(), 26);
        for number in 0..30 {
            assert_eq!(ErrorCode::from_number(number).number(), number);
        }
    }
}
