//! `featurepipe man`: the manual page, roff, generated from the same command definition
//! the parser uses (every flag with its `DP_*` variable, default and choices; each
//! command's notes and examples). On stdout, or with `--out-dir` one page per command.

use std::path::{Path, PathBuf};

use clap::Args;

use super::output::write_stdout;
use crate::build_info;
use crate::error::{Error, Finished, Result};

pub const MAN_AFTER_HELP: &str = "\
Without --out-dir, prints the page of featurepipe itself (its commands, each with one line)
on stdout. With --out-dir, writes that page and one per command (featurepipe-run.1,
featurepipe-versions-show.1, ...) into DIR and prints their paths.

Examples:
  featurepipe man > ~/.local/share/man/man1/featurepipe.1
  featurepipe man --out-dir ~/.local/share/man/man1
  featurepipe man | man -l -";

/// `featurepipe man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write one page per command into this folder (it must exist) instead of printing
    /// the main page
    #[arg(long, env = "DP_MAN_OUT_DIR", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the main page of `command` (the whole command line, handed down by `cli`), or
/// writes every page into `--out-dir`.
pub fn execute(args: ManArgs, command: clap::Command) -> Result<Finished> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    match &args.out_dir {
        None => write_stdout(&page(&command)?)?,
        Some(dir) => {
            let mut written = String::new();
            write_pages(&command, dir, &mut written)?;
            write_stdout(written.as_bytes())?;
        }
    }
    Ok(Finished::success())
}

/// `command`'s page, then its subcommands' (depth first); each path written is added to
/// `written`, one per line.
fn write_pages(command: &clap::Command, dir: &Path, written: &mut String) -> Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    let path = dir.join(man.get_filename());
    std::fs::write(&path, page(command)?).map_err(|e| {
        Error::Usage(format!(
            "cannot write {} (--out-dir, DP_MAN_OUT_DIR): {e}",
            path.display()
        ))
    })?;
    written.push_str(&format!("{}\n", path.display()));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// One page: clap_mangen's, dated with the build day; the command's text after its
/// options (notes, then examples) under NOTES AND EXAMPLES instead of EXTRA, its examples
/// as typed (not filled into a paragraph).
fn page(command: &clap::Command) -> Result<Vec<u8>> {
    let title = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_uppercase();
    let man = clap_mangen::Man::new(command.clone())
        .title(title)
        .date(build_info::BUILD_DATE)
        .source(format!("{} {}", build_info::NAME, build_info::VERSION))
        .manual("featurepipe manual");
    let mut out = Vec::new();
    man.render(&mut out)
        .map_err(|e| Error::Internal(format!("cannot render the man page: {e}")))?;
    let text = String::from_utf8(out)
        .map_err(|e| Error::Internal(format!("the man page is not UTF-8: {e}")))?;
    Ok(unfilled_examples(&text).into_bytes())
}

/// Renames the EXTRA section and turns filling off from its `Examples:` line to the
/// section's end, so each example keeps its lines.
fn unfilled_examples(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len() + 64);
    let (mut in_extra, mut unfilled) = (false, false);
    for line in roff.lines() {
        if line.starts_with(".SH ") {
            if unfilled {
                out.push_str(".fi\n");
                unfilled = false;
            }
            in_extra = line == ".SH EXTRA";
            if in_extra {
                out.push_str(".SH \"NOTES AND EXAMPLES\"\n");
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        if in_extra && line == "Examples:" {
            out.push_str(".nf\n");
            unfilled = true;
        }
    }
    if unfilled {
        out.push_str(".fi\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_keep_their_lines_and_the_section_its_name() {
        let roff = ".TH X 1\n.SH EXTRA\nSome notes.\n\nExamples:\n  x \\-\\-a\n.SH VERSION\nv1\n";
        assert_eq!(
            unfilled_examples(roff),
            ".TH X 1\n.SH \"NOTES AND EXAMPLES\"\nSome notes.\n\nExamples:\n.nf\n  x \\-\\-a\n\
             .fi\n.SH VERSION\nv1\n"
        );
        // At the end of the page too; a page without the section is left alone.
        let roff = ".SH EXTRA\nExamples:\n  x\n";
        assert_eq!(
            unfilled_examples(roff),
            ".SH \"NOTES AND EXAMPLES\"\nExamples:\n.nf\n  x\n.fi\n"
        );
        assert_eq!(unfilled_examples(".SH NAME\nx\n"), ".SH NAME\nx\n");
    }
}
