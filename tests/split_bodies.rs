//! Bodies that arrive in pieces: whatever the sizes of the reads, a body takes exactly its own
//! bytes and the frame after it is read as a frame.

mod support;

use std::time::Duration;

use net::frame::encode_request;
use net::message::{Request, Response};
use storage::BackendKind;
use support::{RawPeer, body, offer, start_server};

/// A tiny body sent in two writes, the second carrying the next frame: the server must not read
/// past the body's end into that frame.
#[test]
fn a_body_split_across_reads_takes_only_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let mut peer = RawPeer::greeted(server.addr());
    for (id, size) in (1u64..).zip([2usize, 5, 7, 9, 70_000]) {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let name = format!("split-{size}");
        peer.send(&offer(id, &name, &bytes), &[]);
        assert_eq!(peer.expect(), Response::Want { id });
        let half = size / 2;
        let mut first = encode_request(&body(id, &bytes)).unwrap();
        first.extend_from_slice(&bytes[..half]);
        peer.send_raw(&first);
        // Separate writes, so the server reads them separately.
        std::thread::sleep(Duration::from_millis(100));
        let mut rest = bytes[half..].to_vec();
        let stat = Request::Stat {
            id: 1000 + id,
            name: name.clone(),
        };
        rest.extend(encode_request(&stat).unwrap());
        peer.send_raw(&rest);
        // The store writer and a reader answer these two; either may be first.
        let mut stored = false;
        let mut entry = None;
        for _ in 0..2 {
            match peer.expect() {
                Response::Stored { id: answered } if answered == id => stored = true,
                Response::Entry {
                    id: answered,
                    entry: found,
                } if answered == 1000 + id => {
                    entry = found;
                }
                other => panic!("expected Stored and the Stat's Entry, got {other:?}"),
            }
        }
        assert!(stored, "{name} was not stored");
        let found = entry.map(|entry| entry.size);
        assert!(
            found.is_none() || found == Some(size as u64),
            "{name}: {found:?}"
        );
    }
    server.stop();
}
