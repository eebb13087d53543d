//! What the network tests share: running the real binary, a running `serve` that is always
//! stopped, and a hand-driven peer that speaks the wire protocol frame by frame.

// Each test crate that includes this module uses its own share of it.
#![allow(dead_code)]

pub mod attacks;
pub mod files;
pub mod netns;
pub mod power_cut;
pub mod relay;
pub mod wiretap;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use net::client::{ClientError, TlsStream};
use net::frame::{self, FrameError, MAX_RESPONSE_HEADER};
use net::message::{ErrorCode, MAGIC, PROTOCOL_VERSION, Request, Response};
use net::tls::{Identity, PeerId};
use storage::{BackendKind, PartHash};
use tempfile::NamedTempFile;

/// How long a test waits for a peer's answer or a server's exit before calling it hung.
/// Generous on purpose: it only bounds a failure, it is never what a test measures.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const BACKENDS: [BackendKind; 2] = [BackendKind::Sled, BackendKind::Fs];

/// Set to `1` by CI (`.ci/run`), where root, tmpfs mounts and network namespaces are there:
/// a test that cannot get them then fails instead of skipping.
pub const REQUIRE_ALL: &str = "P2P_STORE_REQUIRE_ALL_TESTS";

/// Skips a test that cannot run on this machine, saying why; fails it when [`REQUIRE_ALL`]
/// says every test must run.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os(REQUIRE_ALL).is_none_or(|value| value != "1"),
        "{REQUIRE_ALL}=1, and this test cannot run: {why}"
    );
    eprintln!("skipped: {why}");
}

/// Runs `p2p-store ARGS` to completion. The working directory is a scratch one, so a command
/// that falls back to the default `--db` cannot litter the source tree.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(args)
        .output()
        .unwrap();
    Run(output)
}

/// A path as the CLI takes it; temp dirs are UTF-8.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// `p2p-store send --to SERVER FILES... [--json]`
pub fn send(server: &Server, paths: &[impl AsRef<Path>], json: bool) -> Run {
    let mut args = vec!["send".to_owned(), "--to".to_owned(), server.at()];
    args.extend(paths.iter().map(|path| p(path.as_ref()).to_owned()));
    if json {
        args.push("--json".into());
    }
    run(args)
}

/// `p2p-store list --from SERVER --json`, each entry's `peer_id` checked and taken out, so it
/// compares with a local listing.
pub fn list_from(server: &Server) -> serde_json::Value {
    without_peer_ids(run(["list", "--from", &server.at(), "--json"]).ok().json())
}

/// A remote listing without the `peer_id` every entry carries: all one valid ID.
pub fn without_peer_ids(mut listing: serde_json::Value) -> serde_json::Value {
    let mut ids = BTreeSet::new();
    for entry in listing.as_array_mut().expect("a listing is an array") {
        let id = entry.as_object_mut().unwrap().remove("peer_id");
        let id = id.as_ref().and_then(serde_json::Value::as_str);
        let id = id.unwrap_or_else(|| panic!("no peer ID in {entry}"));
        ids.insert(id.parse::<PeerId>().expect("a peer ID").to_string());
    }
    assert!(ids.len() <= 1, "entries of one peer with IDs {ids:?}");
    listing
}

/// `p2p-store --db DB list --json`
pub fn list_local(db: &Path) -> serde_json::Value {
    run(["--db", p(db), "list", "--json"]).ok().json()
}

/// The names in a `list --json` output.
pub fn names_in(listing: &serde_json::Value) -> BTreeSet<String> {
    listing
        .as_array()
        .expect("a listing is an array")
        .iter()
        .map(|entry| entry["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited, not killed")
    }

    pub fn stdout(&self) -> String {
        String::from_utf8(self.0.stdout.clone()).unwrap()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", self.stdout()))
    }

    /// The `--json` tally of a `send`, without its `peer_id` (checked to be an ID first).
    pub fn tally(&self) -> serde_json::Value {
        let mut json = self.json();
        let id = json.as_object_mut().unwrap().remove("peer_id");
        let id = id
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        assert!(
            id.parse::<PeerId>().is_ok(),
            "no peer ID in {}",
            self.stdout()
        );
        json
    }

    pub fn ok(self) -> Self {
        self.fails(0)
    }

    pub fn fails(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// A running `p2p-store serve`. Dropping it kills the process (SIGKILL) and reaps it, so a
/// failing test never leaves a server behind; [`Server::stop`] is the graceful way out.
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    /// Where the server's stderr goes: a file never fills up and blocks the server.
    log: NamedTempFile,
    /// Held open so a late write to stdout cannot fail for want of a reader; the lines after
    /// `listening on` are read from it ([`Server::next_line`]).
    stdout: BufReader<ChildStdout>,
}

/// Starts `p2p-store --db DB --backend BACKEND serve --listen 127.0.0.1:0 EXTRA` and waits for
/// its `listening on` line.
pub fn start_server(db: &Path, backend: BackendKind, extra: &[&str]) -> Server {
    start_server_at(db, backend, "127.0.0.1:0", extra)
}

/// [`start_server`] listening on `listen`: a server started again where its peers look for it.
pub fn start_server_at(db: &Path, backend: BackendKind, listen: &str, extra: &[&str]) -> Server {
    let command = Command::new(env!("CARGO_BIN_EXE_p2p-store"));
    launch(command, db, backend, listen, extra)
}

/// The value of the metric `name` on the web view's `/metrics`, read over a plain socket.
pub fn metric(url: &str, name: &str) -> u64 {
    let host = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}:\n{text}"));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A port nothing listens on now, for a server that must be started where peers already
/// look for it.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Raises this test process's soft open-file limit to its hard limit, for tests that hold
/// thousands of sockets.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// [`start_server`] in a process limited to `fds` open files, soft and hard, as `ulimit -n`
/// sets them; the server is still the process the guard stops or kills.
pub fn start_server_with_fd_limit(
    db: &Path,
    backend: BackendKind,
    extra: &[&str],
    fds: u32,
) -> Server {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_p2p-store"));
    launch(shell, db, backend, "127.0.0.1:0", extra)
}

/// [`start_server_at`] inside a network namespace made for the test.
pub fn start_server_in_namespace(namespace: &str, db: &Path, listen: &str) -> Server {
    launch(
        netns::in_namespace(namespace),
        db,
        BackendKind::Sled,
        listen,
        &[],
    )
}

fn launch(
    mut command: Command,
    db: &Path,
    backend: BackendKind,
    listen: &str,
    extra: &[&str],
) -> Server {
    let log = NamedTempFile::new().unwrap();
    let mut child = command
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .arg("--db")
        .arg(db)
        .args(["--backend", backend.name(), "serve", "--listen", listen])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(log.path()).unwrap_or_default();
        panic!("serve did not start ({status}); stdout: {line:?}\nstderr:\n{log}");
    };
    Server {
        addr: addr.parse().unwrap(),
        child: Some(child),
        log,
        stdout,
    }
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as the CLI's `--to`/`--from` take it.
    pub fn at(&self) -> String {
        self.addr.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The next line the server prints on stdout after `listening on` (`http on URL`, ...).
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// The web view's base URL, from the line `serve --http` prints after `listening on`.
    pub fn http_url(&mut self) -> String {
        let line = self.next_line();
        let url = line
            .strip_prefix("http on ")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        url.to_owned()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// What the server logged, once a line of it passes `wanted` (10 s at most): the log is
    /// written by a thread of its own, after the event it tells of.
    pub fn log_with(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.lines().any(&wanted) || std::time::Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Asks for a graceful stop with SIGTERM and checks the server exits with status 0.
    pub fn stop(mut self) {
        signal(self.pid(), "-TERM");
        let status = self.reap();
        assert!(
            status.success(),
            "serve exited with {status} on SIGTERM; stderr:\n{}",
            self.log()
        );
    }

    /// Kills the server with SIGKILL, as a crash would stop it. (Not a power cut: what the
    /// server wrote is still in the kernel, so this checks what `Stored` waits for, not fsync.)
    pub fn kill(mut self) {
        signal(self.pid(), "-KILL");
        self.reap();
    }

    /// Waits for the process to end, at most [`PATIENCE`]; std has no timed wait, so it polls.
    fn reap(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("not reaped yet");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not exit in time; stderr:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is SIGKILL by pid; unlike `signal`, it never panics in a drop.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (as `kill` takes it: "-TERM", "-KILL") to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// A peer driven by hand, one frame at a time, over TLS on a blocking socket, showing a
/// one-time identity. A refusal the server sends in plaintext before TLS (its address rules,
/// a full server) is kept and given as the first response.
pub struct RawPeer {
    stream: Option<Box<TlsStream>>,
    refusal: Option<Response>,
}

impl RawPeer {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::secure(TcpStream::connect(addr).unwrap(), None)
    }

    /// Connects as `identity` does, requiring the server's ID to be `pin` when given.
    pub fn connect_as(addr: SocketAddr, identity: &Identity, pin: Option<PeerId>) -> Self {
        Self::secure_as(TcpStream::connect(addr).unwrap(), identity, pin)
    }

    /// Connects from `source`, another address of this machine (any of 127.0.0.0/8, or an
    /// IPv6 prefix routed to `lo`), as a second host would.
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Self {
        Self::secure(plain_from(source, addr), None)
    }

    fn secure(socket: TcpStream, pin: Option<PeerId>) -> Self {
        Self::secure_as(socket, &Identity::generate().unwrap(), pin)
    }

    fn secure_as(socket: TcpStream, identity: &Identity, pin: Option<PeerId>) -> Self {
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        socket.set_write_timeout(Some(PATIENCE)).unwrap();
        match net::client::secure(socket, identity, pin, PATIENCE) {
            Ok((stream, _)) => Self {
                stream: Some(Box::new(stream)),
                refusal: None,
            },
            Err(ClientError::Refused { code, message }) => Self {
                stream: None,
                refusal: Some(Response::Error { code, message }),
            },
            // Closed at the door without a word.
            Err(ClientError::Io(err)) if is_closed(&err) => Self {
                stream: None,
                refusal: None,
            },
            Err(err) => panic!("no TLS with the server: {err}"),
        }
    }

    /// A peer that has done the handshake, on a socket whose receive buffer is as small as the
    /// kernel allows: what it does not read stays with the server, not in the kernel.
    pub fn greeted_reading_little(addr: SocketAddr) -> Self {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect_timeout(&addr.into(), PATIENCE).unwrap();
        let mut peer = Self::secure(TcpStream::from(socket), None);
        peer.hello();
        peer
    }

    /// A peer that has done the handshake.
    pub fn greeted(addr: SocketAddr) -> Self {
        let mut peer = Self::connect(addr);
        peer.hello();
        peer
    }

    fn tls(&mut self) -> &mut TlsStream {
        self.stream
            .as_mut()
            .expect("the server refused the connection before TLS")
    }

    /// Sends a request's frame; for a `Body`, `body` are the bytes after its header.
    pub fn send(&mut self, request: &Request, body: &[u8]) {
        let mut frame = frame::encode_request(request).unwrap();
        frame.extend_from_slice(body);
        self.send_raw(&frame);
    }

    /// Writes bytes as they are. The server may close on the first bad byte, so a reset or a
    /// broken pipe is not a failure here: the reading side tells what happened.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let Some(tls) = self.stream.as_mut() else {
            return;
        };
        match tls.write_all(bytes).and_then(|()| tls.flush()) {
            Ok(()) => {}
            Err(err) if is_closed(&err) => {}
            Err(err) => panic!("cannot write to the server: {err}"),
        }
    }

    /// A second handle on the connection's socket, for reading its raw bytes elsewhere; the
    /// connection stays open until both are dropped.
    pub fn socket(&self) -> TcpStream {
        let tls = self.stream.as_ref().expect("a connection the server took");
        tls.sock.try_clone().unwrap()
    }

    /// Gives up on a write after `timeout`, so an attacker the server stops reading does not
    /// wait for it forever.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        if let Some(tls) = self.stream.as_mut() {
            tls.sock.set_write_timeout(Some(timeout)).unwrap();
        }
    }

    /// Writes as much of `bytes` as the server takes before the write timeout; returns how
    /// much that was (what TLS took: its buffer holds a little more than the socket did).
    pub fn send_until_blocked(&mut self, bytes: &[u8]) -> usize {
        let Some(tls) = self.stream.as_mut() else {
            return 0;
        };
        let mut written = 0;
        loop {
            while tls.conn.wants_write() {
                match tls.conn.write_tls(&mut tls.sock) {
                    Ok(_) => {}
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) if is_closed(&err) || is_timeout(&err) => return written,
                    Err(err) => panic!("cannot write to the server: {err}"),
                }
            }
            if written == bytes.len() {
                return written;
            }
            match tls.conn.writer().write(&bytes[written..]) {
                Ok(0) => return written,
                Ok(count) => written += count,
                Err(err) => panic!("cannot write to the server: {err}"),
            }
        }
    }

    /// Whether the server has sent something not yet read, without waiting for it.
    pub fn has_waiting_bytes(&mut self) -> bool {
        let Some(tls) = self.stream.as_mut() else {
            return self.refusal.is_some();
        };
        tls.sock.set_nonblocking(true).unwrap();
        let waiting = match tls.sock.peek(&mut [0]) {
            Ok(read) => read > 0,
            Err(err) if err.kind() == ErrorKind::WouldBlock => false,
            Err(err) if is_closed(&err) => true,
            Err(err) => panic!("cannot look at the connection: {err}"),
        };
        tls.sock.set_nonblocking(false).unwrap();
        waiting
    }

    /// Closes the sending side, as a client that has said all it has to say.
    pub fn finish_sending(&mut self) {
        let tls = self.tls();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        tls.sock.shutdown(std::net::Shutdown::Write).unwrap();
    }

    /// The next response, or `None` once the server has closed the connection.
    pub fn receive(&mut self) -> Option<Response> {
        if let Some(refusal) = self.refusal.take() {
            return Some(refusal);
        }
        let tls = self.stream.as_mut()?;
        match frame::read::<Response, MAX_RESPONSE_HEADER>(tls) {
            Ok(response) => response,
            Err(FrameError::Io(err)) if is_closed(&err) => None,
            Err(err) => panic!("no valid response from the server: {err}"),
        }
    }

    /// The next response, which must come.
    pub fn expect(&mut self) -> Response {
        self.receive().expect("the server closed the connection")
    }

    /// Does the handshake a well-behaved client does.
    pub fn hello(&mut self) {
        self.send(&hello(PROTOCOL_VERSION), &[]);
        match self.expect() {
            Response::Welcome { version, .. } => assert_eq!(version, PROTOCOL_VERSION),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Expects the connection-ending `Error` with `code`, then the close; returns its message.
    pub fn expect_error_then_close(&mut self, code: ErrorCode) -> String {
        let message = match self.expect() {
            Response::Error { code: got, message } if got == code => message,
            other => panic!("expected Error {code:?}, got {other:?}"),
        };
        self.expect_closed();
        message
    }

    /// Expects request `id` to be answered `Rejected` with `code`.
    pub fn expect_rejected(&mut self, id: u64, code: ErrorCode) {
        match self.expect() {
            Response::Rejected {
                id: got,
                code: got_code,
                ..
            } if got == id && got_code == code => {}
            other => panic!("expected request {id} Rejected with {code:?}, got {other:?}"),
        }
    }

    pub fn expect_closed(&mut self) {
        if let Some(response) = self.receive() {
            panic!("expected the server to close the connection, got {response:?}");
        }
    }
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}

/// A plain socket to `addr` from `source`, another address of this machine.
pub fn plain_from(source: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    if source.is_ipv6() {
        // An address of a prefix routed to `lo` is this machine's, but IPv6 binds only to
        // addresses configured one by one unless told otherwise.
        socket.set_freebind_v6(true).unwrap();
    }
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect_timeout(&addr.into(), PATIENCE).unwrap();
    TcpStream::from(socket)
}

pub fn hello(version: u16) -> Request {
    Request::Hello {
        magic: MAGIC,
        version,
        peer: "net test".into(),
    }
}

/// An offer of `bytes` under `name`, as an honest client makes it.
pub fn offer(id: u64, name: &str, bytes: &[u8]) -> Request {
    Request::Offer {
        id,
        name: name.into(),
        hash: *PartHash::of(bytes).as_bytes(),
        size: bytes.len() as u64,
        kind: storage::PartKind::Plain,
    }
}

pub fn body(id: u64, bytes: &[u8]) -> Request {
    Request::Body {
        id,
        size: bytes.len() as u64,
    }
}

pub fn total_len(files: &[(&str, Vec<u8>)]) -> usize {
    files.iter().map(|(_, bytes)| bytes.len()).sum()
}

pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    fastrand::Rng::with_seed(seed).fill(&mut bytes);
    bytes
}

/// Writes each `(name, bytes)` as `dir/name` and returns the paths, in order.
pub fn write_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    files
        .iter()
        .map(|(name, bytes)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// The `list --json` entries `files` should produce, sorted by name as a listing is, when they
/// were stored with the default part size.
pub fn expected_listing(files: &[(&str, Vec<u8>)]) -> serde_json::Value {
    expected_listing_in_parts(files, storage::DEFAULT_CHUNK_SIZE)
}

/// [`expected_listing`] for files stored with `--part-size PART_SIZE`: a file larger than that
/// is listed whole, with its number of chunks as "parts".
pub fn expected_listing_in_parts(files: &[(&str, Vec<u8>)], part_size: u64) -> serde_json::Value {
    let mut entries: Vec<_> = files
        .iter()
        .map(|(name, bytes)| {
            let mut entry = serde_json::json!({
                "name": name,
                "size": bytes.len(),
                "hash": PartHash::of(bytes).to_hex(),
            });
            let size = bytes.len() as u64;
            if size > part_size {
                entry["parts"] = size.div_ceil(part_size).into();
            }
            entry
        })
        .collect();
    entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    serde_json::Value::Array(entries)
}
