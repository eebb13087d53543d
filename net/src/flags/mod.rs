//! The server's settings as command-line flags (clap), for a program that serves a store:
//! it flattens them into its own arguments, as `p2p-store serve` does, and gets every limit
//! and access rule a later version adds. Behind the `cli` feature.

mod access;
mod limits;

pub use access::AccessFlags;
pub use limits::LimitFlags;
