//! `featurepipe completions SHELL`: the shell's completion script on stdout, generated
//! from the same command definition the parser uses (subcommands, flags, value choices).

use clap::Args;
use clap_complete::Shell;

use super::output::write_stdout;
use crate::error::{Finished, Result};

pub const COMPLETIONS_AFTER_HELP: &str = "\
Prints the script on stdout; install it where your shell looks for completions and start a
new shell.

Examples:
  featurepipe completions bash > ~/.local/share/bash-completion/completions/featurepipe
  featurepipe completions zsh > ~/.zfunc/_featurepipe   # with fpath+=(~/.zfunc) in ~/.zshrc
  featurepipe completions fish > ~/.config/fish/completions/featurepipe.fish";

/// `featurepipe completions SHELL`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for
    #[arg(value_name = "SHELL", env = "DP_COMPLETIONS_SHELL", value_enum)]
    pub shell: Shell,
}

/// Writes the script for `command` (the whole command line, handed down by `cli`) on
/// stdout.
pub fn execute(args: CompletionsArgs, mut command: clap::Command) -> Result<Finished> {
    let name = command.get_name().to_string();
    // Generated into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    write_stdout(&script)?;
    Ok(Finished::success())
}
