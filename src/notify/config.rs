//! `notifications`: where the security team hears about changes (channels), and which changes
//! go where (rules).
//!
//! ```yaml
//! notifications:
//!   channels:
//!     - {name: sec-slack, type: slack, url_env: TRELLIS_SLACK_WEBHOOK}
//!     - {name: sec-hook, type: webhook, url: "https://hooks.example.com/trellis", secret_env: TRELLIS_HOOK_SECRET}
//!     - name: sec-mail
//!       type: email
//!       to: [security@example.com]
//!       from: "Trellis <trellis@example.com>"
//!       smtp: {host: smtp.example.com, port: 587, tls: starttls, username_env: SMTP_USER, password_env: SMTP_PASSWORD}
//!   rules:
//!     - {events: [failing, erroring, reopened], severity: [high, critical], channels: [sec-slack, sec-mail]}
//!     - {events: [fixed, stale], channels: [sec-hook]}
//! ```
//!
//! Secrets (a Slack or Teams webhook URL, a webhook's signing secret, SMTP credentials) are
//! named by environment variable (`*_env`) or file (`*_file`), never written in the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::Severity;
use crate::config::Secret;
use crate::diag::{Diagnostic, YamlIndex};
use crate::duration::HumanDuration;

/// See the module documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Where messages go. Each has a unique `name` that rules refer to.
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// Which events go to which channels. An event matching several rules is sent once per
    /// channel.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Events for one channel that arrive within this window of the first are sent as one
    /// digest (a run that breaks ten controls sends one message, not ten).
    #[serde(default = "default_digest_window")]
    pub digest_window: HumanDuration,
    /// Attempts before a delivery is marked failed (shown on the dashboard).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; each further retry waits twice as long (at most an hour).
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: HumanDuration,
    /// How often each instance looks for changes no stored result carries: controls gone
    /// stale, exceptions expiring, public status changes, subprocessor and incident notices.
    #[serde(default = "default_sweep_every")]
    pub sweep_every: HumanDuration,
    /// `policy_review_due` is sent this long before a policy's next review is due.
    #[serde(default = "default_exception_warning")]
    pub review_warning: HumanDuration,
    /// `exception_expiring` is sent this long before an exception's `expires_on`.
    #[serde(default = "default_exception_warning")]
    pub exception_warning: HumanDuration,
    /// Address of the dashboard that messages link to (`https://trellis.internal.example`).
    /// Default: `trust_page.base_url`; without either, messages name the control without a link.
    #[serde(default)]
    pub dashboard_url: Option<crate::config::BaseUrl>,
    /// Email to visitors of the trust page: subscriptions to public changes (double opt-in)
    /// and approved document links. Absent: no subscribe form, document links are shown once
    /// to staff to forward.
    #[serde(default)]
    pub visitors: Option<VisitorsConfig>,
}

/// What visitors may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// A public control's status on the trust page changes.
    Status,
    /// A subprocessor is added, changed or removed (the vendors register).
    Subprocessors,
    /// An incident marked `public: true` in the incidents register.
    Incidents,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Status, Topic::Subprocessors, Topic::Incidents];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Status => "status",
            Topic::Subprocessors => "subprocessors",
            Topic::Incidents => "incidents",
        }
    }

    pub fn parse(text: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// How the subscribe form names it.
    pub fn label(self) -> &'static str {
        match self {
            Topic::Status => "Status changes of the controls on this page",
            Topic::Subprocessors => "Subprocessor changes (advance notice of new subprocessors)",
            Topic::Incidents => "Security incident notices",
        }
    }
}

/// See [`NotificationsConfig::visitors`]. Needs `trust_page.base_url` (emails carry absolute
/// links).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorsConfig {
    /// The sender visitors see (`Example Security <security@example.com>`).
    pub from: String,
    pub smtp: SmtpConfig,
    /// What the subscribe form offers (default: all).
    #[serde(default = "all_topics")]
    pub topics: Vec<Topic>,
    /// Subscriptions accepted per client address per hour (and confirmation emails per
    /// address per day).
    #[serde(default = "default_subscriptions_per_hour")]
    pub subscriptions_per_hour: u32,
    /// How long a confirmation link works.
    #[serde(default = "default_confirm_within")]
    pub confirm_within: HumanDuration,
    /// A subprocessor whose `starts_on` is set is announced this many days before it starts
    /// (the advance notice a data-processing agreement promises); announced at once when the
    /// date is nearer.
    #[serde(default)]
    pub subprocessor_notice_days: Option<u32>,
}

fn all_topics() -> Vec<Topic> {
    Topic::ALL.to_vec()
}
fn default_subscriptions_per_hour() -> u32 {
    5
}
fn default_confirm_within() -> HumanDuration {
    "2d".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

fn default_digest_window() -> HumanDuration {
    "1m".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_sweep_every() -> HumanDuration {
    "1m".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_backoff() -> HumanDuration {
    "30s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_exception_warning() -> HumanDuration {
    "14d".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            channels: Vec::new(),
            rules: Vec::new(),
            digest_window: default_digest_window(),
            max_attempts: default_max_attempts(),
            sweep_every: default_sweep_every(),
            retry_backoff: default_retry_backoff(),
            exception_warning: default_exception_warning(),
            review_warning: default_exception_warning(),
            dashboard_url: None,
            visitors: None,
        }
    }
}

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A Slack incoming webhook (`{"text": …}`).
    Slack,
    /// A Microsoft Teams workflow webhook ("When a Teams webhook request is received"): an
    /// Adaptive Card message.
    Teams,
    /// Any HTTP endpoint: a JSON body signed with HMAC-SHA256 (see `trellis::notify::channels`).
    Webhook,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
        }
    }
}

/// One channel. Which keys apply depends on `type`:
/// - `slack`, `teams`: the webhook URL, a secret: `url_env` or `url_file`;
/// - `webhook`: `url` (or `url_env`/`url_file`) and the signing secret (`secret_env` or
///   `secret_file`);
/// - `email`: `to`, `from` and `smtp`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Lowercase letters, digits and `-`; what rules and `trellis notify test` name.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// The endpoint, written in the file (`webhook` only: Slack and Teams URLs are secrets).
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the endpoint.
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the endpoint.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding a webhook's signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding a webhook's signing secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Email recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email sender (`Trellis <trellis@example.com>`).
    #[serde(default)]
    pub from: Option<String>,
    /// Email server.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS before anything is sent (refused if the server
    /// does not offer it). Default port 587.
    Starttls,
    /// TLS from the first byte (SMTPS). Default port 465.
    Implicit,
    /// No TLS: only for a relay on the loopback interface. Default port 25.
    None,
}

/// The SMTP server of an `email` channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// Environment variable holding the user name (with `password_env`/`password_file`).
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub username_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of certificate authorities to trust for this server, besides the system's
    /// (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long connecting, or any one SMTP command, may take.
    #[serde(default = "default_smtp_timeout")]
    pub timeout: HumanDuration,
}

fn default_smtp_timeout() -> HumanDuration {
    "30s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        })
    }
}

/// One rule: events of these kinds, about controls matching every filter given, go to these
/// channels. An empty filter matches everything.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub events: Vec<super::EventKind>,
    pub channels: Vec<String>,
    /// Control severities.
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// Control ids.
    #[serde(default)]
    pub controls: Vec<String>,
    /// Control categories (as written in the controls' `category`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Control owners (as written in the controls' `owner`).
    #[serde(default)]
    pub owners: Vec<String>,
    /// Frameworks a control maps to (`soc2`, `iso27001`).
    #[serde(default)]
    pub frameworks: Vec<String>,
}

/// Reads a secret from the environment variable or file named at `field`.
pub fn read_secret(
    env: Option<&str>,
    file: Option<&Path>,
    base_dir: &Path,
    field: &str,
) -> Result<Option<Secret>, String> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim().to_string()))),
            _ => Err(format!(
                "environment variable `{var}` ({field}_env) is not set"
            )),
        };
    }
    if let Some(file) = file {
        let path = if file.is_absolute() {
            file.to_path_buf()
        } else {
            base_dir.join(file)
        };
        return std::fs::read_to_string(&path)
            .map(|t| Some(Secret::new(t.trim().to_string())))
            .map_err(|e| format!("cannot read {field}_file {}: {e}", path.display()));
    }
    Ok(None)
}

/// Whether `host` is the loopback interface (where plain HTTP and SMTP are allowed).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks what one key cannot say about another: names unique, each channel's keys those of
/// its type, rules naming channels that exist. Each problem at its line and column.
pub fn check(config: &NotificationsConfig, path: &Path, index: &YamlIndex) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let at = |p: String, m: String| index.at(path, &p, m);
    let mut names = std::collections::HashSet::new();
    for (i, c) in config.channels.iter().enumerate() {
        let here = format!("notifications.channels[{i}]");
        let well_formed = !c.name.is_empty()
            && c.name.len() <= 64
            && c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            out.push(at(
                format!("{here}.name"),
                format!(
                    "`{}`: expected lowercase letters, digits and `-` (at most 64)",
                    c.name
                ),
            ));
        } else if !names.insert(c.name.as_str()) {
            out.push(at(
                format!("{here}.name"),
                format!("duplicate channel name `{}`", c.name),
            ));
        }
        for problem in channel_problems(c) {
            out.push(at(format!("{here}.{}", problem.0), problem.1));
        }
    }
    for (i, r) in config.rules.iter().enumerate() {
        let here = format!("notifications.rules[{i}]");
        if r.events.is_empty() {
            out.push(at(
                format!("{here}.events"),
                "name at least one event".into(),
            ));
        }
        if r.channels.is_empty() {
            out.push(at(
                format!("{here}.channels"),
                "name at least one channel".into(),
            ));
        }
        for (j, name) in r.channels.iter().enumerate() {
            if !config.channels.iter().any(|c| &c.name == name) {
                let known: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
                out.push(at(
                    format!("{here}.channels[{j}]"),
                    format!(
                        "no channel named `{name}` (channels: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    for (j, r) in config.rules.iter().enumerate() {
        for (k, kind) in r.events.iter().enumerate() {
            if kind.is_for_visitors() {
                out.push(at(
                    format!("notifications.rules[{j}].events[{k}]"),
                    format!(
                        "`{}` is sent to the trust page's subscribers (notifications.visitors), \
                         not by rules",
                        kind.as_str()
                    ),
                ));
            }
        }
    }
    if let Some(v) = &config.visitors {
        if v.from.parse::<lettre::message::Mailbox>().is_err() {
            out.push(at(
                "notifications.visitors.from".into(),
                format!(
                    "`{}` is not a mailbox (expected `Example <security@example.com>`)",
                    v.from
                ),
            ));
        }
        if let Some(problem) = smtp_problem(&v.smtp) {
            out.push(at("notifications.visitors.smtp".into(), problem));
        }
        if v.topics.is_empty() {
            out.push(at(
                "notifications.visitors.topics".into(),
                "offer at least one topic".into(),
            ));
        }
    }
    if config.max_attempts == 0 {
        out.push(at(
            "notifications.max_attempts".into(),
            "must be at least 1".into(),
        ));
    }
    out
}

/// What is wrong with one channel's keys, as (key, message).
fn channel_problems(c: &ChannelConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let kind = c.kind.as_str();
    let not_for = |key: &'static str, set: bool, out: &mut Vec<(&'static str, String)>| {
        if set {
            out.push((key, format!("not a key of a `{kind}` channel")));
        }
    };
    match c.kind {
        ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Webhook => {
            let given = [c.url.is_some(), c.url_env.is_some(), c.url_file.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if c.kind != ChannelKind::Webhook && c.url.is_some() {
                out.push((
                    "url",
                    format!(
                        "a {kind} webhook URL is a secret (whoever has it can post): name it \
                         with url_env or url_file"
                    ),
                ));
            } else if given != 1 {
                out.push((
                    "url",
                    "give the endpoint with exactly one of url, url_env and url_file".into(),
                ));
            }
            if let Some(url) = &c.url
                && let Some(problem) = endpoint_problem(url)
            {
                out.push(("url", problem));
            }
            if c.kind == ChannelKind::Webhook {
                if c.secret_env.is_some() == c.secret_file.is_some() {
                    out.push((
                        "secret_env",
                        "a webhook needs its signing secret from exactly one of secret_env and \
                         secret_file (receivers check X-Trellis-Signature with it)"
                            .into(),
                    ));
                }
            } else {
                not_for("secret_env", c.secret_env.is_some(), &mut out);
                not_for("secret_file", c.secret_file.is_some(), &mut out);
            }
            not_for("to", !c.to.is_empty(), &mut out);
            not_for("from", c.from.is_some(), &mut out);
            not_for("smtp", c.smtp.is_some(), &mut out);
        }
        ChannelKind::Email => {
            not_for("url", c.url.is_some(), &mut out);
            not_for("url_env", c.url_env.is_some(), &mut out);
            not_for("url_file", c.url_file.is_some(), &mut out);
            not_for("secret_env", c.secret_env.is_some(), &mut out);
            not_for("secret_file", c.secret_file.is_some(), &mut out);
            if c.to.is_empty() {
                out.push(("to", "name at least one recipient".into()));
            }
            for to in &c.to {
                if to.parse::<lettre::Address>().is_err() {
                    out.push((
                        "to",
                        format!("`{to}` is not an email address (expected name@domain)"),
                    ));
                }
            }
            match &c.from {
                None => out.push((
                    "from",
                    "required: the sender (`Trellis <trellis@example.com>`)".into(),
                )),
                Some(from) if from.parse::<lettre::message::Mailbox>().is_err() => out.push((
                    "from",
                    format!(
                        "`{from}` is not a mailbox (expected `trellis@example.com` or \
                         `Trellis <trellis@example.com>`)"
                    ),
                )),
                Some(_) => {}
            }
            match &c.smtp {
                None => out.push(("smtp", "required: the mail server".into())),
                Some(smtp) => out.extend(smtp_problem(smtp).map(|p| ("smtp", p))),
            }
        }
    }
    out
}

/// Rule filters naming controls, categories, owners or frameworks the catalog does not have,
/// as (path, message).
pub fn check_against_catalog(
    config: &NotificationsConfig,
    catalog: &crate::catalog::Catalog,
) -> Vec<(String, String)> {
    let controls = catalog.controls();
    let mut out = Vec::new();
    for (i, r) in config.rules.iter().enumerate() {
        let mut unknown =
            |field: &str, what: &str, values: &[String], known: &dyn Fn(&str) -> bool| {
                for (j, v) in values.iter().enumerate() {
                    if !known(v) {
                        out.push((
                            format!("notifications.rules[{i}].{field}[{j}]"),
                            format!("no control {what} `{v}`: this rule would never match"),
                        ));
                    }
                }
            };
        unknown("controls", "has the id", &r.controls, &|v| {
            catalog.get(v).is_some()
        });
        unknown("categories", "is in category", &r.categories, &|v| {
            controls.iter().any(|c| c.category == v)
        });
        unknown("owners", "is owned by", &r.owners, &|v| {
            controls.iter().any(|c| c.owner == v)
        });
        unknown("frameworks", "maps to framework", &r.frameworks, &|v| {
            controls
                .iter()
                .any(|c| c.frameworks.iter().any(|f| f.framework == v))
        });
    }
    out
}

/// Secrets named by the configuration that cannot be read now, as (path, message): a channel
/// that will fail every delivery until they are.
pub fn missing_secrets(config: &NotificationsConfig, base_dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut check = |path: String, env: Option<&str>, file: Option<&Path>, field: &str| {
        if let Err(e) = read_secret(env, file, base_dir, field) {
            out.push((path, e));
        }
    };
    for (i, c) in config.channels.iter().enumerate() {
        let here = format!("notifications.channels[{i}]");
        check(
            here.clone(),
            c.url_env.as_deref(),
            c.url_file.as_deref(),
            "url",
        );
        check(
            here.clone(),
            c.secret_env.as_deref(),
            c.secret_file.as_deref(),
            "secret",
        );
        if let Some(smtp) = &c.smtp {
            let at = format!("{here}.smtp");
            check(
                at.clone(),
                smtp.username_env.as_deref(),
                smtp.username_file.as_deref(),
                "smtp.username",
            );
            check(
                at,
                smtp.password_env.as_deref(),
                smtp.password_file.as_deref(),
                "smtp.password",
            );
        }
    }
    if let Some(v) = &config.visitors {
        let s = &v.smtp;
        let at = "notifications.visitors.smtp".to_string();
        check(
            at.clone(),
            s.username_env.as_deref(),
            s.username_file.as_deref(),
            "smtp.username",
        );
        check(
            at,
            s.password_env.as_deref(),
            s.password_file.as_deref(),
            "smtp.password",
        );
    }
    out
}

/// What is wrong with an SMTP server's settings.
fn smtp_problem(smtp: &SmtpConfig) -> Option<String> {
    if smtp.timeout.get() > chrono::Duration::minutes(1) {
        return Some(format!(
            "timeout: {} is more than a minute (a message is held for 10 minutes while it is \
             sent; a slower server would have it sent twice)",
            smtp.timeout
        ));
    }
    if smtp.tls == SmtpTls::None && !is_loopback(&smtp.host) {
        return Some(format!(
            "tls: none sends mail (and credentials) in the clear: only for a relay on the \
             loopback interface, not `{}`",
            smtp.host
        ));
    }
    let user = smtp.username_env.is_some() || smtp.username_file.is_some();
    let pass = smtp.password_env.is_some() || smtp.password_file.is_some();
    if user != pass {
        return Some(
            "give both the user name and the password (each by *_env or *_file), or neither".into(),
        );
    }
    if (smtp.username_env.is_some() && smtp.username_file.is_some())
        || (smtp.password_env.is_some() && smtp.password_file.is_some())
    {
        return Some("name each credential with one of *_env and *_file, not both".into());
    }
    None
}

/// Why `url` cannot be an endpoint: not http(s), or plain HTTP off the loopback interface.
pub fn endpoint_problem(url: &str) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("not a URL: {e}")),
    };
    match parsed.scheme() {
        "https" => None,
        "http" if parsed.host_str().is_some_and(is_loopback) => None,
        "http" => {
            Some("plain http is only for a receiver on the loopback interface: use https".into())
        }
        other => Some(format!("scheme `{other}`: expected https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Doc {
            notifications: NotificationsConfig,
        }
        let path = Path::new("trellis.yaml");
        let doc: Doc = match crate::diag::parse_yaml(path, yaml) {
            Ok(d) => d,
            Err(e) => return vec![e.to_string()],
        };
        check(&doc.notifications, path, &YamlIndex::new(yaml))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_issue_example_is_valid() {
        let yaml = r#"notifications:
  channels:
    - {name: sec-slack, type: slack, url_env: TRELLIS_SLACK_WEBHOOK}
    - {name: sec-hook, type: webhook, url: "https://hooks.sprout.example/trellis", secret_env: TRELLIS_HOOK_SECRET}
    - name: sec-mail
      type: email
      to: [security@sprout.example]
      smtp: {host: smtp.sprout.example, port: 587, tls: starttls, username_env: SMTP_USER, password_env: SMTP_PASSWORD}
      from: "Trellis <trellis@sprout.example>"
  rules:
    - {events: [failing, erroring, reopened], severity: [high, critical], channels: [sec-slack, sec-mail]}
    - {events: [fixed, stale], channels: [sec-hook]}
"#;
        assert_eq!(problems(yaml), Vec::<String>::new());
    }

    #[test]
    fn each_problem_is_named_at_its_line_and_column() {
        let cases: &[(&str, &str)] = &[
            (
                "notifications:\n  channels:\n    - {name: s, type: slack, url: \"https://hooks.slack.com/services/x\"}\n",
                "trellis.yaml:3:",
            ),
            (
                "notifications:\n  channels:\n    - {name: h, type: webhook, url: \"http://hooks.example.com/x\", secret_env: S}\n",
                "plain http is only for a receiver on the loopback interface",
            ),
            (
                "notifications:\n  channels:\n    - {name: h, type: webhook, url: \"https://hooks.example.com/x\"}\n",
                "signing secret",
            ),
            (
                "notifications:\n  channels:\n    - {name: m, type: email, to: [a@b.example], from: t@b.example, smtp: {host: mail.example.com, tls: none}}\n",
                "only for a relay on the loopback interface",
            ),
            (
                "notifications:\n  channels:\n    - {name: m, type: email, to: [not-an-address], from: t@b.example, smtp: {host: 127.0.0.1, tls: none}}\n",
                "`not-an-address` is not an email address",
            ),
            (
                "notifications:\n  channels:\n    - {name: s, type: slack, url_env: X}\n  rules:\n    - {events: [failing], channels: [sec-slack]}\n",
                "trellis.yaml:5:",
            ),
            (
                "notifications:\n  channels:\n    - {name: s, type: slack, url_env: X}\n  rules:\n    - {events: [failing], channels: [sec-slack]}\n",
                "no channel named `sec-slack` (channels: s)",
            ),
            (
                "notifications:\n  channels:\n    - {name: s, type: slack, url_env: X}\n    - {name: s, type: slack, url_env: Y}\n",
                "duplicate channel name `s`",
            ),
            (
                "notifications:\n  channels:\n    - {name: s, type: slack, url_env: X, to: [a@b.example]}\n",
                "notifications.channels[0].to: not a key of a `slack` channel",
            ),
            (
                "notifications:\n  rules:\n    - {events: [failng], channels: [x]}\n",
                "failng",
            ),
            (
                "notifications:\n  channels:\n    - {name: s, type: slack, url_env: X, colour: red}\n",
                "colour",
            ),
        ];
        for (yaml, expected) in cases {
            let got = problems(yaml).join("\n");
            assert!(
                got.contains(expected),
                "{yaml}\nexpected a problem with `{expected}`, got:\n{got}"
            );
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
