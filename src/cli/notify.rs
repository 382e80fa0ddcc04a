//! `trellis notify`: send a test message to a channel; show what the outbox holds.

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Loaded;

/// What `trellis notify` does.
#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test message to CHANNEL now (not through the outbox); exit 1 naming why it was
    /// not delivered.
    Test {
        /// The channel's `name` in `notifications.channels`.
        channel: String,
    },
    /// Deliveries by state (pending, sending, sent, failed) and the newest failed ones.
    Status,
}

pub async fn notify(loaded: &Loaded, command: NotifyCommand) -> u8 {
    match command {
        NotifyCommand::Test { channel } => {
            let catalog = crate::catalog::Catalog::default();
            let dashboard = crate::startup::dashboard_url(loaded);
            match crate::notify::sender::send_test(
                &loaded.config.notifications,
                &channel,
                &loaded.base_dir,
                &catalog,
                dashboard.as_deref(),
            )
            .await
            {
                Ok(()) => {
                    println!("sent a test message to `{channel}`");
                    EXIT_OK
                }
                Err(e) if e.starts_with("no channel named") => {
                    eprintln!("error: {e}");
                    EXIT_USAGE
                }
                Err(e) => {
                    eprintln!("error: the test message to `{channel}` was not delivered: {e}");
                    EXIT_FAILED
                }
            }
        }
        NotifyCommand::Status => {
            let Some(store) = super::connect(loaded).await else {
                return EXIT_USAGE;
            };
            match store.notify_overview().await {
                Ok(o) => {
                    println!(
                        "pending {}  sending {}  sent {}  failed {}",
                        o.pending, o.sending, o.sent, o.failed
                    );
                    for f in &o.failed_recent {
                        println!(
                            "FAILED  {}  {}  {}  after {} attempts: {}",
                            f.channel,
                            f.kind,
                            f.control_id.as_deref().unwrap_or("-"),
                            f.attempts,
                            f.last_error.as_deref().unwrap_or("")
                        );
                    }
                    if o.failed > 0 { EXIT_FAILED } else { EXIT_OK }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_USAGE
                }
            }
        }
    }
}
