//! The server's limits as flags, each defaulting to [`Limits::default`].

use std::time::Duration;

use crate::Limits;

#[derive(Debug, Clone, clap::Args)]
pub struct LimitFlags {
    /// Largest part accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_part_size)]
    max_part_size: u64,

    /// Connections held at once; more are told the server is busy.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,

    /// Connections one host (an IPv4 address, or an IPv6 /64) may hold at once; more from it
    /// are refused.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections_per_address)]
    max_connections_per_address: usize,

    /// Requests one connection may have unanswered; a client sending more is disconnected.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_in_flight)]
    max_in_flight: u32,

    /// Upload bytes queued for the store, or answer bytes unread, past which a connection is
    /// read no more until they drain.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_buffered_per_connection)]
    max_buffered: u64,

    /// Bytes held for all peers together (bodies arriving, uploads queued, answers unread).
    #[arg(long, alias = "max-queued", value_name = "BYTES", default_value_t = Limits::default().max_memory)]
    max_memory: u64,

    /// Seconds a new connection has to complete its handshake.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().handshake_timeout.as_secs())]
    handshake_timeout: u64,

    /// Seconds a connection may go without sending a whole frame (or 64 KiB of a body) while
    /// the server is not working on its requests.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
}

impl From<LimitFlags> for Limits {
    fn from(flags: LimitFlags) -> Self {
        Limits::default()
            .with_max_part_size(flags.max_part_size)
            .with_max_connections(flags.max_connections)
            .with_max_connections_per_address(flags.max_connections_per_address)
            .with_max_in_flight(flags.max_in_flight)
            .with_max_buffered_per_connection(flags.max_buffered)
            .with_max_memory(flags.max_memory)
            .with_handshake_timeout(Duration::from_secs(flags.handshake_timeout))
            .with_idle_timeout(Duration::from_secs(flags.idle_timeout))
    }
}
