//! Transfers: moving files and parts between a store and its peers, over [`Client`]s.
//!
//! - [`push_files`] sends local files (large ones chunk by chunk, never whole), and
//!   [`push_store`] a store's parts; the peer is offered each part first, so what it holds is
//!   never sent and a push repeated after an interruption sends only what is missing.
//! - [`pull`] brings parts and files from one or more peers into a store: the peers are matched
//!   on (name, hash), different chunks come from each at once, a peer that fails, stalls or sends
//!   bytes that fail their hash is dropped, and a file's manifest is stored only once its
//!   chunks are held and the file checks out whole.
//! - [`repair`] heals a store: what `verify` found damaged or gone is fetched again from peers
//!   by (name, hash) and stored over the damaged bodies.
//! - [`mirror`] keeps a store a superset of a peer's, following what the peer newly stores.
//! - [`list_files`] describes what a peer holds, files with their own size and hash, and
//!   [`export_from`] writes a peer's files out without a store of one's own.
//!
//! Each reports what happens to an [`Observer`] (progress bars, logs, tests) and returns totals.
//!
//! [`Client`]: crate::Client

mod dial;
mod error;
mod export_from;
mod listing;
mod mirror;
mod observe;
mod pull;
mod push;
mod repair;
mod store_pages;
mod swarm;

pub use dial::Dialer;
pub use error::TransferError;
pub use export_from::export_from;
pub use listing::list_files;
pub use mirror::{Mirror, mirror};
pub use observe::{Observer, Outcome, Tally, TransferEvent};
pub use pull::{PullReport, pull};
pub use push::{PushReport, push_files, push_store};
pub use repair::{RepairReport, Unhealed, repair};
