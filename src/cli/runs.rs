//! `trellis runs`: list runs, cancel one (whichever instance works on it).

use chrono::Utc;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Loaded;
use crate::store::CancelOutcome;

/// What `trellis runs` does.
#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// List the newest runs: id, state, trigger, start, controls done.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Stop a running run between collections; it is closed `cancelled` (audited). The
    /// instance working on it sees the request within a third of `limits.lease`.
    Cancel {
        /// The run's id.
        id: String,
    },
}

pub async fn runs(loaded: &Loaded, command: RunsCommand) -> u8 {
    let Some(store) = super::connect(loaded).await else {
        return EXIT_USAGE;
    };
    match command {
        RunsCommand::List { limit } => match store.runs(limit).await {
            Ok(runs) => {
                for r in runs {
                    println!(
                        "{}  {:<11}  {:<8}  {}  {}/{}",
                        r.id,
                        r.state.as_str(),
                        r.trigger.as_str(),
                        r.started_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        r.controls_done,
                        r.controls_total
                    );
                }
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_FAILED
            }
        },
        RunsCommand::Cancel { id } => {
            let actor = super::site::decider();
            match store.request_cancel(&id, &actor, "cli", Utc::now()).await {
                Ok(CancelOutcome::Requested) => {
                    println!(
                        "run {id}: cancel requested by {}; it stops between collections and closes as cancelled",
                        actor.name
                    );
                    EXIT_OK
                }
                Ok(CancelOutcome::AlreadyRequested) => {
                    println!("run {id}: a cancel was already requested");
                    EXIT_OK
                }
                Ok(CancelOutcome::Closed(state)) => {
                    eprintln!("error: run {id} is not running (it is {state})");
                    EXIT_FAILED
                }
                Ok(CancelOutcome::NotFound) => {
                    eprintln!("error: no run {id}");
                    EXIT_FAILED
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_FAILED
                }
            }
        }
    }
}
