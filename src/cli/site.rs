//! `trellis render` and `trellis access`: the public site as files, and the security team's
//! decisions on document requests.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{EXIT_OK, EXIT_USAGE, load_catalog};
use crate::access::{AccessRequest, AccessStatus};
use crate::actions::{AccessVerdict, ActionError};
use crate::config::Loaded;
use crate::store::Store;
use crate::web::site;

/// Renders the public site from the database into `out`.
pub async fn render(loaded: &Loaded, out: &Path, as_of: Option<DateTime<Utc>>) -> u8 {
    let now = as_of.unwrap_or_else(Utc::now);
    let catalog = match load_catalog(loaded, now.date_naive()) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    let inputs = match crate::startup::site_inputs(loaded, catalog) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_USAGE;
        }
    };
    let store = match Store::connect(&loaded.config.database_url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let site = match inputs.sources().load_and_render(&store, now).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let trust = &loaded.config.trust_page;
    if !trust.documents.items.is_empty() && trust.base_url.is_none() {
        eprintln!(
            "warning: trust_page.base_url is not set: the documents' request links are relative, \
             and a static host cannot answer them (set it to the live server's address)"
        );
    }
    match site::write(&site, out) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            let s = &site.view.summary;
            eprintln!(
                "rendered {} of {} controls passing; valid until {}",
                s.passing,
                s.total,
                crate::web::iso(site.valid_until)
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: cannot write the site to {}: {e}", out.display());
            EXIT_USAGE
        }
    }
}

/// What `trellis access` does.
#[derive(Debug, clap::Subcommand)]
pub enum AccessCommand {
    /// List requests, newest first.
    List {
        /// Only requests in this state (`all` for every one).
        #[arg(long, default_value = "pending", value_parser = ["pending", "approved", "denied", "revoked", "all"])]
        status: String,
    },
    /// Show one request in full.
    Show {
        /// The request id (or its first characters).
        id: String,
    },
    /// Approve a pending request and print its download link.
    Approve {
        id: String,
        /// How long the link works (default: trust_page.documents.link_valid_for).
        #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
        valid_for: Option<chrono::Duration>,
        /// A note kept with the decision.
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny a pending request.
    Deny {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Revoke an approved request: its link stops working at once.
    Revoke {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

/// Who decides: `$TRELLIS_USER`, else the login name, else `cli`; as the audit log's actor.
pub fn decider() -> crate::store::Actor {
    let name = ["TRELLIS_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "cli".into());
    crate::store::Actor::new(name, Some("cli".into()))
}

pub async fn access(loaded: &Loaded, command: AccessCommand) -> u8 {
    let store = match Store::connect(&loaded.config.database_url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let now = Utc::now();
    let result = match command {
        AccessCommand::List { status } => {
            let filter = AccessStatus::parse(&status);
            return match store.access_requests(filter, 500).await {
                Ok(list) => {
                    print_list(&list);
                    EXIT_OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    EXIT_USAGE
                }
            };
        }
        AccessCommand::Show { id } => store
            .find_access_request(&id)
            .await
            .map_err(ActionError::from),
        AccessCommand::Approve {
            id,
            valid_for,
            note,
        } => {
            let documents = match crate::startup::documents(loaded) {
                Ok(Some(d)) => d,
                Ok(None) => {
                    eprintln!("error: no documents are configured (trust_page.documents.items)");
                    return EXIT_USAGE;
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return EXIT_USAGE;
                }
            };
            let valid_for = valid_for.unwrap_or(documents.config.link_valid_for.get());
            let mail = match crate::startup::visitors(loaded) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return EXIT_USAGE;
                }
            };
            let decided = crate::actions::decide_access(
                &store,
                &decider(),
                &id,
                AccessVerdict::Approve { valid_for },
                note.as_deref(),
                now,
                mail.as_deref(),
            )
            .await;
            if let Ok(r) = &decided {
                print_request(r);
                if mail.is_some() {
                    println!(
                        "The link is emailed to {} by the next running `trellis serve` \
                         (`trellis notify status` shows a delivery that failed).",
                        r.email
                    );
                    return EXIT_OK;
                }
                let expires_at = r.expires_at.unwrap_or(now + valid_for);
                println!("link:      {}", documents.link(&r.id, expires_at));
                if documents.base_url.is_none() {
                    eprintln!(
                        "warning: trust_page.base_url is not set: prefix the link with \
                         the trust page's address"
                    );
                }
                println!(
                    "Send the link to {} yourself: Trellis does not email it.",
                    r.email
                );
                return EXIT_OK;
            }
            decided
        }
        AccessCommand::Deny { id, note } => {
            decide(&store, &id, AccessVerdict::Deny, note.as_deref(), now).await
        }
        AccessCommand::Revoke { id, note } => {
            decide(&store, &id, AccessVerdict::Revoke, note.as_deref(), now).await
        }
    };
    match result {
        Ok(r) => {
            print_request(&r);
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

async fn decide(
    store: &Store,
    id: &str,
    verdict: AccessVerdict,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AccessRequest, ActionError> {
    crate::actions::decide_access(store, &decider(), id, verdict, note, now, None).await
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn print_list(list: &[AccessRequest]) {
    if list.is_empty() {
        println!("no requests");
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id",
        "requested",
        "name",
        "email",
        "company",
        "documents",
        "status",
        "expires",
        "downloads",
    ]);
    for r in list {
        table.add_row([
            r.id.get(..8).unwrap_or(&r.id).to_string(),
            time(Some(r.requested_at)),
            r.name.clone(),
            r.email.clone(),
            r.company.clone(),
            r.documents.join(", "),
            r.status.to_string(),
            time(r.expires_at),
            r.downloads.to_string(),
        ]);
    }
    println!("{table}");
}

fn print_request(r: &AccessRequest) {
    println!("id:        {}", r.id);
    println!("status:    {}", r.status);
    println!("requested: {}", time(Some(r.requested_at)));
    println!("name:      {}", r.name);
    println!("email:     {}", r.email);
    println!("company:   {}", r.company);
    println!("documents: {}", r.documents.join(", "));
    println!("nda:       accepted (sha256 {})", r.nda_sha256);
    println!("from:      {}", r.client_ip.as_deref().unwrap_or("unknown"));
    if let Some(ua) = &r.user_agent {
        println!("browser:   {ua}");
    }
    if let Some(by) = &r.decided_by {
        println!(
            "decided:   {} by {by}{}",
            time(r.decided_at),
            r.decision_note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    if r.expires_at.is_some() {
        println!("expires:   {}", time(r.expires_at));
    }
    println!("downloads: {}", r.downloads);
}
