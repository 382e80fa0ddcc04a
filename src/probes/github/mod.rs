//! GitHub probes: organisation 2FA and membership, default-branch protection (classic
//! protection and rulesets), secret scanning and Dependabot.
//!
//! Configuration is `sources.github` (see [`crate::config::GithubSource`]): GitHub.com or
//! Enterprise Server (`https://HOST/api/v3`), a token or a GitHub App, the organisations, and
//! which repositories to read.
//!
//! [`Github`] is the run's client: octocrab for authentication (token, or App JWT and
//! installation tokens), with GitHub's REST conventions handled here — `Link` pagination,
//! primary rate limits (`X-RateLimit-Remaining`/`Reset`) and secondary ones (`Retry-After`)
//! waited out within a per-run time budget, 5xx and network failures retried, a timeout per
//! call. Every listing is cached for the run in [`fetch`], so each page is requested once.
//!
//! Failures are never verdicts: a call GitHub refuses is an error naming the permission that
//! is missing; a repository whose data could not be read is one `error` resource, and the
//! other repositories are still evaluated.

pub(crate) mod fetch;
pub(crate) mod graphql;
pub mod probes;

pub use fetch::ENDPOINTS;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::conditional::{Validator, Validators};
use super::{ProbeContext, ProbeError, RawJson, Resource};
use crate::config::GithubSource;

/// `X-GitHub-Api-Version` sent with every call.
pub const API_VERSION: &str = "2022-11-28";

/// Page size of every listing (GitHub's maximum).
const PER_PAGE: u32 = 100;

/// A REST endpoint Trellis calls and what it needs to be allowed to (named when refused).
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `GET /orgs/{org}/members`.
    pub route: &'static str,
    /// What a token or an App needs, e.g. "classic token: `read:org`; App: Members (read)".
    pub permission: &'static str,
}

/// The answer to one call, once rate limits, retries and timeouts are dealt with.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// A request: a GET (conditional when an earlier run kept the answer) or a GraphQL POST.
#[derive(Clone, Copy)]
enum Method<'a> {
    Get,
    Post(&'a serde_json::Value),
}

impl Answer {
    /// A header's value, trimmed, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// GitHub's `message` field of an error body, if any.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }
}

/// The run's GitHub client for one organisation.
pub(crate) struct Github {
    octo: Octocrab,
    /// The path part of `api_url` (`/api/v3` on Enterprise Server, empty on GitHub.com).
    base_path: String,
    source: GithubSource,
    permits: Semaphore,
    /// The run's rate-limit state (shared by every organisation and call).
    limits: Arc<RateLimits>,
    /// Answers kept by earlier runs, and the run's collector (conditional requests).
    validators: Arc<Validators>,
    /// `scheme://host[:port]` of `api_url`: with a path, the key of a kept answer.
    origin: String,
    /// The token, when authenticating with one (an App's installation token is octocrab's).
    token: Option<crate::config::Secret>,
}

/// Rate limits across the run: a deadline past which no more waiting is allowed
/// (`rate_limit_wait` after the first call), and the instant GitHub asked everyone to wait
/// until. Concurrent calls hitting the same limit share one pause rather than each spending
/// the budget.
#[derive(Debug)]
pub(crate) struct RateLimits {
    deadline: tokio::time::Instant,
    paused_until: Mutex<Option<tokio::time::Instant>>,
    /// Limits an answer said are used up (`X-RateLimit-Remaining: 0`, or GraphQL's
    /// `rateLimit.remaining` below the last query's cost), by resource (`core`, `graphql`),
    /// with when they reset: calls of that resource wait for the reset — or, past the run's
    /// deadline, are refused without being sent.
    exhausted: Mutex<std::collections::HashMap<&'static str, DateTime<Utc>>>,
}

/// Shortest wait after a rate-limit answer (a `Retry-After: 0` must not spin).
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// Rate-limit answers one call may wait out before giving up.
const MAX_RATE_LIMIT_WAITS: u32 = 10;

impl std::fmt::Debug for Github {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Github")
            .field("api_url", &self.source.api_url)
            .finish_non_exhaustive()
    }
}

fn source(ctx: &ProbeContext) -> Result<&GithubSource, ProbeError> {
    ctx.sources
        .github
        .as_ref()
        .filter(|g| !g.orgs.is_empty())
        .ok_or(ProbeError::NotConfigured("github"))
}

/// The organisations to read: `selected` (each must be configured), else all.
pub(crate) fn orgs(ctx: &ProbeContext, selected: &[String]) -> Result<Vec<String>, ProbeError> {
    let source = source(ctx)?;
    for org in selected {
        if !source.orgs.contains(org) {
            return Err(ProbeError::Io(format!(
                "github organisation `{org}` is not configured (sources.github.orgs: {})",
                source.orgs.join(", ")
            )));
        }
    }
    Ok(source
        .orgs
        .iter()
        .filter(|o| selected.is_empty() || selected.contains(o))
        .cloned()
        .collect())
}

/// The client for `org`, built once per run (a token client is shared by every organisation;
/// an App acts as its installation in each one).
pub(crate) async fn client(ctx: &ProbeContext, org: &str) -> Result<Arc<Github>, ProbeError> {
    let source = source(ctx)?;
    let limits = ctx
        .cache
        .get_or_fetch("github:rate-limits", async {
            Ok(RateLimits {
                deadline: tokio::time::Instant::now() + source.rate_limit_wait.to_std(),
                paused_until: Mutex::new(None),
                exhausted: Mutex::default(),
            })
        })
        .await?;
    let key = if source.app.is_some() {
        format!("github:client:{org}")
    } else {
        "github:client".to_string()
    };
    let built = ctx
        .cache
        .get_or_fetch(&key, Box::pin(build(ctx, source, org, limits)))
        .await?;
    Ok(Arc::clone(&built))
}

async fn build(
    ctx: &ProbeContext,
    source: &GithubSource,
    org: &str,
    limits: Arc<RateLimits>,
) -> Result<Arc<Github>, ProbeError> {
    let uri: http::Uri = source.api_url.parse().map_err(|e| {
        ProbeError::Io(format!(
            "sources.github.api_url `{}` is not a URL: {e}",
            source.api_url
        ))
    })?;
    let base_path = uri.path().trim_end_matches('/').to_string();
    let origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let ways = [
        source.token_env.is_some(),
        source.token_file.is_some(),
        source.app.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() != 1 {
        return Err(ProbeError::Auth(
            "sources.github: set exactly one of token_env, token_file or app".into(),
        ));
    }
    let mut bearer = None;
    let octo = if let Some(app) = &source.app {
        let path = ctx.resolve_path(&app.private_key_file);
        let pem = tokio::fs::read(&path).await.map_err(|e| {
            ProbeError::Auth(format!(
                "cannot read the GitHub App private key {}: {e}",
                path.display()
            ))
        })?;
        let key = octocrab::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
            ProbeError::Auth(format!(
                "the GitHub App private key {} is not an RSA PEM key: {e}",
                path.display()
            ))
        })?;
        let as_app = octocrab_client(source, uri, |b| {
            b.app(octocrab::models::AppId(app.app_id), key).build()
        })?;
        let installation = match app.installation_id {
            Some(_) if source.orgs.len() > 1 => {
                return Err(ProbeError::Auth(
                    "sources.github.app.installation_id names one installation, but an App is installed once per organisation: with several orgs, leave it out so each organisation's installation is looked up".into(),
                ));
            }
            Some(id) => id,
            None => installation_of(&as_app, source, &base_path, org).await?,
        };
        let octo = as_app
            .installation(octocrab::models::InstallationId(installation))
            .map_err(|e| ProbeError::Io(format!("cannot build the GitHub client: {e}")))?;
        // Mint the installation token now, so a refusal is reported as such.
        tokio::time::timeout(source.call_timeout.to_std(), octo.installation_token())
            .await
            .map_err(|_| {
                ProbeError::Unavailable(format!(
                    "POST /app/installations/{installation}/access_tokens: the call timed out"
                ))
            })?
            .map_err(|e| {
                ProbeError::Auth(format!(
                    "GitHub refused an installation token for App {} (installation {installation}): {}",
                    app.app_id,
                    octocrab_message(&e)
                ))
            })?;
        octo
    } else {
        let token = source
            .token(&ctx.base_dir)
            .map_err(ProbeError::Auth)?
            .ok_or_else(|| ProbeError::Auth("sources.github: no token configured".into()))?;
        let octo = octocrab_client(source, uri, |b| {
            b.personal_token(token.expose().to_string()).build()
        })?;
        bearer = Some(token);
        octo
    };
    Ok(Arc::new(Github {
        octo,
        base_path,
        source: source.clone(),
        permits: Semaphore::new(source.concurrency.get()),
        limits,
        validators: Arc::clone(&ctx.validators),
        origin,
        token: bearer,
    }))
}

type Builder = octocrab::OctocrabBuilder<
    octocrab::NoSvc,
    octocrab::DefaultOctocrabBuilderConfig,
    octocrab::NoAuth,
    octocrab::NotLayerReady,
>;

/// An octocrab client on `api_url` with `auth` (synchronous: the builder is not `Send`).
fn octocrab_client(
    source: &GithubSource,
    uri: http::Uri,
    auth: impl FnOnce(Builder) -> octocrab::Result<Octocrab>,
) -> Result<Octocrab, ProbeError> {
    let builder = Octocrab::builder()
        .base_uri(uri)
        .map_err(|e| ProbeError::Io(format!("sources.github.api_url: {e}")))?
        .set_connect_timeout(Some(source.call_timeout.to_std()))
        .set_read_timeout(Some(source.call_timeout.to_std()));
    auth(builder).map_err(|e| ProbeError::Io(format!("cannot build the GitHub client: {e}")))
}

/// The text of an octocrab error without internals (never a token: octocrab marks
/// authorization headers sensitive and does not print them).
fn octocrab_message(e: &octocrab::Error) -> String {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            format!("HTTP {}: {}", source.status_code, source.message)
        }
        other => other.to_string(),
    }
}

/// `GET /orgs/{org}/installation` as the App: the installation in `org`.
async fn installation_of(
    as_app: &Octocrab,
    source: &GithubSource,
    base_path: &str,
    org: &str,
) -> Result<u64, ProbeError> {
    #[derive(serde::Deserialize)]
    struct Installation {
        id: u64,
        repository_selection: Option<String>,
    }
    let path = format!("{base_path}/orgs/{org}/installation");
    let (status, body) = tokio::time::timeout(source.call_timeout.to_std(), async {
        let response = as_app
            ._get_with_headers(path.as_str(), Some(headers()))
            .await?;
        let status = response.status().as_u16();
        let body = as_app.body_to_string(response).await?;
        Ok::<_, octocrab::Error>((status, body))
    })
    .await
    .map_err(|_| {
        ProbeError::Unavailable(format!("GET /orgs/{org}/installation: the call timed out"))
    })?
    .map_err(|e| {
        ProbeError::Unavailable(format!(
            "GET /orgs/{org}/installation: GitHub could not be reached: {e}"
        ))
    })?;
    match status {
        200 => {
            let i = serde_json::from_str::<Installation>(&body)
                .map_err(|e| ProbeError::BadBody(format!("GET /orgs/{org}/installation: {e}")))?;
            if i.repository_selection.as_deref() == Some("selected") {
                tracing::warn!(
                    org,
                    "the GitHub App is installed on selected repositories only: the others are not read"
                );
            }
            Ok(i.id)
        }
        404 => Err(ProbeError::Auth(format!(
            "the GitHub App is not installed in organisation `{org}`"
        ))),
        s => Err(ProbeError::Auth(format!(
            "GET /orgs/{org}/installation as the GitHub App answered HTTP {s}"
        ))),
    }
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/vnd.github+json"),
    );
    h.insert(
        "x-github-api-version",
        http::HeaderValue::from_static(API_VERSION),
    );
    h
}

impl Github {
    /// The path to request for a route (`/orgs/acme/members?…`), below `api_url`.
    fn path(&self, route: &str) -> String {
        format!("{}{route}", self.base_path)
    }

    /// When to retry after a rate limit asking for `wanted`: the shared pause, extended if
    /// needed; or how much of the budget was left if that is past the run's deadline.
    fn pause(&self, wanted: Duration) -> Result<tokio::time::Instant, Duration> {
        let now = tokio::time::Instant::now();
        let mut paused = self
            .limits
            .paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let until = paused
            .unwrap_or(now)
            .max(now + wanted.max(MIN_RATE_LIMIT_WAIT));
        if until > self.limits.deadline {
            return Err(self.limits.deadline.saturating_duration_since(now));
        }
        *paused = Some(until);
        Ok(until)
    }

    /// One GET, through rate limits (waited out within the budget), 5xx and network failures
    /// (retried), and the per-call timeout. Any other status is returned for the caller to
    /// interpret. `path` is below `api_url`, or an absolute `next` link from GitHub.
    ///
    /// The GET is conditional when an earlier run kept the answer (`If-None-Match`, else
    /// `If-Modified-Since`): a `304 Not Modified` — free of GitHub's rate limit — is returned
    /// as the kept `200`. Every answer with a validator is recorded for the next run.
    pub(crate) async fn get(&self, endpoint: Endpoint, path: &str) -> Result<Answer, ProbeError> {
        let key = format!("github:{}{path}", self.origin);
        let kept = self.validators.previous(&key);
        let mut answer = self
            .call(endpoint.route, path, Method::Get, kept.as_deref())
            .await?;
        match (answer.status, kept) {
            (304, Some(kept)) => {
                answer.status = 200;
                answer.headers.remove(http::header::LINK);
                if let Some(link) = kept.link.as_deref().and_then(|l| l.parse().ok()) {
                    answer.headers.insert(http::header::LINK, link);
                }
                answer.body = kept.body.clone();
                self.validators.record(&key, kept);
            }
            (200, _) => {
                let header = |name| answer.header(name).map(str::to_string);
                let etag = header("etag");
                let last_modified = header("last-modified");
                if etag.is_some() || last_modified.is_some() {
                    self.validators.record(
                        &key,
                        Arc::new(Validator {
                            etag,
                            last_modified,
                            link: header("link"),
                            body: answer.body.clone(),
                        }),
                    );
                }
            }
            _ => {}
        }
        Ok(answer)
    }

    /// A GraphQL query (`POST /graphql`, `/api/graphql` on Enterprise Server), through the
    /// same rate limits, retries and timeout as a GET. The answer is returned whatever its
    /// status.
    pub(crate) async fn post_graphql(
        &self,
        body: &serde_json::Value,
    ) -> Result<Answer, ProbeError> {
        let path = self.graphql_path();
        self.call("POST /graphql", &path, Method::Post(body), None)
            .await
    }

    /// Where GraphQL answers: `/graphql` beside the REST root (`/api/v3` → `/api/graphql`).
    pub(crate) fn graphql_path(&self) -> String {
        match self.base_path.strip_suffix("/v3") {
            Some(api) => format!("{api}/graphql"),
            None => format!("{}/graphql", self.base_path),
        }
    }

    /// Waits for `resource`'s limit to reset if an earlier answer said it is used up; refuses
    /// (naming the limit) when the reset is past the run's deadline.
    async fn await_limit(&self, resource: &'static str, what: &str) -> Result<(), ProbeError> {
        let reset = self
            .limits
            .exhausted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(resource)
            .copied();
        let Some(reset) = reset else { return Ok(()) };
        let Ok(wait) = (reset - Utc::now()).to_std() else {
            return Ok(());
        };
        // A second past the reset, as GitHub's reset is whole seconds.
        let wait = wait + Duration::from_secs(1);
        let now = tokio::time::Instant::now();
        let until = now + wait;
        crate::metrics::api_throttled("github");
        if until > self.limits.deadline {
            let left = self.limits.deadline.saturating_duration_since(now);
            return Err(ProbeError::Throttled(format!(
                "{what}: GitHub's {} rate limit is used up until {} (a {}s wait), more than the {}s left of sources.github.rate_limit_wait",
                limit_name(resource),
                reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                wait.as_secs(),
                left.as_secs()
            )));
        }
        tracing::warn!(call = %what, wait_secs = wait.as_secs(), resource, "github rate limit used up: waiting for its reset");
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    /// Notes a limit an answer says is used up (`X-RateLimit-Remaining: 0`).
    fn note_limit(&self, answer: &Answer, resource: &'static str) {
        let header = |name| answer.header(name);
        if header("x-ratelimit-remaining") != Some("0") {
            return;
        }
        let resource = match header("x-ratelimit-resource") {
            Some("graphql") => "graphql",
            Some(_) | None => resource,
        };
        if let Some(reset) = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|t| DateTime::from_timestamp(t, 0))
        {
            self.exhausted_until(resource, reset);
        }
    }

    /// Records that `resource`'s limit is used up until `reset`.
    pub(crate) fn exhausted_until(&self, resource: &'static str, reset: DateTime<Utc>) {
        self.limits
            .exhausted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(resource, reset);
    }

    /// One request, through rate limits (waited out within the budget), 5xx and network
    /// failures (retried), and the per-call timeout.
    async fn call(
        &self,
        route: &str,
        path: &str,
        method: Method<'_>,
        kept: Option<&Validator>,
    ) -> Result<Answer, ProbeError> {
        let (verb, resource) = match method {
            Method::Get => ("GET", "core"),
            Method::Post(_) => ("POST", "graphql"),
        };
        let what = format!("{verb} {path}");
        let mut attempt = 0u32;
        let mut waits = 0u32;
        let mut backoff = self.source.initial_backoff.to_std();
        loop {
            attempt += 1;
            // Everyone waits out a rate limit another call ran into.
            let paused = *self
                .limits
                .paused_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(until) = paused {
                tokio::time::sleep_until(until).await;
            }
            let sent = {
                let _permit = self.permits.acquire().await;
                // Checked with the permit held: no call leaves while one in flight may be
                // told the limit is used up.
                self.await_limit(resource, &what).await?;
                crate::metrics::api_request("github");
                tokio::time::timeout(
                    self.source.call_timeout.to_std(),
                    Box::pin(self.send(path, method, kept)),
                )
                .await
            };
            let failure = match sent {
                Err(_) => format!("{what}: the call timed out"),
                Ok(Err(e)) => format!("{what}: GitHub could not be reached: {e}"),
                Ok(Ok(answer)) => {
                    if let Some(wait) = rate_limited(&answer, Utc::now()) {
                        crate::metrics::api_throttled("github");
                        let refuse = |left: Duration| {
                            ProbeError::Throttled(format!(
                                "{what} ({route}): GitHub's {} rate limit needs a {}s wait, more than the {}s left of sources.github.rate_limit_wait",
                                wait.kind,
                                wait.duration.as_secs(),
                                left.as_secs()
                            ))
                        };
                        waits += 1;
                        if waits > MAX_RATE_LIMIT_WAITS {
                            return Err(refuse(Duration::ZERO));
                        }
                        let until = self.pause(wait.duration).map_err(refuse)?;
                        tracing::warn!(
                            call = %what,
                            wait_secs = wait.duration.as_secs(),
                            kind = wait.kind,
                            "github rate limit: waiting"
                        );
                        tokio::time::sleep_until(until).await;
                        attempt -= 1;
                        continue;
                    }
                    self.note_limit(&answer, resource);
                    if answer.status < 500 {
                        return Ok(answer);
                    }
                    format!(
                        "{what}: GitHub answered HTTP {} after {attempt} attempt(s)",
                        answer.status
                    )
                }
            };
            if attempt >= self.source.max_attempts.get() {
                return Err(ProbeError::Unavailable(failure));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// Sends one request and reads the whole answer.
    async fn send(
        &self,
        path: &str,
        method: Method<'_>,
        kept: Option<&Validator>,
    ) -> Result<Answer, String> {
        let response = match method {
            Method::Get => {
                let mut h = headers();
                if let Some(kept) = kept {
                    let conditional = match (&kept.etag, &kept.last_modified) {
                        (Some(etag), _) => Some((http::header::IF_NONE_MATCH, etag)),
                        (None, Some(date)) => Some((http::header::IF_MODIFIED_SINCE, date)),
                        (None, None) => None,
                    };
                    if let Some((name, value)) = conditional
                        && let Ok(value) = http::HeaderValue::from_str(value)
                    {
                        h.insert(name, value);
                    }
                }
                self.octo
                    ._get_with_headers(path, Some(h))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Method::Post(body) => {
                let octo = self.graphql_client().await?;
                let mut request = http::Request::builder()
                    .method(http::Method::POST)
                    .uri(self.graphql_path());
                for (name, value) in headers().iter() {
                    request = request.header(name, value);
                }
                let request = octo
                    .build_request(request, Some(body))
                    .map_err(|e| e.to_string())?;
                octo.execute(request).await.map_err(|e| e.to_string())?
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = self
            .octo
            .body_to_string(response)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The client GraphQL queries go through. On Enterprise Server `/api/graphql` is outside
    /// `api_url` (`/api/v3`), which octocrab puts before every path it is given, so queries
    /// go through a client rooted at `/api` with the same credentials (an App's installation
    /// token as the main client holds it).
    async fn graphql_client(&self) -> Result<Octocrab, String> {
        if self.base_path.is_empty() {
            return Ok(self.octo.clone());
        }
        let root = self.graphql_path();
        let root = root.trim_end_matches("/graphql");
        let uri: http::Uri = format!("{}{root}", self.origin)
            .parse()
            .map_err(|e| format!("the GraphQL root of {}: {e}", self.source.api_url))?;
        let token = match &self.token {
            Some(token) => token.expose().to_string(),
            None => {
                use octocrab::secrecy::ExposeSecret as _;
                self.octo
                    .installation_token()
                    .await
                    .map_err(|e| octocrab_message(&e))?
                    .expose_secret()
                    .to_string()
            }
        };
        octocrab_client(&self.source, uri, |b| b.personal_token(token).build())
            .map_err(|e| e.to_string())
    }

    /// A JSON answer of `endpoint` at `path`, typed and as its text; 401, 403 and 404 are
    /// errors naming what is needed (callers for whom 404 means something call
    /// [`Github::get`]).
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
    ) -> Result<(T, RawJson), ProbeError> {
        let answer = self.get(endpoint, path).await?;
        match answer.status {
            200 => {
                let typed = parse(endpoint, path, &answer.body)?;
                Ok((typed, raw_text(endpoint, path, answer.body)?))
            }
            _ => Err(refused(endpoint, path, &answer)),
        }
    }

    /// Every page of a listing, following `Link: <…>; rel="next"`: the items typed, and each
    /// as its text.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        route: &str,
    ) -> Result<(Vec<T>, Vec<RawJson>), ProbeError> {
        let sep = if route.contains('?') { '&' } else { '?' };
        let mut next = Some(self.path(&format!("{route}{sep}per_page={PER_PAGE}")));
        let mut items = Vec::new();
        let mut raw = Vec::new();
        while let Some(path) = next.take() {
            let answer = self.get(endpoint, &path).await?;
            if answer.status != 200 {
                return Err(refused(endpoint, &path, &answer));
            }
            let page: Vec<T> = parse(endpoint, &path, &answer.body)?;
            let texts: Vec<RawJson> = parse(endpoint, &path, &answer.body)?;
            items.extend(page);
            raw.extend(texts);
            next = next_link(&answer.headers).map(|url| relative(&url));
        }
        Ok((items, raw))
    }

    /// `route` below the API root, as requested.
    pub(crate) fn route(&self, route: &str) -> String {
        self.path(route)
    }
}

/// An answer's body read as `T`, straight from its text.
fn parse<T: DeserializeOwned>(endpoint: Endpoint, path: &str, body: &str) -> Result<T, ProbeError> {
    serde_json::from_str(body).map_err(|e| {
        let what = if e.is_data() {
            "unexpected answer"
        } else {
            "the answer is not JSON"
        };
        ProbeError::BadBody(format!("GET {path} ({}): {what}: {e}", endpoint.route))
    })
}

/// An answer's body kept as its text (evidence).
fn raw_text(endpoint: Endpoint, path: &str, body: String) -> Result<RawJson, ProbeError> {
    RawJson::from_string(body).map_err(|e| {
        ProbeError::BadBody(format!(
            "GET {path} ({}): the answer is not JSON: {e}",
            endpoint.route
        ))
    })
}

/// The error for a refusal (401, 403, 404, 422…), naming what the call needs.
pub(crate) fn refused(endpoint: Endpoint, path: &str, answer: &Answer) -> ProbeError {
    let message = answer.message();
    match answer.status {
        404 if message == "Branch not found" => ProbeError::Io(format!(
            "GET {path}: the branch does not exist (an empty repository?)"
        )),
        401 => ProbeError::Auth(format!(
            "GET {path}: GitHub rejected the credentials (HTTP 401: {message})"
        )),
        403 | 404 | 422 => ProbeError::Auth(format!(
            "GET {path}: HTTP {} ({message}): the credentials need {} for {}",
            answer.status, endpoint.permission, endpoint.route
        )),
        s => ProbeError::Io(format!("GET {path}: unexpected HTTP {s}: {message}")),
    }
}

/// How a resource's limit is named in messages.
fn limit_name(resource: &str) -> &'static str {
    match resource {
        "graphql" => "GraphQL",
        _ => "primary",
    }
}

/// A rate limit to wait out.
struct Wait {
    duration: Duration,
    kind: &'static str,
}

/// Whether `answer` is a rate limit, and how long to wait: a primary limit until
/// `X-RateLimit-Reset`; a secondary one for `Retry-After` (or a minute, as GitHub advises).
fn rate_limited(answer: &Answer, now: DateTime<Utc>) -> Option<Wait> {
    let header = |name| answer.header(name);
    // GraphQL's limit is answered `200` with a `RATE_LIMITED` error.
    let graphql_limited = answer.status == 200
        && header("x-ratelimit-remaining") == Some("0")
        && serde_json::from_str::<serde_json::Value>(&answer.body).is_ok_and(|v| {
            v["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["type"] == "RATE_LIMITED"))
        });
    if answer.status != 403 && answer.status != 429 && !graphql_limited {
        return None;
    }
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Wait {
            duration: Duration::from_secs(secs),
            kind: "secondary",
        });
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(now.timestamp() + 60);
        let secs = u64::try_from(reset - now.timestamp()).unwrap_or(0) + 1;
        let resource = header("x-ratelimit-resource").unwrap_or(if graphql_limited {
            "graphql"
        } else {
            "core"
        });
        return Some(Wait {
            duration: Duration::from_secs(secs),
            kind: limit_name(resource),
        });
    }
    let secondary = answer.status == 429
        || answer
            .message()
            .to_ascii_lowercase()
            .contains("secondary rate limit");
    secondary.then(|| Wait {
        duration: Duration::from_secs(60),
        kind: "secondary",
    })
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// An absolute GitHub URL as a path and query (the client adds the host and credentials).
fn relative(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| url.to_string()),
        Err(_) => url.to_string(),
    }
}

/// An `error` resource standing for a whole organisation or repository that could not be read;
/// `scope` when it may hold any number of the probe's resources (see [`Resource::scope`]).
pub(crate) fn unreadable(probe: &str, what: &str, error: &ProbeError, scope: bool) -> Resource {
    Resource {
        id: format!("github:{what}:{probe}"),
        name: format!("GitHub {what}"),
        attributes: Default::default(),
        error: Some(error.to_string()),
        unknown: Default::default(),
        scope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status,
            headers: h,
            body: body.to_string(),
        }
    }

    /// docs/github.md names every endpoint Trellis calls.
    #[test]
    fn every_endpoint_is_documented() {
        let doc = include_str!("../../../docs/github.md");
        for e in ENDPOINTS {
            let path = e.route.trim_start_matches("GET ");
            let path = path.split('?').next().unwrap_or(path);
            assert!(
                doc.contains(path),
                "docs/github.md does not mention {}",
                e.route
            );
        }
    }

    #[test]
    fn rate_limits_are_recognised() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .to_utc();
        let t = now.timestamp();
        let check = |a: Answer, want: Option<(u64, &str)>| {
            let got = rate_limited(&a, now).map(|w| (w.duration.as_secs(), w.kind));
            assert_eq!(got, want);
        };
        let reset = (t + 30).to_string();
        check(
            answer(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset),
                ],
                "{}",
            ),
            Some((31, "primary")),
        );
        check(
            answer(429, &[("retry-after", "7")], "{}"),
            Some((7, "secondary")),
        );
        check(
            answer(
                403,
                &[],
                r#"{"message":"You have exceeded a secondary rate limit."}"#,
            ),
            Some((60, "secondary")),
        );
        check(
            answer(
                403,
                &[("x-ratelimit-remaining", "4999")],
                r#"{"message":"Resource not accessible by integration"}"#,
            ),
            None,
        );
        check(answer(404, &[], "{}"), None);
    }

    #[test]
    fn next_links_are_followed_below_the_api_root() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            http::HeaderValue::from_static(
                "<https://ghe.example.com/api/v3/organizations/7/members?per_page=100&page=2>; rel=\"next\", <https://ghe.example.com/api/v3/organizations/7/members?per_page=100&page=5>; rel=\"last\"",
            ),
        );
        let next = next_link(&h).unwrap();
        assert_eq!(
            relative(&next),
            "/api/v3/organizations/7/members?per_page=100&page=2"
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
