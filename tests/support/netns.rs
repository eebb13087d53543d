//! Network namespaces made for a test, the real binary run inside them, and `serve` there.
//! Needs root and iproute2; [`unavailable`] says why when they are missing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Namespaces made for one test; deleting a namespace deletes its end of each link.
pub struct Namespaces(Vec<String>);

impl Namespaces {
    pub fn create(names: &[String]) -> Self {
        let mut made = Self(Vec::new());
        for name in names {
            ip(&["netns", "add", name]);
            made.0.push(name.clone());
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        made
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A `serve` inside a namespace, stopped when dropped.
pub struct Served {
    pub child: Child,
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moves the calling thread into `namespace`: the sockets it opens from then on are there.
/// The rest of the process stays where it was.
pub fn enter(namespace: &str) {
    use std::os::fd::AsRawFd;
    let handle = std::fs::File::open(format!("/var/run/netns/{namespace}")).unwrap();
    // SAFETY: setns only reads the descriptor, which is open for the call.
    let entered = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Makes every address of the IPv6 `prefix` one of `namespace`'s own, as if a host there had
/// the whole prefix (as an IPv6 host has its /64).
pub fn route_to_lo(namespace: &str, prefix: &str) {
    ip(&[
        "-n", namespace, "-6", "route", "add", "local", prefix, "dev", "lo",
    ]);
}

pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

/// The real binary, run inside `namespace`.
pub fn in_namespace(namespace: &str) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", namespace])
        .arg(env!("CARGO_BIN_EXE_p2p-store"));
    command
}

/// Why namespaces cannot be made here, if they cannot.
pub fn unavailable(tag: &str) -> Option<String> {
    let probe = format!("p2p-{}-{tag}-probe", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(output) if output.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            None
        }
        Ok(output) => Some(format!(
            "cannot create a network namespace (root is needed): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => Some(format!("iproute2's `ip` is not available: {err}")),
    }
}

/// `serve --listen HOST:0 EXTRA` inside `namespace`, once it says where it listens.
pub fn serve(namespace: &str, db: &Path, host: &str, extra: &[&str]) -> Served {
    let mut child = in_namespace(namespace)
        .args(["-q", "--db"])
        .arg(db)
        .args(["serve", "--listen", &format!("{host}:0")])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .trim()
        .to_owned();
    Served { child, addr }
}
