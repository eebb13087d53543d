//! The server as a Rust program uses it, in-process on 127.0.0.1:0: the events it reports,
//! the settings its constructor refuses, and one-name lookups through the client.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use net::tls::Identity;
use net::transfer::Dialer;
use net::{
    BindError, Client, ConfigError, Limits, Outgoing, ServeSummary, Server, ServerConfig,
    ServerEvent, ShutdownHandle,
};
use storage::{MemStore, PartKind, PartName, PartStore, VerifiedPart};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config() -> ServerConfig {
    ServerConfig::new("127.0.0.1:0".parse().unwrap()).with_peer_name("test")
}

fn start(
    server: Server,
) -> (
    String,
    ShutdownHandle,
    JoinHandle<std::io::Result<ServeSummary>>,
) {
    let addr = server.local_addr().to_string();
    let stop = server.shutdown_handle();
    (addr, stop, std::thread::spawn(move || server.run()))
}

fn part(name: &str, bytes: &[u8]) -> VerifiedPart {
    VerifiedPart::hashing(PartName::new(name).unwrap(), bytes.to_vec()).unwrap()
}

#[test]
fn every_stored_part_is_reported_once_with_its_kind_size_and_pusher_and_the_channel_closes() {
    let store: Arc<dyn PartStore> = Arc::new(MemStore::new());
    let mut server = Server::bind(config(), store).unwrap();
    let events = server.events();
    let (addr, stop, running) = start(server);
    let parts = [part("a.txt", b"hello"), part("b.bin", &[7; 3000])];
    let outgoing = parts.iter().map(|part| Outgoing {
        info: part.info(),
        bytes: Some(part.bytes().to_vec()),
    });
    let pusher = Arc::new(Identity::generate().unwrap());
    let mut client = Dialer::new("test")
        .identity(Arc::clone(&pusher))
        .timeout(TIMEOUT)
        .dial(&addr)
        .unwrap();
    let summary = client.push(outgoing, |_| unreachable!(), |_| {}).unwrap();
    assert_eq!(summary.stored, 2);
    // Pushed again: nothing new is stored, so nothing is reported.
    let again = parts.iter().map(|part| Outgoing {
        info: part.info(),
        bytes: None,
    });
    assert_eq!(
        client
            .push(again, |_| unreachable!(), |_| {})
            .unwrap()
            .already_had,
        2
    );
    drop(client);
    stop.shutdown().unwrap();
    running.join().unwrap().unwrap();
    let mut reported: Vec<ServerEvent> = events.iter().collect();
    reported.sort_by_key(|event| match event {
        ServerEvent::Stored { name, .. } => name.clone(),
        other => panic!("unexpected {other:?}"),
    });
    let expected: Vec<ServerEvent> = parts
        .iter()
        .map(|part| ServerEvent::Stored {
            name: part.name().clone(),
            kind: PartKind::Plain,
            size: part.size(),
            peer: Some(pusher.id()),
        })
        .collect();
    assert_eq!(reported, expected);
}

#[test]
fn a_server_nobody_listens_to_still_stores() {
    let store: Arc<dyn PartStore> = Arc::new(MemStore::new());
    let mut server = Server::bind(config(), Arc::clone(&store)).unwrap();
    drop(server.events());
    let (addr, stop, running) = start(server);
    let part = part("a.txt", b"hello");
    let mut client = Client::connect(&addr, "test", TIMEOUT).unwrap();
    let outgoing = [Outgoing {
        info: part.info(),
        bytes: Some(part.bytes().to_vec()),
    }];
    assert_eq!(
        client
            .push(outgoing, |_| unreachable!(), |_| {})
            .unwrap()
            .stored,
        1
    );
    stop.shutdown().unwrap();
    running.join().unwrap().unwrap();
    assert!(store.lookup(part.name()).unwrap().is_some());
}

#[test]
fn settings_a_server_cannot_run_with_are_refused_by_its_constructor() {
    let cases = [
        (
            Limits::default().with_max_part_size(storage::MAX_PART_SIZE + 1),
            ConfigError::PartSize {
                value: storage::MAX_PART_SIZE + 1,
                max: storage::MAX_PART_SIZE,
            },
        ),
        (
            Limits::default().with_max_part_size(0),
            ConfigError::PartSize {
                value: 0,
                max: storage::MAX_PART_SIZE,
            },
        ),
        (
            Limits::default().with_max_connections(0),
            ConfigError::Zero {
                name: "max_connections",
            },
        ),
        (
            Limits::default().with_max_in_flight(0),
            ConfigError::Zero {
                name: "max_in_flight",
            },
        ),
        (
            Limits::default().with_max_buffered_per_connection(0),
            ConfigError::Zero {
                name: "max_buffered_per_connection",
            },
        ),
        (
            Limits::default().with_max_memory(0),
            ConfigError::Zero { name: "max_memory" },
        ),
        (
            Limits::default().with_handshake_timeout(Duration::ZERO),
            ConfigError::Timeout {
                name: "handshake_timeout",
                min: Duration::from_secs(1),
            },
        ),
        (
            Limits::default().with_idle_timeout(Duration::from_millis(10)),
            ConfigError::Timeout {
                name: "idle_timeout",
                min: Duration::from_secs(1),
            },
        ),
    ];
    for (limits, expected) in cases {
        let store: Arc<dyn PartStore> = Arc::new(MemStore::new());
        match Server::bind(config().with_limits(limits), store) {
            Err(BindError::Config(err)) => assert_eq!(err, expected),
            Err(other) => panic!("{expected:?}: {other}"),
            Ok(_) => panic!("{expected:?} was accepted"),
        }
    }
    let store: Arc<dyn PartStore> = Arc::new(MemStore::new());
    let long_name = config().with_peer_name("n".repeat(net::server::MAX_PEER_NAME + 1));
    assert!(matches!(
        Server::bind(long_name, store),
        Err(BindError::Config(ConfigError::PeerName { .. }))
    ));
}

#[test]
fn stat_tells_what_one_name_holds_without_a_listing() {
    let store: Arc<dyn PartStore> = Arc::new(MemStore::new());
    let held = part("held.txt", b"some bytes");
    store
        .put_batch(std::slice::from_ref(&held), storage::OnConflict::Refuse)
        .unwrap();
    let server = Server::bind(config(), store).unwrap();
    let (addr, stop, running) = start(server);
    let mut client = Client::connect(&addr, "test", TIMEOUT).unwrap();
    assert_eq!(client.stat(held.name()).unwrap(), Some(held.info()));
    let missing = PartName::new("missing.txt").unwrap();
    assert_eq!(client.stat(&missing).unwrap(), None);
    // The connection goes on after both answers.
    assert_eq!(client.list().unwrap(), vec![held.info()]);
    drop(client);
    stop.shutdown().unwrap();
    running.join().unwrap().unwrap();
}
