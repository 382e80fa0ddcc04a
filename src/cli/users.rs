//! `trellis user`: staff accounts for the dashboards and the API.

use std::io::{BufRead, IsTerminal};

use chrono::Utc;

use super::{EXIT_OK, EXIT_USAGE};
use crate::auth::{Role, hash_password};
use crate::config::Loaded;

/// What `trellis user` does.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from the terminal (twice), or from one line of
    /// standard input when it is not a terminal.
    Add {
        /// User name (lowercase letters, digits, `.`, `-`, `_`).
        name: String,
        #[arg(long, value_parser = ["admin", "security", "auditor", "viewer"])]
        role: String,
        /// Full name shown in the dashboards (default: the user name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set a new password (read like `add`); ends the user's sessions. `--mfa` also removes
    /// their second factor, for a lost phone.
    Reset {
        name: String,
        #[arg(long)]
        mfa: bool,
    },
    /// Disable a user: sessions end, API tokens are revoked, sign-in is refused.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// List users.
    List,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Reads a password: twice without echo from a terminal, else one line of standard input.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the passwords differ".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

pub async fn user(loaded: &Loaded, command: UserCommand) -> u8 {
    let Some(store) = super::connect(loaded).await else {
        return EXIT_USAGE;
    };
    let actor = super::site::decider();
    let now = Utc::now();
    let result = match command {
        UserCommand::List => match store.users().await {
            Ok(list) => {
                for u in list {
                    println!(
                        "{:<20} {:<9} mfa:{:<3} {}{}",
                        u.username,
                        u.role.as_str(),
                        if u.mfa_enabled { "on" } else { "off" },
                        u.display_name,
                        if u.is_disabled() { " (disabled)" } else { "" }
                    );
                }
                return EXIT_OK;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
        UserCommand::Add {
            name,
            role,
            display_name,
        } => {
            if !valid_name(&name) {
                eprintln!(
                    "error: user name `{name}`: use lowercase letters, digits, `.`, `-` or `_` (at most 64)"
                );
                return EXIT_USAGE;
            }
            let Some(role) = Role::parse(&role) else {
                return EXIT_USAGE;
            };
            let hash = match read_password()
                .and_then(|p| hash_password(&name, &p).map_err(|e| e.to_string()))
            {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_USAGE;
                }
            };
            let display = display_name.unwrap_or_else(|| name.clone());
            store
                .create_user(&name, &display, role, &hash, &actor, now)
                .await
                .map(|u| println!("added {} ({})", u.username, u.role))
        }
        UserCommand::Reset { name, mfa } => {
            let hash = match read_password()
                .and_then(|p| hash_password(&name, &p).map_err(|e| e.to_string()))
            {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_USAGE;
                }
            };
            let mut r = store.set_password(&name, &hash, &actor, now).await;
            if r.is_ok() && mfa {
                r = store.reset_totp(&name, &actor, now).await;
            }
            r.map(|()| {
                println!(
                    "{name}: password reset{}; sessions ended",
                    if mfa { ", second factor removed" } else { "" }
                )
            })
        }
        UserCommand::Disable { name } => store
            .set_disabled(&name, true, &actor, now)
            .await
            .map(|()| println!("{name}: disabled; sessions ended, API tokens revoked")),
        UserCommand::Enable { name } => store
            .set_disabled(&name, false, &actor, now)
            .await
            .map(|()| println!("{name}: enabled")),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
