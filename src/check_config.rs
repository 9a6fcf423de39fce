//! `featurepipe check-config FILE`: validates a pipeline file without running anything and
//! prints the pipeline it describes as JSON, so a file can be reviewed (and CI-checked)
//! before the nightly run meets it.

use crate::cli::CheckConfigArgs;
use crate::config;
use crate::error::exit_code;

/// Exit 0 and the resolved pipeline on stdout, or exit 2 and one sentence naming the line.
pub fn execute(args: CheckConfigArgs) -> u8 {
    let described = config::load(&args.file).and_then(|loaded| config::describe(&loaded));
    match described {
        Ok(pipeline) => {
            let text = serde_json::to_string_pretty(&pipeline).unwrap_or_default();
            println!("{text}");
            exit_code::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "featurepipe: error: {}",
                crate::redact::redact(&e.to_string())
            );
            e.exit_code()
        }
    }
}
