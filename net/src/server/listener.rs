//! The listening socket, tuned for bursts of connects.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::TcpListener;

/// Connections the kernel completes and queues for `accept` while the loop is busy elsewhere.
/// mio listens with std's 128: a burst of connects past that has its SYNs dropped, and each
/// dropped client waits a second to retry. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds `addr` and deepens its backlog to [`LISTEN_BACKLOG`].
///
/// # Errors
/// When the address cannot be bound or the backlog cannot be set.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    deepen_backlog(&listener)?;
    Ok(listener)
}

/// Linux takes a second `listen` on a listening socket as a new backlog.
fn deepen_backlog(listener: &TcpListener) -> io::Result<()> {
    // SAFETY: `listen` only reads its two integer arguments; the descriptor is open for as long
    // as `listener` is borrowed.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
