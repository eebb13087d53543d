//! A store worker that panics must not leave connections waiting forever: the server tells
//! them it is stopping, closes them, and `run` returns an error. The store is a real
//! `MemStore` behind a wrapper that panics on one name, as sled does on some I/O errors.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use net::client::TlsStream;
use net::frame::{self, FrameError, MAX_RESPONSE_HEADER};
use net::message::{ErrorCode, MAGIC, PROTOCOL_VERSION, Request, Response};
use net::server::WorkerStopped;
use net::tls::Identity;
use net::{Server, ServerConfig};
use storage::{
    BatchOutcome, MemStore, OnConflict, PartInfo, PartName, PartStore, StoreError, StoreStats,
    VerifiedPart,
};

/// The name whose lookup or read panics.
const POISON: &str = "poison";

/// Bounds every wait of the test; only a failure ever waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `MemStore` whose reads of [`POISON`] panic.
struct Fragile(MemStore);

impl Fragile {
    fn touch(name: &PartName) {
        assert_ne!(name.as_str(), POISON, "the store cannot read {POISON}");
    }
}

impl PartStore for Fragile {
    fn put_batch(
        &self,
        parts: &[VerifiedPart],
        on_conflict: OnConflict,
    ) -> Result<BatchOutcome, StoreError> {
        self.0.put_batch(parts, on_conflict)
    }

    fn lookup(&self, name: &PartName) -> Result<Option<PartInfo>, StoreError> {
        Self::touch(name);
        self.0.lookup(name)
    }

    fn get_part(&self, name: &PartName) -> Result<VerifiedPart, StoreError> {
        Self::touch(name);
        self.0.get_part(name)
    }

    fn known_damaged(&self, held: &PartInfo) -> Result<bool, StoreError> {
        Self::touch(&held.name);
        self.0.known_damaged(held)
    }

    fn list(&self) -> Result<Vec<PartInfo>, StoreError> {
        self.0.list()
    }

    fn list_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<PartInfo>, StoreError> {
        self.0.list_page(after, limit)
    }

    fn remove(&self, name: &PartName) -> Result<bool, StoreError> {
        self.0.remove(name)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.0.sync()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.0.stats()
    }
}

/// A connection that has done the handshake.
fn greeted(addr: SocketAddr) -> TlsStream {
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let identity = Identity::generate().unwrap();
    let (mut stream, _) = net::client::secure(socket, &identity, None, PATIENCE).unwrap();
    send(
        &mut stream,
        &Request::Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            peer: "dead worker test".into(),
        },
    );
    assert!(matches!(
        receive(&mut stream),
        Some(Response::Welcome { .. })
    ));
    stream
}

fn send(stream: &mut TlsStream, request: &Request) {
    stream
        .write_all(&frame::encode_request(request).unwrap())
        .unwrap();
    stream.flush().unwrap();
}

/// The next response, `None` once the server has closed (a reset counts as a close); a read
/// timing out fails the test.
fn receive(stream: &mut TlsStream) -> Option<Response> {
    match frame::read::<Response, MAX_RESPONSE_HEADER>(stream) {
        Ok(response) => response,
        Err(FrameError::Io(err))
            if matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
            ) =>
        {
            None
        }
        Err(err) => panic!("no answer from the server: {err}"),
    }
}

/// A connection must end with `Error ShuttingDown`, or a bare close, and nothing else.
fn expect_ended(stream: &mut TlsStream) {
    match receive(stream) {
        Some(Response::Error {
            code: ErrorCode::ShuttingDown,
            ..
        }) => assert_eq!(receive(stream), None),
        None => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
}

#[test]
fn a_panicking_store_worker_ends_every_connection_and_the_run() {
    let store = Arc::new(Fragile(MemStore::new()));
    let server = Server::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap()), store).unwrap();
    let addr = server.local_addr();
    let (finished, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = finished.send(server.run());
    });

    let mut bystander = greeted(addr);
    let mut asker = greeted(addr);
    send(
        &mut asker,
        &Request::Get {
            id: 1,
            name: POISON.into(),
        },
    );
    expect_ended(&mut asker);
    expect_ended(&mut bystander);

    let err = result
        .recv_timeout(PATIENCE)
        .expect("run returned")
        .expect_err("run failed");
    let stopped = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<WorkerStopped>())
        .unwrap_or_else(|| panic!("run failed with {err}, not WorkerStopped"));
    assert!(stopped.worker.starts_with("store-reader"), "{stopped}");
}
