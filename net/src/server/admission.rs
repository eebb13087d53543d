//! Who gets in: the allow-list and the connection cap, checked the moment a connection is
//! accepted, before a byte of it is read.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use mio::net::TcpStream;
use tracing::warn;

use crate::frame;
use crate::message::{ErrorCode, Response};

/// Whether a connection just accepted may be served while `held` others are. One that may not
/// is told why, if its socket takes the bytes at once, and the caller drops it.
pub(crate) fn admit(
    stream: &mut TcpStream,
    peer: SocketAddr,
    allow: &[IpNet],
    held: usize,
    max_connections: usize,
) -> bool {
    if !allow.is_empty() && !allow.iter().any(|net| net.contains(&plain_ip(peer))) {
        warn!(%peer, "refusing a connection: address not allowed");
        refuse(stream, ErrorCode::Forbidden, "this address may not connect");
        return false;
    }
    if held >= max_connections {
        warn!(%peer, max = max_connections, "refusing a connection: server full");
        refuse(
            stream,
            ErrorCode::Busy,
            "the server holds its maximum number of connections; try again later",
        );
        return false;
    }
    true
}

/// The peer's address, with an IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`)
/// given as the IPv4 address it is, so `--allow` rules for IPv4 networks apply to it.
fn plain_ip(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Tells a connection refused at the door why, if its socket takes the bytes at once; never
/// waits for it.
fn refuse(stream: &mut TcpStream, code: ErrorCode, message: &str) {
    let refusal = Response::Error {
        code,
        message: message.into(),
    };
    if let Ok(frame) = frame::encode_response(&refusal) {
        let _ = stream.write(&frame);
    }
}
