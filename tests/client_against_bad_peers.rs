//! The client facing peers that break the protocol or go silent: a fake peer in the test
//! speaks just enough of the protocol over a real socket on 127.0.0.1, and the client must
//! fail with a clear error, soon, and without growing.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use net::frame::{self, MAX_REQUEST_HEADER};
use net::message::{PROTOCOL_VERSION, Request, Response, WireEntry};
use net::{Client, ClientError};
use storage::PartKind;

/// Longest a fake peer serves one connection.
const PATIENCE: Duration = Duration::from_secs(20);

/// Most requests a fake peer answers: a client that keeps asking past this has already failed.
const MAX_ANSWERS: usize = 100_000;

/// A peer on 127.0.0.1 that accepts one connection, welcomes it, and answers each request
/// with `answer` until the client leaves; from the first `None` on it answers nothing more.
fn fake_peer(
    answer: impl Fn(Request) -> Option<Response> + Send + 'static,
) -> (String, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let identity = net::tls::Identity::generate().unwrap();
        let (mut stream, _) = net::tls::accept(socket, &identity).unwrap();
        let mut answered = 0;
        while answered < MAX_ANSWERS {
            let Ok(Some(request)) = frame::read::<Request, MAX_REQUEST_HEADER>(&mut stream) else {
                break;
            };
            let response = match request {
                Request::Hello { .. } => Response::Welcome {
                    version: PROTOCOL_VERSION,
                    peer: "fake".into(),
                    max_part_size: 1024,
                    max_in_flight: 8,
                },
                other => match answer(other) {
                    Some(response) => response,
                    None => {
                        let _ = stream.read_to_end(&mut Vec::new());
                        break;
                    }
                },
            };
            let bytes = frame::encode_response(&response).unwrap();
            let sent = std::io::Write::write_all(&mut stream, &bytes)
                .and_then(|()| std::io::Write::flush(&mut stream));
            if sent.is_err() {
                break;
            }
            answered += 1;
        }
        answered
    });
    (addr, thread)
}

fn entry(name: &str) -> WireEntry {
    WireEntry {
        name: name.into(),
        hash: [0; 32],
        size: 1,
        kind: PartKind::Plain,
    }
}

fn list_error(answer: impl Fn(Request) -> Option<Response> + Send + 'static) -> String {
    let (addr, peer) = fake_peer(answer);
    let mut client = Client::connect(&addr, "test", Duration::from_secs(5)).unwrap();
    let err = client.list().expect_err("an endless listing must fail");
    drop(client);
    let answered = peer.join().unwrap();
    assert!(answered < 10, "the client asked {answered} times");
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    err.to_string()
}

#[test]
fn a_peer_whose_pages_repeat_forever_is_a_protocol_error() {
    let message = list_error(|request| match request {
        Request::List { id, .. } => Some(Response::Page {
            id,
            parts: vec![entry("a")],
            next: Some("a".into()),
        }),
        other => panic!("unexpected {other:?}"),
    });
    assert!(message.contains("names must increase"), "{message}");
}

#[test]
fn a_peer_whose_empty_pages_never_end_is_a_protocol_error() {
    let message = list_error(|request| match request {
        Request::List { id, after, .. } => Some(Response::Page {
            id,
            parts: Vec::new(),
            next: Some(format!("{}z", after.unwrap_or_default())),
        }),
        other => panic!("unexpected {other:?}"),
    });
    assert!(message.contains("does not advance"), "{message}");
}

#[test]
fn a_page_whose_names_go_backwards_is_a_protocol_error() {
    let message = list_error(|request| match request {
        Request::List { id, .. } => Some(Response::Page {
            id,
            parts: vec![entry("b"), entry("a")],
            next: None,
        }),
        other => panic!("unexpected {other:?}"),
    });
    assert!(message.contains("names must increase"), "{message}");
}

/// A peer that accepts and never writes: the handshake times out, and says so.
#[test]
fn a_peer_that_never_answers_is_reported_as_timed_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = std::thread::spawn(move || {
        let (mut stream, _): (TcpStream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        // Reads what the client sends, answers nothing, and ends when the client leaves.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    let timeout = Duration::from_secs(1);
    let err = match Client::connect(&addr, "test", timeout) {
        Ok(_) => panic!("a silent peer cannot complete a handshake"),
        Err(err) => err,
    };
    assert!(
        matches!(err, ClientError::TimedOut { after } if after == timeout),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the peer did not answer within 1s");
    silent.join().unwrap();
}

/// A peer that welcomes, then goes silent in the middle of a conversation.
#[test]
fn a_peer_that_stops_answering_after_the_handshake_is_reported_as_timed_out() {
    let (addr, peer) = fake_peer(|_| None);
    let mut client = Client::connect(&addr, "test", Duration::from_secs(1)).unwrap();
    let err = client.list().expect_err("a silent peer cannot list");
    assert!(matches!(err, ClientError::TimedOut { .. }), "{err:?}");
    drop(client);
    assert_eq!(peer.join().unwrap(), 1, "only the handshake was answered");
}
