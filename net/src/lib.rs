//! The p2p-store wire protocol, the two ends that speak it, and the transfers built on them.
//!
//! [`frame`] and [`message`] are the protocol (PROTOCOL.md describes it byte by byte), carried
//! over TLS 1.3 ([`tls`]: every peer has a key pair and is known by its ID, and trusts by ID
//! or by a group key);
//! [`Server`] is the peer that accepts parts, [`Client`] the blocking peer that pushes and
//! fetches them, and [`transfer`] moves files and parts between a store and its peers (push,
//! pull, one fetch from several peers at once), reporting to an observer.
//!
//! ```
//! use std::sync::Arc;
//! use net::transfer::{self, Dialer};
//! use net::{Server, ServerConfig};
//! use storage::{BackendKind, FileSource, PartName};
//!
//! let dir = tempfile::tempdir()?;
//! let open = |db: &str| storage::open_store(&dir.path().join(db), Some(BackendKind::Sled));
//! let server = Server::bind(ServerConfig::new("127.0.0.1:0".parse()?), Arc::from(open("a")?))?;
//! let (addr, stop) = (server.local_addr().to_string(), server.shutdown_handle());
//! let serving = std::thread::spawn(move || server.run());
//!
//! std::fs::write(dir.path().join("notes.txt"), b"hello")?;
//! let files = [FileSource::new(dir.path().join("notes.txt"))];
//! let dialer = Dialer::new("example");
//! transfer::push_files(&mut dialer.dial(&addr)?, &files, 1 << 20, &mut |_| {})?;
//!
//! let local = open("b")?;
//! let names = [PartName::new("notes.txt")?];
//! let pulled = transfer::pull(&dialer, &[addr], &names, local.as_ref(), &mut |_| {})?;
//! assert_eq!(pulled.tally.stored, 1);
//! assert_eq!(local.get(&names[0])?, b"hello");
//! stop.shutdown()?;
//! serving.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Threading: the server runs one mio event loop that owns every socket and never touches the disk;
//! reader threads answer offers, lists and gets, a verifier thread hashes pushed bodies (small ones
//! are verified by the loop as they arrive), and a writer thread commits them in groups (one sync
//! for many parts) and wakes the loop to acknowledge them. `Stored` goes out only once the part is
//! durable. Stores are reached only through [`storage::PartStore`]. The server does no side jobs:
//! what it stores is reported as [`ServerEvent`]s ([`Server::events`]) for the caller to act on.
//! Work that must be done before a part is acknowledged is given to it as a [`server::BeforeAck`]
//! hook, run on a thread of its own: an [`Exporter`] writes each stored file out before its
//! `Stored`, as `serve --export-dir` does.

pub mod auth;
pub mod client;
mod exporter;
#[cfg(feature = "cli")]
pub mod flags;
pub mod frame;
pub mod http;
pub mod lan;
mod limits;
pub mod message;
pub mod server;
mod socket;
pub mod tls;
pub mod transfer;

pub use client::{Client, ClientError, Outgoing, PushEvent, PushSummary};
pub use exporter::Exporter;
pub use limits::Limits;
pub use server::{
    Access, BeforeAck, BindError, ConfigError, CountersSnapshot, ServeSummary, Server,
    ServerConfig, ServerCounters, ServerEvent, ShutdownHandle,
};
pub use socket::Socket;
