//! The programs a cycle runs on the store, each until it ends or the power cut kills it, with
//! what each acknowledged: `serve` taking a push from the library client, and `remove` and
//! `import --replace` run as the CLI.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use net::transfer::{Dialer, Outcome, TransferEvent, push_files};
use storage::{BackendKind, FileSource, PartName};
use tempfile::NamedTempFile;

use super::ledger::CHUNK;
use crate::support::PATIENCE;

/// What one program did before it ended.
#[derive(Debug, Default)]
pub struct Ran {
    /// Names acknowledged: stored (or already had) by a push or an import, replaced, removed.
    pub acked: Vec<String>,
    /// Names refused, with why.
    pub rejected: Vec<String>,
    /// How it ended, when not as it should have: why the push stopped, a failing exit.
    pub failure: Option<String>,
    /// What it logged.
    pub log: String,
}

/// Serves the store and pushes `files` (name, path) to it with the library client, chunked
/// at [`CHUNK`]; serve is killed when the push ends, if the cut has not killed it already.
pub fn push(db: &Path, backend: BackendKind, files: &[(String, PathBuf)]) -> Ran {
    let mut ran = Ran::default();
    let mut serving = Process::spawn(&serve_args(db, backend));
    let Some(addr) = serving.listening() else {
        ran.failure = Some(format!(
            "serve stopped before it listened: {}",
            serving.end()
        ));
        ran.log = serving.log();
        return ran;
    };
    let sources: Vec<FileSource> = files
        .iter()
        .map(|(name, path)| FileSource::named(path, PartName::new(name.clone()).unwrap()))
        .collect();
    let pushed = Dialer::new("power-cut test")
        .timeout(PATIENCE)
        .dial(&addr)
        .map_err(|err| err.to_string())
        .and_then(|mut client| {
            push_files(&mut client, &sources, CHUNK, &mut |event| {
                if let TransferEvent::Settled { name, outcome } = event {
                    match outcome {
                        Outcome::Stored | Outcome::AlreadyHad | Outcome::Repaired => {
                            ran.acked.push(name);
                        }
                        Outcome::Rejected(reason) => ran.rejected.push(format!("{name}: {reason}")),
                    }
                }
            })
            .map_err(|err| err.to_string())
        });
    if let Err(err) = pushed {
        ran.failure = Some(format!("the push stopped: {err}; serve {}", serving.now()));
    }
    serving.kill();
    ran.log = serving.log();
    ran
}

fn serve_args(db: &Path, backend: BackendKind) -> Vec<String> {
    let mut args = global(db, backend);
    args.extend(["serve", "--listen", "127.0.0.1:0"].map(String::from));
    args
}

/// `p2p-store --db DB --backend BACKEND ARGS` to its end: the names on the lines that
/// start with one of `acks` (`"removed"`, `"replaced"`, ...) are the acknowledged ones.
pub fn cli(db: &Path, backend: BackendKind, args: &[String], acks: &[&str]) -> Ran {
    let mut all = global(db, backend);
    all.extend(args.iter().cloned());
    let mut process = Process::spawn(&all);
    let ended = process.end();
    let mut ran = Ran::default();
    for line in process.lines() {
        let acked = acks
            .iter()
            .find_map(|verb| line.strip_prefix(verb)?.strip_prefix(' '));
        match (acked, line.strip_prefix("rejected ")) {
            (Some(rest), _) => {
                let name = rest.split(' ').next().unwrap_or_default();
                ran.acked.push(name.to_owned());
            }
            (None, Some(rejected)) => ran.rejected.push(rejected.to_owned()),
            (None, None) => {}
        }
    }
    if !ended.success() {
        ran.failure = Some(format!("{} {ended}", args[0]));
    }
    ran.log = process.log();
    ran
}

fn global(db: &Path, backend: BackendKind) -> Vec<String> {
    vec![
        "--db".into(),
        db.to_str().expect("a UTF-8 path").into(),
        "--backend".into(),
        backend.name().into(),
    ]
}

/// A child `p2p-store`, killed and reaped on drop, its stdout read by a thread (so no read
/// can outlast the child) and its stderr kept in a file.
struct Process {
    child: Option<Child>,
    lines: Receiver<String>,
    log: NamedTempFile,
}

impl Process {
    fn spawn(args: &[String]) -> Self {
        let log = NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            lines,
            log,
        }
    }

    /// serve's address, once it says it listens; `None` if it ends first, or takes longer
    /// than [`PATIENCE`].
    fn listening(&mut self) -> Option<String> {
        let line = self.lines.recv_timeout(PATIENCE).ok()?;
        Some(line.strip_prefix("listening on ")?.to_owned())
    }

    /// The lines of stdout not read yet, once the child has ended.
    fn lines(&mut self) -> Vec<String> {
        self.lines.iter().collect()
    }

    /// Waits for the end, at most [`PATIENCE`], then kills.
    fn end(&mut self) -> Ended {
        let Some(mut child) = self.child.take() else {
            return Ended::Reaped;
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Ended::Status(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ended::Hung;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How the child is doing, without waiting.
    fn now(&mut self) -> String {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Ended::Status(status).to_string(),
            Some(Ok(None)) => "was still running".into(),
            _ => Ended::Reaped.to_string(),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a child ended.
enum Ended {
    Status(ExitStatus),
    Hung,
    Reaped,
}

impl Ended {
    fn success(&self) -> bool {
        matches!(self, Self::Status(status) if status.success())
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status) => match status.signal() {
                Some(signal) => write!(f, "was killed by signal {signal}"),
                None => write!(f, "exited with {status}"),
            },
            Self::Hung => write!(f, "did not end within {PATIENCE:?}"),
            Self::Reaped => write!(f, "had ended"),
        }
    }
}
