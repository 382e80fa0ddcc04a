//! `http.pages`: each public document in `sources.http.pages`, fetched as a visitor would.
//!
//! The page is requested with certificate verification (system roots plus `ca_file`);
//! redirects are followed by hand, at most [`MAX_REDIRECTS`], and only to hosts the
//! configuration names — a redirect elsewhere is reported (`redirect_not_followed`), not
//! followed. Each page is fetched once per run however many checks read it. When its body
//! last changed is carried across runs: the SHA-256 is compared with the newest one stored
//! for the page (read from [`ProbeContext::previous`], which the runner fills).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Http, describe, http};
use crate::probes::{
    Attribute, Collected, EvidenceKind, PreviousEvidence, Probe, ProbeContext, ProbeError,
    Resource, object, ts,
};

/// Redirects followed at most, per page.
pub const MAX_REDIRECTS: usize = 10;

/// Largest body read, in bytes; a larger page is an error.
pub const MAX_BODY: usize = 10 << 20;

/// Parameters of `http.pages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Only the page with this key in `sources.http.pages` (e.g. `privacy-policy`); every
    /// configured page when absent.
    #[serde(default)]
    pub page: Option<String>,
    /// When true, a page (or `sources.http`) that is not configured gives no resources
    /// instead of an error: for a check that applies only where a URL is configured
    /// ("published where a URL is configured"). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

pub struct Pages;

impl Probe for Pages {
    const NAME: &'static str = "http.pages";
    const SOURCE: &'static str = "http";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "each page in sources.http.pages: final URL after redirects (followed only within configured hosts), status, HTTPS, content type, title, SHA-256 of the body and when it last changed.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("page", String, "the page's key in sources.http.pages"),
        attr!("url", String, "the configured URL"),
        attr!("final_url", String, "the URL after redirects"),
        attr!("status", Int, "the final HTTP status"),
        attr!("https", Bool, "the final URL is served over HTTPS"),
        attr!(
            "content_type",
            String,
            "the Content-Type header, null if none"
        ),
        attr!("title", String, "the HTML title, null if none"),
        attr!("sha256", String, "hex SHA-256 of the body"),
        attr!(
            "changed_at",
            Timestamp,
            "when the body last changed, across runs (this run's time when it differs from the last stored one, or none is stored)"
        ),
        attr!("redirects", Int, "redirects followed"),
        attr!(
            "redirect_not_followed",
            String,
            "a redirect's target on a host the configuration does not name (not requested), null if none"
        ),
    ];
    const EXAMPLE: &'static str = "probe: http.pages\nwith: {page: privacy-policy}\nrequire_resources: true\nassert: status == 200 && https\n";
    const READS_PREVIOUS: bool = true;

    type Params = PageParams;

    async fn collect(ctx: &ProbeContext, params: &PageParams) -> Result<Collected, ProbeError> {
        if ctx.sources.http.is_none() && params.optional {
            return Ok(Collected {
                resources: Vec::new(),
                raw: serde_json::json!([]).into(),
            });
        }
        let http = http(ctx).await?;
        let pages: Vec<(String, url::Url)> = match &params.page {
            None => http
                .source
                .pages
                .iter()
                .map(|(k, u)| (k.clone(), u.0.clone()))
                .collect(),
            Some(key) => match http.source.pages.get(key) {
                Some(u) => vec![(key.clone(), u.0.clone())],
                None if params.optional => Vec::new(),
                None => {
                    let known: Vec<&str> = http.source.pages.keys().map(String::as_str).collect();
                    return Err(ProbeError::Io(format!(
                        "no page `{key}` in sources.http.pages (configured: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            },
        };
        let fetches = pages.iter().map(|(key, url)| {
            let http = http.clone();
            let url = url.clone();
            async move {
                ctx.cache
                    .get_or_fetch(&format!("http:page:{key}:{url}"), async move {
                        let _permit = http.permits.acquire().await;
                        Ok(fetch(&http, &url).await)
                    })
                    .await
            }
        });
        let fetched = futures::future::join_all(fetches)
            .await
            .into_iter()
            .collect::<Result<Vec<Arc<Fetched>>, ProbeError>>()?;
        let records: Vec<PageRecord> = pages
            .iter()
            .zip(fetched)
            .map(|((key, url), f)| PageRecord::new(key, url, &f, &ctx.previous, ctx.now))
            .collect();
        let resources = records.iter().map(PageRecord::resource).collect();
        let raw = crate::probes::raw(&records)?;
        Ok(Collected { resources, raw })
    }
}

/// One page as fetched this run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fetched {
    final_url: String,
    status: Option<u16>,
    content_type: Option<String>,
    title: Option<String>,
    sha256: Option<String>,
    redirects: usize,
    redirect_not_followed: Option<String>,
    error: Option<String>,
}

/// One page as recorded in the evidence (what the next run reads back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PageRecord {
    page: String,
    url: String,
    final_url: String,
    status: Option<u16>,
    https: bool,
    content_type: Option<String>,
    title: Option<String>,
    sha256: Option<String>,
    changed_at: Option<DateTime<Utc>>,
    redirects: usize,
    redirect_not_followed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl PageRecord {
    fn new(
        key: &str,
        url: &url::Url,
        f: &Fetched,
        previous: &PreviousEvidence,
        now: DateTime<Utc>,
    ) -> PageRecord {
        let changed_at = f.sha256.as_ref().map(|sha| match last_seen(previous, key) {
            Some((prev_sha, Some(at))) if &prev_sha == sha => at,
            _ => now,
        });
        PageRecord {
            page: key.to_string(),
            url: url.to_string(),
            https: f.final_url.starts_with("https://"),
            final_url: f.final_url.clone(),
            status: f.status,
            content_type: f.content_type.clone(),
            title: f.title.clone(),
            sha256: f.sha256.clone(),
            changed_at,
            redirects: f.redirects,
            redirect_not_followed: f.redirect_not_followed.clone(),
            error: f.error.clone(),
        }
    }

    fn resource(&self) -> Resource {
        Resource {
            id: self.url.clone(),
            name: self.url.clone(),
            attributes: object(serde_json::json!({
                "page": self.page,
                "url": self.url,
                "final_url": self.final_url,
                "status": self.status,
                "https": self.https,
                "content_type": self.content_type,
                "title": self.title,
                "sha256": self.sha256,
                "changed_at": ts(self.changed_at),
                "redirects": self.redirects,
                "redirect_not_followed": self.redirect_not_followed,
            })),
            error: self.error.clone(),
            unknown: Default::default(),
            scope: false,
        }
    }
}

/// The newest stored SHA-256 of page `key` and when it last changed, from any stored
/// collection of `http.pages` that holds the page.
fn last_seen(previous: &PreviousEvidence, key: &str) -> Option<(String, Option<DateTime<Utc>>)> {
    previous.of(Pages::NAME).iter().find_map(|e| {
        let records: Vec<PageRecord> = serde_json::from_value(e.content.clone()).ok()?;
        let record = records.into_iter().find(|r| r.page == key)?;
        Some((record.sha256?, record.changed_at))
    })
}

/// Fetches `url`, following redirects within the configured hosts. Never fails: a fault is
/// the page's `error`.
pub(crate) async fn fetch(http: &Http, url: &url::Url) -> Fetched {
    let mut out = Fetched {
        final_url: url.to_string(),
        ..Default::default()
    };
    let client = match http.client(None) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let mut current = url.clone();
    loop {
        crate::metrics::api_request("http");
        let response = match client.get(current.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(format!("GET {current} failed: {}", describe(&e)));
                return out;
            }
        };
        out.final_url = current.to_string();
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            crate::metrics::api_throttled("http");
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| current.join(l).ok());
        if status.is_redirection()
            && let Some(next) = location
        {
            let allowed = matches!(next.scheme(), "http" | "https")
                && next
                    .host_str()
                    .is_some_and(|h| http.hosts.contains(&h.to_ascii_lowercase()));
            if !allowed {
                out.redirect_not_followed = Some(next.to_string());
            } else if out.redirects >= MAX_REDIRECTS {
                out.error = Some(format!(
                    "more than {MAX_REDIRECTS} redirects from {url} (last to {next})"
                ));
                return out;
            } else {
                out.redirects += 1;
                current = next;
                continue;
            }
        }
        out.status = Some(status.as_u16());
        out.content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        match body(response).await {
            Ok(bytes) => {
                out.sha256 = Some(hex::encode(Sha256::digest(&bytes)));
                out.title = title(&String::from_utf8_lossy(&bytes));
            }
            Err(e) => out.error = Some(format!("GET {current}: {e}")),
        }
        return out;
    }
}

/// The body, at most [`MAX_BODY`] bytes.
async fn body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed: {}", describe(&e)))?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(format!("body larger than {MAX_BODY} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The text of the first `<title>` element, whitespace collapsed and common entities
/// decoded; None when absent or empty.
pub(crate) fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let text = html.get(start..end)?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(
            title("<html><head><TITLE lang=en>\n  Privacy &amp; Cookies \n</title>"),
            Some("Privacy & Cookies".into())
        );
        assert_eq!(title("<title></title>"), None);
        assert_eq!(title("no title here"), None);
        assert_eq!(title("<title>unterminated"), None);
    }

    #[test]
    fn changed_at_is_kept_while_the_body_is_the_same() {
        let then = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let now = then + chrono::Duration::days(3);
        let stored = serde_json::json!([{
            "page": "privacy-policy", "url": "https://a.example/p", "final_url": "https://a.example/p",
            "status": 200, "https": true, "content_type": "text/html", "title": null,
            "sha256": "aa", "changed_at": "2026-01-01T00:00:00Z", "redirects": 0,
            "redirect_not_followed": null,
        }]);
        let previous = PreviousEvidence::new([crate::model::Evidence {
            probe: "http.pages".into(),
            params: "{}".into(),
            collected_at: then,
            content: stored,
            sha256: String::new(),
            error: None,
        }]);
        let url = url::Url::parse("https://a.example/p").unwrap();
        let same = Fetched {
            final_url: url.to_string(),
            sha256: Some("aa".into()),
            ..Default::default()
        };
        let r = PageRecord::new("privacy-policy", &url, &same, &previous, now);
        assert_eq!(r.changed_at, Some(then));
        let other = Fetched {
            sha256: Some("bb".into()),
            ..same.clone()
        };
        let r = PageRecord::new("privacy-policy", &url, &other, &previous, now);
        assert_eq!(r.changed_at, Some(now));
        let r = PageRecord::new("terms", &url, &same, &previous, now);
        assert_eq!(r.changed_at, Some(now));
    }
}
