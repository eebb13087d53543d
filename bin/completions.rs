//! `p2p-store completions`: shell completions for the whole command line.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Status;
use crate::cli::Cli;

/// Print shell completions, e.g. `p2p-store completions bash > /etc/bash_completion.d/p2p-store`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  p2p-store completions bash > /etc/bash_completion.d/p2p-store
  p2p-store completions zsh > ~/.zfunc/_p2p-store
  p2p-store completions fish > ~/.config/fish/completions/p2p-store.fish")]
pub struct Args {
    /// The shell to complete for.
    shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "p2p-store",
        &mut std::io::stdout(),
    );
    Ok(Status::Done)
}
