//! The p2p-store wire protocol and the two ends that speak it.
//!
//! [`frame`] and [`message`] are the protocol (PROTOCOL.md describes it byte by byte);
//! [`Server`] is the peer that accepts parts, [`Client`] the blocking peer that pushes and
//! fetches them.
//!
//! Threading: the server runs one mio event loop that owns every socket and never touches the
//! disk; a reader thread answers offers, lists and gets, and a writer thread verifies and
//! commits pushed parts in groups (one sync for many parts) and wakes the loop to acknowledge
//! them. `Stored` goes out only once the part is durable. Stores are reached only through
//! [`storage::PartStore`]. The server does no side jobs: what it stores is reported as
//! [`ServerEvent`]s ([`Server::events`]) for the caller to act on, as `serve --export-dir`
//! does.

pub mod auth;
pub mod client;
pub mod frame;
mod limits;
pub mod message;
pub mod server;
pub mod transfer;

pub use client::{Client, ClientError, Outgoing, PushEvent, PushSummary};
pub use limits::Limits;
pub use server::{
    Access, BindError, ConfigError, ServeSummary, Server, ServerConfig, ServerEvent, ShutdownHandle,
};
