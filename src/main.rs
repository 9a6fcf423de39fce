//! The `featurepipe` binary: run the command, print its last sentence, exit with its code.

use std::process::ExitCode;

use featurepipe::{cli, error, log};

fn main() -> ExitCode {
    // A bug must still end in one clear line and exit code 1, never a panic dump.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = (payload.downcast_ref::<&str>().copied())
            .or(payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic");
        let at = info
            .location()
            .map(|l| format!(" ({}:{})", l.file(), l.line()))
            .unwrap_or_default();
        log::sentence(
            true,
            &format!(
                "featurepipe: error: internal error (please report this as a bug): {what}{at}"
            ),
        );
        std::process::exit(i32::from(error::exit_code::INTERNAL));
    }));
    let code = match cli::execute() {
        Ok(finished) => {
            if let Some(note) = &finished.note {
                log::sentence(false, note);
            }
            finished.exit_code()
        }
        Err(e) => {
            log::sentence(true, &format!("featurepipe: error: {e}"));
            e.exit_code()
        }
    };
    ExitCode::from(code)
}
