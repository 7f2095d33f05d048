//! `tls-mailer completions SHELL`: a completion script generated from the
//! clap definitions, so it never falls behind the flags.

use std::io;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::exit::Failure;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Install, e.g.:
    /// `tls-mailer completions bash > ~/.local/share/bash-completion/completions/tls-mailer`.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the script for `args.shell` to stdout.
pub fn run(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut command = crate::Cli::command();
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, &mut command, name, &mut io::stdout());
    Ok(())
}
