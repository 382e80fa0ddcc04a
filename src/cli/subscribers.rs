//! `trellis subscribers`: the trust page's email subscribers (personal data) — list (export)
//! and delete (erasure), each audited.

use chrono::Utc;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Loaded;

/// What `trellis subscribers` does.
#[derive(Debug, clap::Subcommand)]
pub enum SubscribersCommand {
    /// Every subscriber: address, topics, state, when subscribed and confirmed. Audited as
    /// `subscribers.export`.
    List {
        /// `table` (default), `json` or `csv`.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Delete a subscriber and every message still waiting for them. Audited as
    /// `subscriber.delete` (with their id, not their address).
    Delete {
        /// The subscriber's email address.
        email: String,
    },
}

pub async fn subscribers(loaded: &Loaded, command: SubscribersCommand) -> u8 {
    let Some(store) = super::connect(loaded).await else {
        return EXIT_USAGE;
    };
    let actor = super::site::decider();
    match command {
        SubscribersCommand::List { format } => {
            if !matches!(format.as_str(), "table" | "json" | "csv") {
                eprintln!("error: --format: expected table, json or csv, not `{format}`");
                return EXIT_USAGE;
            }
            let all = match store.export_subscribers(&actor, Utc::now()).await {
                Ok(all) => all,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_USAGE;
                }
            };
            let topics = |s: &crate::store::Subscriber| {
                s.topics
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let time = |t: Option<chrono::DateTime<Utc>>| {
                t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            };
            match format.as_str() {
                "json" => match serde_json::to_string_pretty(&all) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return EXIT_FAILED;
                    }
                },
                "csv" => {
                    let mut w = csv::Writer::from_writer(std::io::stdout());
                    let mut rows = vec![[
                        "email".to_string(),
                        "topics".into(),
                        "state".into(),
                        "created_at".into(),
                        "confirmed_at".into(),
                    ]];
                    for s in &all {
                        rows.push([
                            s.email.clone(),
                            topics(s),
                            s.state.clone(),
                            time(Some(s.created_at)),
                            time(s.confirmed_at),
                        ]);
                    }
                    for row in rows {
                        if let Err(e) = w.write_record(&row) {
                            eprintln!("error: {e}");
                            return EXIT_FAILED;
                        }
                    }
                    if let Err(e) = w.flush() {
                        eprintln!("error: {e}");
                        return EXIT_FAILED;
                    }
                }
                _ => {
                    for s in &all {
                        println!(
                            "{:<40}  {:<9}  {:<30}  {}",
                            s.email,
                            s.state,
                            topics(s),
                            time(Some(s.created_at))
                        );
                    }
                    println!("{} subscriber(s)", all.len());
                }
            }
            EXIT_OK
        }
        SubscribersCommand::Delete { email } => {
            match store.delete_subscriber(&email, &actor, Utc::now()).await {
                Ok(true) => {
                    println!("deleted {email} and every message waiting for it");
                    EXIT_OK
                }
                Ok(false) => {
                    eprintln!("error: no subscriber {email}");
                    EXIT_FAILED
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_USAGE
                }
            }
        }
    }
}
