//! Sending one message to one channel: Slack, Microsoft Teams, a generic webhook, email.
//!
//! ## The generic webhook's signature
//!
//! Each request carries:
//! - `X-Trellis-Delivery`: the message's id, the same on every retry (deduplicate on it);
//! - `X-Trellis-Timestamp`: Unix seconds when this attempt was signed;
//! - `X-Trellis-Signature`: `sha256=` and the hex HMAC-SHA256, keyed with the channel's
//!   secret, of `<timestamp>.<body>` (the timestamp's digits, a dot, the raw body bytes).
//!
//! A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses a
//! timestamp more than five minutes from its clock (a replayed request).
//!
//! Secrets are read when a message is sent (a rotated file is picked up without a restart)
//! and never appear in an error: HTTP errors are reported without their URL.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::Event;
use super::config::{ChannelConfig, ChannelKind, read_secret};
use super::message::{self, Context};

/// How long one HTTP delivery may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client of webhook channels: system roots, no redirects (a webhook that redirects
/// is misconfigured, and a redirect could carry the body elsewhere), bounded time.
pub fn http_client() -> Result<reqwest::Client, String> {
    crate::net::https_client(HTTP_TIMEOUT)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// One message to send.
pub struct Outgoing<'a> {
    /// The message's id (the batch's), the same on every attempt.
    pub id: &'a str,
    pub attempt: i32,
    pub events: &'a [Event],
}

/// Sends `out` to `channel`. The error says why, without secrets.
pub async fn send(
    channel: &ChannelConfig,
    base_dir: &Path,
    http: &reqwest::Client,
    out: &Outgoing<'_>,
    ctx: Context<'_>,
) -> Result<(), String> {
    match channel.kind {
        ChannelKind::Slack => {
            let url = endpoint(channel, base_dir)?;
            let body = slack_body(&message::render(out.events, ctx));
            post(http, &url, body.to_string(), Vec::new(), "Slack").await
        }
        ChannelKind::Teams => {
            let url = endpoint(channel, base_dir)?;
            let body = teams_body(&message::render(out.events, ctx));
            post(http, &url, body.to_string(), Vec::new(), "Teams").await
        }
        ChannelKind::Webhook => {
            let url = endpoint(channel, base_dir)?;
            let secret = read_secret(
                channel.secret_env.as_deref(),
                channel.secret_file.as_deref(),
                base_dir,
                "secret",
            )?
            .ok_or("the webhook's signing secret is not configured")?;
            let body = message::webhook_body(out.id, out.attempt, out.events, ctx).to_string();
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature = sign(secret.expose().as_bytes(), &timestamp, body.as_bytes());
            let headers = vec![
                ("X-Trellis-Delivery", out.id.to_string()),
                ("X-Trellis-Timestamp", timestamp),
                ("X-Trellis-Signature", signature),
            ];
            post(http, &url, body, headers, "webhook").await
        }
        ChannelKind::Email => send_email(channel, base_dir, out, ctx).await,
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(e) => unreachable!("{e}"),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn endpoint(channel: &ChannelConfig, base_dir: &Path) -> Result<String, String> {
    if let Some(url) = &channel.url {
        return Ok(url.clone());
    }
    let url = read_secret(
        channel.url_env.as_deref(),
        channel.url_file.as_deref(),
        base_dir,
        "url",
    )?
    .ok_or("the endpoint is not configured")?;
    let url = url.expose().to_string();
    if let Some(problem) = super::config::endpoint_problem(&url) {
        // The URL itself is the secret: only what is wrong with it is said.
        return Err(format!("the configured endpoint is unusable: {problem}"));
    }
    Ok(url)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: String,
    headers: Vec<(&'static str, String)>,
    what: &str,
) -> Result<(), String> {
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{what} endpoint: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    Err(format!(
        "{what} endpoint answered HTTP {}{}",
        status.as_u16(),
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    ))
}

/// Slack's mrkdwn reserves `&`, `<` and `>`.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming webhook's body: the subject in bold, a line per event with its link.
pub fn slack_body(m: &message::Message) -> serde_json::Value {
    let mut text = format!("*{}*", slack_escape(&m.subject));
    for line in &m.lines {
        text.push_str("\n• ");
        text.push_str(&slack_escape(&line.text));
        if let Some(link) = &line.link {
            text.push_str(&format!(" <{}|Open>", slack_escape(link)));
        }
    }
    json!({ "text": text })
}

/// A Teams workflow webhook's body: a message with one Adaptive Card.
pub fn teams_body(m: &message::Message) -> serde_json::Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": m.subject,
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
    })];
    for line in &m.lines {
        let text = match &line.link {
            Some(link) => format!("{} [Open]({link})", line.text),
            None => line.text.clone(),
        };
        body.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

async fn send_email(
    channel: &ChannelConfig,
    base_dir: &Path,
    out: &Outgoing<'_>,
    ctx: Context<'_>,
) -> Result<(), String> {
    let smtp = channel.smtp.as_ref().ok_or("no smtp server configured")?;
    let rendered = message::render(out.events, ctx);
    let mail = super::mail::Mail {
        from: channel.from.as_deref().ok_or("no sender configured")?,
        to: &channel.to,
        subject: &rendered.subject,
        body: rendered.plain_text(),
        id: out.id,
        headers: Vec::new(),
    };
    super::mail::send(smtp, base_dir, mail).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",b"1700000000.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(b"s3cret", "1700000000", b"{}"),
            "sha256=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }

    #[test]
    fn slack_text_is_escaped_and_links_are_slack_links() {
        let m = message::Message {
            subject: "A <b> & c".into(),
            lines: vec![message::Line {
                text: "x > y".into(),
                link: Some("https://t.example/dashboard/controls/mfa".into()),
            }],
        };
        assert_eq!(
            slack_body(&m)["text"],
            "*A &lt;b&gt; &amp; c*\n• x &gt; y <https://t.example/dashboard/controls/mfa|Open>"
        );
    }
}
