//! Frames: a 4-byte little-endian header length, a bincode header, then raw body bytes.
//!
//! ```text
//! +----------------+----------------------------+------------------------------+
//! | header_len u32 | header: bincode(message)   | body: body_len(message) bytes |
//! +----------------+----------------------------+------------------------------+
//! ```
//!
//! Part bytes never pass through serde: the header says how many follow, and they are copied
//! as they are. Decoding trusts nothing: the length is checked against the limit before a
//! byte of the header is looked at, the header is decoded only once it is complete, from a
//! slice, with a bincode limit (so a declared 1 TiB string is refused, not allocated), and it
//! must use exactly `header_len` bytes (bincode itself ignores trailing bytes).

use std::io::{self, BufRead, Read};

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::message::{Request, Response};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Longest request header a server decodes. Requests hold at most a name and a few numbers.
pub const MAX_REQUEST_HEADER: usize = 16 * 1024;

/// Longest response header a client decodes: a `Page` of [`MAX_PAGE_ENTRIES`] long names fits.
pub const MAX_RESPONSE_HEADER: usize = 1024 * 1024;

/// Most entries a server puts in one `Page`.
pub const MAX_PAGE_ENTRIES: u32 = 2048;

/// The bincode configuration of every header: little-endian, fixed-width integers (a `u64` is
/// always 8 bytes, a length always a `u64`, an enum variant a `u32`), with a byte limit.
pub type WireConfig<const LIMIT: usize> = Configuration<LittleEndian, Fixint, Limit<LIMIT>>;

/// [`WireConfig`] with the given limit.
pub const fn wire_config<const LIMIT: usize>() -> WireConfig<LIMIT> {
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<LIMIT>()
}

/// Why bytes from a peer are not a valid frame. After any of these the stream cannot be
/// trusted: the frame boundaries are lost.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame header of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("frame header does not decode: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    #[error("frame header has {extra} bytes after its message")]
    TrailingBytes { extra: usize },
    #[error("message does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Messages that may carry raw body bytes after their header.
pub trait Framed: Serialize + DeserializeOwned {
    /// Bytes that follow this header.
    fn body_len(&self) -> u64;
}

impl Framed for Request {
    fn body_len(&self) -> u64 {
        match self {
            Self::Body { size, .. } => *size,
            _ => 0,
        }
    }
}

impl Framed for Response {
    fn body_len(&self) -> u64 {
        match self {
            Self::Part { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Appends `message`'s length prefix and header to `out` (not its body).
///
/// # Errors
/// [`FrameError::Encode`], or [`FrameError::TooLarge`] past `MAX`, so a sender never emits
/// what its peer must refuse.
pub fn encode_into<const MAX: usize>(
    message: &impl Serialize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    let written = bincode::serde::encode_into_std_write(message, out, wire_config::<MAX>());
    let len = match written {
        Ok(len) => len,
        Err(err) => {
            out.truncate(start);
            return Err(err.into());
        }
    };
    let prefix = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX)
        .ok_or(FrameError::TooLarge {
            len: len as u64,
            max: MAX,
        });
    match prefix {
        Ok(prefix) => {
            out[start..start + LEN_PREFIX].copy_from_slice(&prefix.to_le_bytes());
            Ok(())
        }
        Err(err) => {
            out.truncate(start);
            Err(err)
        }
    }
}

/// A request's frame header, as a new buffer.
///
/// # Errors
/// As [`encode_into`].
pub fn encode_request(request: &Request) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into::<MAX_REQUEST_HEADER>(request, &mut out)?;
    Ok(out)
}

/// A response's frame header, as a new buffer.
///
/// # Errors
/// As [`encode_into`].
pub fn encode_response(response: &Response) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into::<MAX_RESPONSE_HEADER>(response, &mut out)?;
    Ok(out)
}

/// Decodes the header at the start of `buf`: `Ok(None)` until the whole header is there, then
/// the message and the bytes it used (prefix included). The body, if any, follows.
///
/// # Errors
/// [`FrameError::TooLarge`] as soon as the prefix is readable and past `MAX`;
/// [`FrameError::Malformed`] and [`FrameError::TrailingBytes`] for a bad header.
pub fn decode<T: Framed, const MAX: usize>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(None);
    };
    let len = check_len::<MAX>(u32::from_le_bytes(*prefix))?;
    let Some(header) = buf[LEN_PREFIX..].get(..len) else {
        return Ok(None);
    };
    let message = decode_header::<T, MAX>(header)?;
    Ok(Some((message, LEN_PREFIX + len)))
}

/// Whether `buf` starts with a whole header, or with a prefix [`decode`] refuses: the point
/// to stop reading and parse, so that the body after a `Body` header is read straight into
/// its own buffer rather than copied there from the input.
pub(crate) fn starts_with_header<const MAX: usize>(buf: &[u8]) -> bool {
    buf.first_chunk::<LEN_PREFIX>().is_some_and(|prefix| {
        check_len::<MAX>(u32::from_le_bytes(*prefix))
            .map_or(true, |len| buf.len() >= LEN_PREFIX + len)
    })
}

/// Reads one header from a blocking stream: `Ok(None)` on a clean end of stream before the
/// first byte; an end of stream inside the frame is [`FrameError::Truncated`].
///
/// # Errors
/// As [`decode`], plus the stream's I/O errors.
pub fn read<T: Framed, const MAX: usize>(reader: &mut impl Read) -> Result<Option<T>, FrameError> {
    let mut prefix = [0; LEN_PREFIX];
    let mut filled = 0;
    while filled < LEN_PREFIX {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    let len = check_len::<MAX>(u32::from_le_bytes(prefix))?;
    let mut header = vec![0; len];
    reader.read_exact(&mut header).map_err(truncated)?;
    decode_header::<T, MAX>(&header).map(Some)
}

/// [`read`] from a buffered stream: a header already whole in the buffer is decoded where it
/// lies, without a buffer of its own (a push of small parts reads two answers per part).
///
/// # Errors
/// As [`read`].
pub fn read_buffered<T: Framed, const MAX: usize>(
    reader: &mut impl BufRead,
) -> Result<Option<T>, FrameError> {
    let buffered = loop {
        match reader.fill_buf() {
            Ok(buffered) => break buffered,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    };
    match decode::<T, MAX>(buffered)? {
        Some((message, used)) => {
            reader.consume(used);
            Ok(Some(message))
        }
        None => read::<T, MAX>(reader),
    }
}

/// Maps an end of stream inside a frame to [`FrameError::Truncated`].
pub fn truncated(err: io::Error) -> FrameError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(err)
    }
}

fn check_len<const MAX: usize>(len: u32) -> Result<usize, FrameError> {
    usize::try_from(len)
        .ok()
        .filter(|&len| len <= MAX)
        .ok_or(FrameError::TooLarge {
            len: len.into(),
            max: MAX,
        })
}

fn decode_header<T: Framed, const MAX: usize>(header: &[u8]) -> Result<T, FrameError> {
    let (message, used) = bincode::serde::decode_from_slice(header, wire_config::<MAX>())?;
    match header.len() - used {
        0 => Ok(message),
        extra => Err(FrameError::TrailingBytes { extra }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use storage::PartKind;

    use super::*;
    use crate::message::{ErrorCode, WireEntry};

    type Decoded<T> = Result<Option<(T, usize)>, FrameError>;

    fn decode_request(buf: &[u8]) -> Decoded<Request> {
        decode::<Request, MAX_REQUEST_HEADER>(buf)
    }

    #[test]
    fn a_partial_header_is_not_yet_a_frame() {
        let frame = encode_request(&Request::Get {
            id: 1,
            name: "part2.txt".into(),
        })
        .unwrap();
        for cut in 0..frame.len() {
            assert!(
                decode_request(&frame[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        let (_, used) = decode_request(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
    }

    #[test]
    fn a_length_past_the_limit_is_refused_from_the_prefix_alone() {
        for len in [u32::MAX, MAX_REQUEST_HEADER as u32 + 1] {
            let err = decode_request(&len.to_le_bytes()).unwrap_err();
            assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        }
    }

    #[test]
    fn a_declared_huge_string_is_refused_without_allocating_it() {
        // Get { id: 1, name: <a string declared 1 TiB long> } in a 20-byte header.
        let mut header = Vec::new();
        header.extend_from_slice(&4u32.to_le_bytes());
        header.extend_from_slice(&1u64.to_le_bytes());
        header.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut frame = (header.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&header);
        let err = decode_request(&frame).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[test]
    fn bytes_after_the_message_are_refused() {
        let mut frame = encode_request(&Request::Body { id: 1, size: 2 }).unwrap();
        frame.push(0);
        let len = u32::from_le_bytes(*frame.first_chunk().unwrap()) + 1;
        frame[..LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
        let err = decode_request(&frame).unwrap_err();
        assert!(
            matches!(err, FrameError::TrailingBytes { extra: 1 }),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_variant_is_malformed() {
        let mut frame = 4u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&99u32.to_le_bytes());
        assert!(matches!(
            decode_request(&frame).unwrap_err(),
            FrameError::Malformed(_)
        ));
    }

    #[test]
    fn read_tells_a_clean_end_from_a_cut_frame() {
        let frame = encode_response(&Response::Stored { id: 9 }).unwrap();
        let mut empty: &[u8] = &[];
        assert!(
            read::<Response, MAX_RESPONSE_HEADER>(&mut empty)
                .unwrap()
                .is_none()
        );
        let mut cut = &frame[..frame.len() - 1];
        assert!(matches!(
            read::<Response, MAX_RESPONSE_HEADER>(&mut cut).unwrap_err(),
            FrameError::Truncated
        ));
        let mut whole = &frame[..];
        assert_eq!(
            read::<Response, MAX_RESPONSE_HEADER>(&mut whole).unwrap(),
            Some(Response::Stored { id: 9 })
        );
    }

    #[test]
    fn a_buffered_read_decodes_whole_headers_in_place_and_split_ones_as_read_does() {
        let frames = [
            encode_response(&Response::Stored { id: 1 }).unwrap(),
            encode_response(&Response::Want { id: 2 }).unwrap(),
        ]
        .concat();
        // A buffer of 7 bytes holds neither frame whole: both are assembled from pieces.
        for capacity in [7, frames.len()] {
            let mut reader = io::BufReader::with_capacity(capacity, &frames[..]);
            let mut read_all = || read_buffered::<Response, MAX_RESPONSE_HEADER>(&mut reader);
            assert_eq!(read_all().unwrap(), Some(Response::Stored { id: 1 }));
            assert_eq!(read_all().unwrap(), Some(Response::Want { id: 2 }));
            assert_eq!(read_all().unwrap(), None);
        }
        let mut cut = io::BufReader::new(&frames[..frames.len() - 1]);
        read_buffered::<Response, MAX_RESPONSE_HEADER>(&mut cut).unwrap();
        assert!(matches!(
            read_buffered::<Response, MAX_RESPONSE_HEADER>(&mut cut).unwrap_err(),
            FrameError::Truncated
        ));
    }

    #[test]
    fn a_response_too_large_for_the_peer_is_not_sent() {
        let parts = vec![
            WireEntry {
                name: "x".repeat(200),
                hash: [0; 32],
                size: 0,
                kind: PartKind::Plain,
            };
            5000
        ];
        let page = Response::Page {
            id: 1,
            parts,
            next: None,
        };
        assert!(matches!(
            encode_response(&page).unwrap_err(),
            FrameError::TooLarge { .. }
        ));
    }

    fn any_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>(), ".{0,40}").prop_map(|(magic, version, peer)| {
                Request::Hello {
                    magic,
                    version,
                    peer,
                }
            }),
            (
                any::<u64>(),
                ".{0,200}",
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<bool>()
            )
                .prop_map(|(id, name, hash, size, manifest)| Request::Offer {
                    id,
                    name,
                    hash,
                    size,
                    kind: if manifest {
                        PartKind::Manifest
                    } else {
                        PartKind::Plain
                    },
                }),
            (any::<u64>(), any::<u64>()).prop_map(|(id, size)| Request::Body { id, size }),
            (any::<u64>(), proptest::option::of(".{0,200}"), any::<u32>())
                .prop_map(|(id, after, limit)| Request::List { id, after, limit }),
            (any::<u64>(), ".{0,200}").prop_map(|(id, name)| Request::Get { id, name }),
            any::<u64>().prop_map(|id| Request::Cancel { id }),
            (any::<u64>(), ".{0,200}").prop_map(|(id, name)| Request::Stat { id, name }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(request in any_request()) {
            let frame = encode_request(&request).unwrap();
            let (decoded, used) = decode_request(&frame).unwrap().unwrap();
            prop_assert_eq!(decoded, request);
            prop_assert_eq!(used, frame.len());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
            let _ = decode::<Response, MAX_RESPONSE_HEADER>(&bytes);
        }

        #[test]
        fn rejections_round_trip(id in any::<u64>(), message in ".{0,100}") {
            let response = Response::Rejected { id, code: ErrorCode::Conflict, message };
            let frame = encode_response(&response).unwrap();
            let decoded = decode::<Response, MAX_RESPONSE_HEADER>(&frame).unwrap().unwrap().0;
            prop_assert_eq!(decoded, response);
        }
    }
}
