//! Writes to a socket that never raise SIGPIPE. std's `TcpStream` (and mio's) send single
//! buffers with `MSG_NOSIGNAL` but vectored ones with `writev`, which raises SIGPIPE when the
//! peer has gone; rustls writes its records vectored, and the command line restores SIGPIPE's
//! default action (so `p2p-store list | head` ends quietly), which would make a peer that
//! vanishes kill the process instead of failing the connection.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;

/// Buffers handed to one `sendmsg` at most (Linux's `IOV_MAX`).
const MAX_IOV: usize = 1024;

/// Sends `bufs` in one `sendmsg` with `MSG_NOSIGNAL`.
fn send_vectored(socket: &impl AsRawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix; sendmsg only reads the buffers.
    message.msg_iov = bufs.as_ptr().cast_mut().cast();
    message.msg_iovlen = bufs.len().min(MAX_IOV) as _;
    // SAFETY: the message points at `bufs`, alive and unchanged for the call; the descriptor
    // is open while `socket` is borrowed.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const message, libc::MSG_NOSIGNAL) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

/// A borrowed socket as a writer whose every write is a `sendmsg` with `MSG_NOSIGNAL`.
pub(crate) struct NoSigPipe<'a, S>(pub(crate) &'a S);

impl<S: AsRawFd> Write for NoSigPipe<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_vectored(self.0, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send_vectored(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A client's TCP socket, read as usual and written without SIGPIPE; it derefs to the
/// `TcpStream` for timeouts, `peek` and `shutdown`.
#[derive(Debug)]
pub struct Socket(pub TcpStream);

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        NoSigPipe(&self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        NoSigPipe(&self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Deref for Socket {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl DerefMut for Socket {
    fn deref_mut(&mut self) -> &mut TcpStream {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write to a socket whose peer has gone fails with EPIPE (or a reset) rather than
    /// raising SIGPIPE, whose default action would end this test process.
    #[test]
    fn a_vanished_peer_is_an_error_not_a_signal() {
        // SAFETY: restoring a signal's default action has no preconditions.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut socket = Socket(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        drop(listener.accept().unwrap());
        let chunk = vec![0; 64 * 1024];
        let failed = (0..100).find_map(|_| {
            socket
                .write_vectored(&[IoSlice::new(&chunk), IoSlice::new(&chunk)])
                .err()
        });
        // SAFETY: as above, putting back what was there.
        unsafe { libc::signal(libc::SIGPIPE, previous) };
        assert!(failed.is_some(), "writes to a closed peer kept succeeding");
    }
}
