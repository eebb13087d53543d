//! `serve` logs from its event loop; a stderr that nobody reads must not stop it serving. The
//! server's stderr here is a pipe that is never read, so it fills after a few hundred lines,
//! and thousands of connections sending garbage each make it log a warning. An honest `send`
//! must still complete.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use storage::BackendKind;
use support::{PATIENCE, p, raise_fd_limit, random_bytes, write_files};

/// Connections that each send a frame the server refuses with a logged warning.
const BAD_CONNECTIONS: usize = 5000;

/// A child process killed and reaped when dropped, so a failing test leaves none behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to `server` from 127.0.0.3, another host as far as the server can tell, so the
/// flood does not count against the honest client's address; `None` when the connect fails
/// or takes over 5 s.
fn connect_from_another_host(server: SocketAddr) -> Option<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 0);
    socket.bind(&from.into()).ok()?;
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .ok()?;
    Some(socket.into())
}

/// Waits for a child to exit, at most [`PATIENCE`]; `None` if it did not.
fn wait_bounded(child: &mut Reaped) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_full_stderr_pipe_does_not_stop_serve() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let mut server = Reaped(
        Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(["--db", p(&db), "--backend", BackendKind::Sled.name()])
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Held open and never read: the server's writes to it fill the pipe, then would block.
    let _unread_stderr = server.0.stderr.take().unwrap();
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
        .parse()
        .unwrap();

    let started = Instant::now();
    let mut flooded = 0;
    for _ in 0..BAD_CONNECTIONS {
        if started.elapsed() > PATIENCE {
            break;
        }
        // A stalled server stops accepting; the connects then fail, and the send below tells.
        let Some(mut stream) = connect_from_another_host(addr) else {
            continue;
        };
        // Read as a length prefix, "GET " is far past the header limit: an error and a warning
        // (or, past the per-address cap, a refusal and a warning).
        if stream.write_all(b"GET / HTTP/1.1\r\n\r\n").is_ok() {
            flooded += 1;
        }
    }
    assert!(flooded > 1000, "only {flooded} bad connections got through");

    let files = write_files(
        &dir.path().join("in"),
        &[("honest.bin", random_bytes(4, 5000))],
    );
    let mut send = Reaped(
        Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(["send", "--to", &addr.to_string(), p(&files[0])])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = wait_bounded(&mut send).expect("send did not finish: serve is stuck");
    assert!(status.success(), "send failed: {status}");
    drop(server);
}
