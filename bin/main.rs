//! The `p2p-store` command: parses arguments, calls the `storage` and `net` libraries, and
//! prints what they report.
//!
//! Results go to stdout, logs and errors to stderr. Exit status: 0 when everything asked for
//! was done, 1 when anything was rejected, corrupt or failed, 2 for a usage error.

mod cli;
mod completions;
mod demo;
mod export;
mod fetch;
mod gc;
mod id;
mod import;
mod list;
mod logging;
mod open;
mod peer;
mod peers;
mod recover;
mod remove;
mod report;
mod send;
mod serve;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Whether a command did everything it was asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Done,
    SomeFailed,
}

impl Status {
    fn from_failures(failures: usize) -> Self {
        if failures == 0 {
            Self::Done
        } else {
            Self::SomeFailed
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    if !serving {
        quiet_on_closed_stdout();
    }
    let _logs = logging::init(cli.verbose, cli.quiet, serving);
    if let Err(err) = peer::load(cli.key_file.as_deref(), &cli.db, cli.plaintext_on_loopback) {
        eprintln!("error: {err:#}");
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Command::Import(args) => import::run(&cli.db, cli.backend, args),
        Command::List(args) => list::run(&cli.db, cli.backend, args),
        Command::Export(args) => export::run(&cli.db, cli.backend, args),
        Command::Verify(args) => verify::run(&cli.db, cli.backend, args),
        Command::Remove(args) => remove::run(&cli.db, cli.backend, args),
        Command::Gc(args) => gc::run(&cli.db, cli.backend, args),
        Command::Id(args) => id::run(&cli.db, cli.backend, args),
        Command::Recover(_) => recover::run(&cli.db),
        Command::Serve(args) => serve::run(&cli.db, cli.backend, args),
        Command::Send(args) => send::run(&cli.db, cli.backend, args),
        Command::Fetch(args) => fetch::run(&cli.db, cli.backend, args),
        Command::Peers(args) => peers::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Completions(args) => completions::run(args),
    };
    match result {
        Ok(Status::Done) => ExitCode::SUCCESS,
        Ok(Status::SomeFailed) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Lets a closed stdout (`p2p-store list | head`) end the command quietly, as it ends `ls` or
/// `cat`: the default action of SIGPIPE, which Rust programs otherwise ignore. Sockets are
/// not affected (they are written with MSG_NOSIGNAL); `serve` keeps ignoring it all the same.
fn quiet_on_closed_stdout() {
    // SAFETY: restoring a signal's default action has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
