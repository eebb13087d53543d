//! The command line surface: global options and one subcommand per file.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use storage::{BackendKind, FileSource, PartName};

use crate::{
    completions, demo, export, fetch, gc, id, import, list, peers, recover, remove, send, serve,
    verify,
};

/// Keep file parts in an embedded database and exchange them with other peers, verified.
#[derive(Debug, Parser)]
#[command(name = "p2p-store", version)]
pub struct Cli {
    /// The store to use; created on first use.
    #[arg(
        long,
        global = true,
        default_value = "./p2p-store.db",
        value_name = "PATH"
    )]
    pub db: PathBuf,

    /// Backend for a new store: sled (default) or fs. An existing store keeps its own.
    #[arg(long, global = true, value_name = "sled|fs")]
    pub backend: Option<BackendKind>,

    /// A group key file (16 bytes or more, e.g. from `head -c 32 /dev/urandom`) that both ends
    /// of every connection must prove they hold, inside TLS: every peer holding it is trusted.
    #[arg(long, global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Benchmarks only: frames without TLS, refused off loopback and with a key or --trust.
    #[arg(long, global = true, hide = true)]
    pub plaintext_on_loopback: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output on stderr (-q errors only, -qq nothing).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The size of the chunks a large file is cut into.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PartSize {
    /// Files larger than this many bytes are stored as chunks of this size plus a manifest.
    #[arg(
        long = "part-size",
        value_name = "BYTES",
        default_value_t = storage::DEFAULT_CHUNK_SIZE,
        value_parser = clap::value_parser!(u64).range(1..=storage::MAX_PART_SIZE),
    )]
    pub bytes: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Import(import::Args),
    List(list::Args),
    Export(export::Args),
    Verify(verify::Args),
    Remove(remove::Args),
    Gc(gc::Args),
    Id(id::Args),
    Recover(recover::Args),
    Serve(serve::Args),
    Send(send::Args),
    Fetch(fetch::Args),
    Peers(peers::Args),
    Demo(demo::Args),
    Completions(completions::Args),
}

/// The files to import or send, `name` applying to the one file given; a usage error (exit 2)
/// when it is given with several.
pub fn sources(files: Vec<PathBuf>, name: Option<PartName>) -> Vec<FileSource> {
    match name {
        Some(name) if files.len() == 1 => vec![FileSource::named(&files[0], name)],
        Some(_) => Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--name takes exactly one FILE",
            )
            .exit(),
        None => files.into_iter().map(FileSource::new).collect(),
    }
}
