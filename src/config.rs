//! Configuration: one YAML file, overridable by `TRELLIS__SECTION__KEY` environment variables.
//!
//! Every key is documented in `config.example.yaml`. Secrets are never written in the file:
//! the file names the environment variable (`token_env`) or file (`token_file`) holding them,
//! and [`Secret`] redacts itself in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diag::{self, Diagnostic};
use crate::duration::HumanDuration;
use crate::schedule::CronSchedule;

/// The configuration file bundled with Trellis, used when no other is found.
pub const BUNDLED_EXAMPLE: &str = include_str!("../config.example.yaml");
pub const BUNDLED_EXAMPLE_NAME: &str = "config.example.yaml";

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://PATH?mode=rwc` or `postgres://user@host:port/db`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Folder of control files (`<category>/<id>.yaml`), relative to the config file.
    #[serde(default = "default_controls_dir")]
    pub controls_dir: PathBuf,
    /// Folder of exception files (`*.yaml`); absent means no exceptions.
    #[serde(default = "default_exceptions_dir")]
    pub exceptions_dir: PathBuf,
    /// Crontab used by controls without their own `schedule` (5 or 6 fields, UTC).
    #[serde(default = "default_schedule")]
    pub default_schedule: CronSchedule,
    /// How old a control's newest successful result may be before it is stale (`36h`, `7d`).
    #[serde(default = "default_freshness")]
    pub default_freshness: HumanDuration,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub sources: SourcesConfig,
    #[serde(default)]
    pub trust_page: TrustPageConfig,
    #[serde(default)]
    pub dashboard: DashboardConfig,
    #[serde(default)]
    pub signing: SigningConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub notifications: crate::notify::config::NotificationsConfig,
}

fn default_database_url() -> String {
    "sqlite://trellis.db?mode=rwc".into()
}
fn default_controls_dir() -> PathBuf {
    "controls".into()
}
fn default_exceptions_dir() -> PathBuf {
    "exceptions".into()
}
fn default_schedule() -> CronSchedule {
    CronSchedule::parse("0 */6 * * *").unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_freshness() -> HumanDuration {
    "1d".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("controls_dir", &self.controls_dir)
            .field("exceptions_dir", &self.exceptions_dir)
            .field("default_schedule", &self.default_schedule)
            .field("default_freshness", &self.default_freshness)
            .field("server", &self.server)
            .field("limits", &self.limits)
            .field("sources", &self.sources)
            .field("trust_page", &self.trust_page)
            .field("dashboard", &self.dashboard)
            .field("signing", &self.signing)
            .field("metrics", &self.metrics)
            .field("log", &self.log)
            .field("notifications", &self.notifications)
            .finish()
    }
}

/// Hides the password of a URL's userinfo (`postgres://u:secret@h/db` → `postgres://u:***@h/db`).
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.rsplit_once('@')
        && let Some((user, _password)) = userinfo.split_once(':')
    {
        out = format!("{scheme}://{user}:***@{host}");
    }
    // `?password=…` / `&sslpassword=…` query parameters.
    if let Some((base, query)) = out.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}?{}", query.join("&"));
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the web server listens on.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Send `Strict-Transport-Security` with this max-age (e.g. `365d`) — only when the site
    /// is served over HTTPS (by a proxy in front of Trellis). Absent: no HSTS header.
    #[serde(default)]
    pub hsts_max_age: Option<HumanDuration>,
    /// Addresses of reverse proxies in front of Trellis. A request from one of them is
    /// attributed to the last address in `X-Forwarded-For` that is not itself a trusted
    /// proxy (for rate limits and the access-request log); from anyone else the header is
    /// ignored, so it cannot be spoofed.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How often the live trust page checks the database for results written by another
    /// process (another Trellis instance, `trellis check`). Runs of this process show at once.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: HumanDuration,
}

fn default_bind() -> String {
    "127.0.0.1:8080".into()
}

fn default_refresh_interval() -> HumanDuration {
    "10s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: default_bind(),
            hsts_max_age: None,
            trusted_proxies: Vec::new(),
            refresh_interval: default_refresh_interval(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longest one probe collection may take before it is an `error` (`60s`, `5m`). GitHub
    /// collections have a budget of their own (`sources.github.collection_timeout`, by
    /// default this plus `sources.github.rate_limit_wait`).
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout: HumanDuration,
    /// How many collections (a probe with its parameters) run at once: within a run of
    /// `check`, and across all the units of queued runs one `serve` instance works on. Each
    /// holds what it has read until it is evaluated, so this bounds memory as well as the load
    /// on the sources.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Units of queued runs this instance works on at once (a unit is the controls that share
    /// collections, see ARCHITECTURE.md "Run queue"); together they run at most
    /// `concurrency` collections.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long an instance's claim on a unit of work holds without renewal (renewed every
    /// third of it). When an instance dies, another takes its work over after this.
    #[serde(default = "default_lease")]
    pub lease: HumanDuration,
    /// How often an idle instance looks for queued work another instance queued.
    #[serde(default = "default_queue_poll")]
    pub queue_poll: HumanDuration,
    /// On shutdown (SIGTERM), how long a unit in progress may take to finish before it is
    /// released to the queue for another instance.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
}

fn default_probe_timeout() -> HumanDuration {
    "60s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_concurrency() -> usize {
    4
}
fn default_workers() -> usize {
    2
}
fn default_lease() -> HumanDuration {
    "30s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_shutdown_grace() -> HumanDuration {
    "30s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_queue_poll() -> HumanDuration {
    "2s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            probe_timeout: default_probe_timeout(),
            concurrency: default_concurrency(),
            workers: default_workers(),
            lease: default_lease(),
            queue_poll: default_queue_poll(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

/// Where evidence comes from. A source left out is "not configured": controls that need it
/// are reported as not verified, never as passing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    pub hr: Option<HrSource>,
    pub policies: Option<PoliciesSource>,
    pub registers: Option<RegistersSource>,
    pub aws: Option<AwsSource>,
    pub github: Option<GithubSource>,
    pub http: Option<HttpSource>,
}

/// The company's public HTTPS services and published pages, read by `http.tls` and
/// `http.pages`. Trellis requests these URLs and nothing else: a redirect is followed only
/// within the hosts named here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// A PEM file of extra trust anchors (a private CA), trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Public services (`https://app.example.com`): each is checked as a TLS endpoint.
    #[serde(default, deserialize_with = "https_urls")]
    pub endpoints: Vec<WebUrl>,
    /// Public documents that must be published, by key (`privacy-policy: https://…/privacy`).
    #[serde(default)]
    pub pages: BTreeMap<String, WebUrl>,
    /// Longest one connection or request may take (`10s`).
    #[serde(default = "default_http_timeout")]
    pub timeout: HumanDuration,
    /// Connections in flight at once.
    #[serde(default = "default_aws_concurrency")]
    pub concurrency: std::num::NonZeroUsize,
    /// The port `http.tls` asks over plain `http://` (on each endpoint's host) to see whether
    /// it redirects to `https://` (default 80).
    #[serde(default = "default_plain_http_port")]
    pub plain_http_port: u16,
}

fn default_plain_http_port() -> u16 {
    80
}

fn default_http_timeout() -> HumanDuration {
    "10s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

fn https_urls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<WebUrl>, D::Error> {
    let urls = Vec::<WebUrl>::deserialize(d)?;
    let mut seen = std::collections::HashSet::new();
    for u in &urls {
        if u.0.scheme() != "https" {
            return Err(serde::de::Error::custom(format!(
                "endpoint `{}` is not https:// (endpoints are checked as TLS services)",
                u.0
            )));
        }
        if !seen.insert(u.0.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "duplicate endpoint `{}`",
                u.0
            )));
        }
    }
    Ok(urls)
}

/// An absolute `http(s)` URL with a host and no user name or password in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl(pub url::Url);

impl WebUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for WebUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!("invalid url `{text}`: {e} (expected e.g. https://example.com/privacy)")
        })?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(format!("invalid url `{text}`: expected an http(s) address"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "invalid url `{text}`: credentials do not belong in a URL in the config"
            ));
        }
        Ok(WebUrl(url))
    }
}

impl Serialize for WebUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for WebUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The HR roster: a CSV export of the HRIS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrSource {
    /// Path of the roster CSV, relative to the config file.
    pub path: PathBuf,
    /// Column names of your export, keyed by Trellis's name for the field, for exports whose
    /// headers differ from the defaults (e.g. `employee_id: "Employee Number"`).
    #[serde(default)]
    pub columns: HrColumns,
}

/// Header names of an HRIS export, for the fields whose header differs from Trellis's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrColumns {
    pub employee_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub github_login: Option<String>,
    pub aws_username: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    pub manager_email: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub background_check_date: Option<String>,
    pub nda_signed_date: Option<String>,
    pub security_training_date: Option<String>,
    pub policy_ack_date: Option<String>,
    pub last_review_date: Option<String>,
}

impl HrColumns {
    /// Trellis field name → header name, for the fields that are mapped.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| serde_json::from_value::<BTreeMap<String, Option<String>>>(v).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

/// The folder of register files (vendors, risks, incidents… see `src/registers.rs` and
/// `schemas/registers/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistersSource {
    /// The folder, relative to the config file.
    pub path: PathBuf,
    /// Systems that need periodic user access reviews besides the configured AWS accounts
    /// (`aws:<name>`) and GitHub organisations (`github:<org>`), e.g. `google-workspace`.
    #[serde(default)]
    pub systems: Vec<String>,
}

/// A folder of policy documents: Markdown with YAML front matter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSource {
    pub path: PathBuf,
}

/// AWS accounts to inspect (IAM per account, EC2 per region). Credentials come from the
/// default AWS chain, a named profile or a credentials file named here; never from this file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSource {
    /// The accounts; names must be unique.
    #[serde(default, deserialize_with = "unique_account_names")]
    pub accounts: Vec<AwsAccount>,
    /// Longest one API call attempt may take (`20s`); past it, the attempt is retried, and
    /// when attempts run out the check is `error: timed out`.
    #[serde(default = "default_aws_call_timeout")]
    pub call_timeout: HumanDuration,
    /// Attempts per API call, the first included (throttling, 5xx and network errors are
    /// retried with exponential backoff).
    #[serde(default = "default_aws_max_attempts")]
    pub max_attempts: std::num::NonZeroU32,
    /// Backoff before the first retry; doubles (with jitter) on each further retry.
    #[serde(default = "default_aws_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// `adaptive` (default: also slows down client-side when AWS throttles) or `standard`.
    #[serde(default)]
    pub retry_mode: AwsRetryMode,
    /// API calls in flight at once per account and region.
    #[serde(default = "default_aws_concurrency")]
    pub concurrency: std::num::NonZeroUsize,
    /// How long to wait for IAM to generate the credential report.
    #[serde(default = "default_aws_report_wait")]
    pub credential_report_wait: HumanDuration,
}

fn default_aws_call_timeout() -> HumanDuration {
    "20s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_aws_max_attempts() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(4).unwrap_or(std::num::NonZeroU32::MIN)
}
fn default_aws_initial_backoff() -> HumanDuration {
    "1s".parse().unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_aws_concurrency() -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(4).unwrap_or(std::num::NonZeroUsize::MIN)
}

fn unique_account_names<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<AwsAccount>, D::Error> {
    let accounts = Vec::<AwsAccount>::deserialize(d)?;
    let mut seen = std::collections::HashSet::new();
    for a in &accounts {
        if !seen.insert(a.name.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "duplicate account name `{}` (names identify accounts in findings)",
                a.name
            )));
        }
    }
    Ok(accounts)
}
fn default_aws_report_wait() -> HumanDuration {
    "2m".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl Default for AwsSource {
    fn default() -> Self {
        AwsSource {
            accounts: Vec::new(),
            call_timeout: default_aws_call_timeout(),
            max_attempts: default_aws_max_attempts(),
            initial_backoff: default_aws_initial_backoff(),
            retry_mode: AwsRetryMode::default(),
            concurrency: default_aws_concurrency(),
            credential_report_wait: default_aws_report_wait(),
        }
    }
}

/// The environment an AWS account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Production,
    Staging,
    Development,
    Shared,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
            Environment::Shared => "shared",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsRetryMode {
    #[default]
    Adaptive,
    Standard,
}

/// One AWS account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsAccount {
    /// Short name used in findings and to select accounts in checks (`production`).
    pub name: String,
    /// What the account holds: `production`, `staging`, `development` or `shared`
    /// (`aws.accounts`; production must not share an account with another environment).
    pub environment: Option<Environment>,
    /// Regions to inspect; empty means every region enabled in the account.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Region for account-wide calls (IAM, STS, listing regions); default: the first of
    /// `regions`, else `us-east-1`.
    pub home_region: Option<String>,
    /// One endpoint for every AWS API of this account: LocalStack, moto, or a proxy that serves
    /// them all. (VPC interface endpoints need no setting when their private DNS is on.)
    pub endpoint_url: Option<String>,
    /// Role to assume (read-only audit role) with the base credentials.
    pub assume_role_arn: Option<String>,
    /// External id the role's trust policy requires.
    pub external_id: Option<String>,
    /// Named profile from the shared AWS config and credentials files.
    pub profile: Option<String>,
    /// A credentials file (shared-credentials format, e.g. a mounted secret) to read the
    /// profile from, instead of `~/.aws/credentials`.
    pub credentials_file: Option<PathBuf>,
}

/// GitHub organisations (GitHub.com, or GitHub Enterprise Server at `https://HOST/api/v3`).
/// Authentication is a token (`token_env` or `token_file`) or a GitHub App (`app`); exactly one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSource {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// Organisations to inspect.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Environment variable holding a token (classic or fine-grained).
    pub token_env: Option<String>,
    /// File holding the token (alternative to `token_env`).
    pub token_file: Option<PathBuf>,
    /// Authenticate as a GitHub App installed in the organisations (alternative to a token).
    pub app: Option<GithubApp>,
    /// Which repositories the repository checks read.
    #[serde(default)]
    pub repos: RepoSelection,
    /// Longest one API call may take (`20s`).
    #[serde(default = "default_aws_call_timeout")]
    pub call_timeout: HumanDuration,
    /// Attempts per call for server errors (5xx) and network failures, the first included.
    #[serde(default = "default_github_max_attempts")]
    pub max_attempts: std::num::NonZeroU32,
    /// Backoff before the first retry of a 5xx; doubles on each further retry.
    #[serde(default = "default_aws_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// How long one run may spend in total waiting for GitHub's rate limits (primary, or a
    /// secondary limit's `Retry-After`). Past it, the calls concerned are `error`.
    #[serde(default = "default_github_rate_limit_wait")]
    pub rate_limit_wait: HumanDuration,
    /// API calls in flight at once per organisation.
    #[serde(default = "default_aws_concurrency")]
    pub concurrency: std::num::NonZeroUsize,
    /// Read per-repository settings (default-branch protection, the rulesets in force,
    /// Dependabot alerts) through GraphQL, 100 repositories a query (`POST /graphql`;
    /// `https://HOST/api/graphql` on Enterprise Server), instead of several REST calls per
    /// repository. Where GraphQL is refused (404, or 403 other than a rate limit, as on an
    /// Enterprise Server without it) the run falls back to REST by itself; `false` never
    /// tries it. A repository GraphQL does not show to these credentials as an admin is read
    /// over REST, so verdicts are the same either way.
    #[serde(default = "default_true")]
    pub graphql: bool,
    /// Longest one GitHub collection (one probe over every selected organisation and
    /// repository) may take before it is an `error`, e.g. `15m`. Each call is bounded by
    /// `call_timeout` and retried on its own, so this only stops a collection that will not
    /// finish. Default: `limits.probe_timeout` plus `rate_limit_wait`, so that a run may wait
    /// out a rate limit and still finish.
    pub collection_timeout: Option<HumanDuration>,
}

fn default_github_max_attempts() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(3).unwrap_or(std::num::NonZeroU32::MIN)
}
fn default_github_rate_limit_wait() -> HumanDuration {
    "2m".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl Default for GithubSource {
    fn default() -> Self {
        GithubSource {
            api_url: default_github_api(),
            orgs: Vec::new(),
            token_env: None,
            token_file: None,
            app: None,
            repos: RepoSelection::default(),
            call_timeout: default_aws_call_timeout(),
            max_attempts: default_github_max_attempts(),
            initial_backoff: default_aws_initial_backoff(),
            rate_limit_wait: default_github_rate_limit_wait(),
            concurrency: default_aws_concurrency(),
            graphql: true,
            collection_timeout: None,
        }
    }
}

/// A GitHub App installed in the organisations, with read permissions (see docs/github.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubApp {
    /// The App's id (App settings → About).
    pub app_id: u64,
    /// The App's private key (PEM), e.g. a mounted secret.
    pub private_key_file: PathBuf,
    /// The installation to act as; when absent, each organisation's installation is looked up.
    pub installation_id: Option<u64>,
}

/// Which repositories of the organisations the repository checks read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSelection {
    /// Glob patterns matched against `name` or `org/name`; all repositories when empty.
    #[serde(default, deserialize_with = "globs")]
    pub include: Vec<String>,
    /// Glob patterns of repositories to leave out (`sandbox-*`, `acme/old-*`).
    #[serde(default, deserialize_with = "globs")]
    pub exclude: Vec<String>,
    /// Read archived repositories too (default: skipped).
    #[serde(default)]
    pub include_archived: bool,
    /// Read forks too (default: skipped).
    #[serde(default)]
    pub include_forks: bool,
}

fn globs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let patterns = Vec::<String>::deserialize(d)?;
    for p in &patterns {
        repo_glob(p)
            .map_err(|e| serde::de::Error::custom(format!("invalid pattern `{p}`: {e}")))?;
    }
    Ok(patterns)
}

/// A repository pattern: `*` does not cross `/` (`acme/*` is one organisation), and case does
/// not matter (GitHub names are case-insensitive).
pub fn repo_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .case_insensitive(true)
        .build()
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}

impl GithubSource {
    /// The budget of one GitHub collection, `probe_timeout` being `limits.probe_timeout`
    /// (see [`GithubSource::collection_timeout`]).
    pub fn collection_timeout(&self, probe_timeout: std::time::Duration) -> std::time::Duration {
        match &self.collection_timeout {
            Some(t) => t.to_std(),
            None => probe_timeout + self.rate_limit_wait.to_std(),
        }
    }

    /// Reads the token from the environment variable or file the config names.
    pub fn token(&self, base_dir: &Path) -> Result<Option<Secret>, String> {
        if let Some(var) = &self.token_env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim().to_string()))),
                _ => Err(format!(
                    "environment variable `{var}` (sources.github.token_env) is not set"
                )),
            };
        }
        if let Some(file) = &self.token_file {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base_dir.join(file)
            };
            return std::fs::read_to_string(&path)
                .map(|t| Some(Secret::new(t.trim().to_string())))
                .map_err(|e| format!("cannot read token file {}: {e}", path.display()));
        }
        Ok(None)
    }
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The key signing each run's manifest (and export bundles). Its public key is published on
/// the trust page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The ed25519 key (its 32-byte seed, hex), created with mode 0600 at first start.
    #[serde(default = "default_signing_key_file")]
    pub key_file: PathBuf,
    /// Former public keys (`ed25519:<base64>`) whose signatures `trellis verify` still
    /// accepts after a rotation.
    #[serde(default)]
    pub previous_public_keys: Vec<String>,
}

fn default_signing_key_file() -> PathBuf {
    ".trellis/signing.key".into()
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            key_file: default_signing_key_file(),
            previous_public_keys: Vec::new(),
        }
    }
}

/// The internal dashboards (`/dashboard`) and the authenticated API: sessions and sign-in
/// throttling. Users are managed with `trellis user`; whether a second factor is required is
/// an admin setting in the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// A session ends after this long without a request.
    #[serde(default = "default_idle_timeout")]
    pub session_idle_timeout: HumanDuration,
    /// A session ends this long after sign-in, active or not.
    #[serde(default = "default_absolute_timeout")]
    pub session_absolute_timeout: HumanDuration,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Default: when
    /// `trust_page.base_url` is https.
    #[serde(default)]
    pub secure_cookies: Option<bool>,
    /// Failed sign-ins for one account before it is locked for `lockout`.
    #[serde(default = "default_max_failures")]
    pub max_failed_logins: u32,
    /// Failed sign-ins from one address (any account) before it is locked out for `lockout`.
    #[serde(default = "default_max_failures_per_ip")]
    pub max_failed_logins_per_ip: u32,
    /// How long an account or address stays locked after too many failures.
    #[serde(default = "default_lockout")]
    pub lockout: HumanDuration,
    /// Single sign-on with an OpenID Connect identity provider (Okta, Google, Microsoft Entra
    /// ID, Keycloak…). Absent: sign-in with local passwords only.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Sign-in with a local password (`trellis user add`). Turn it off once single sign-on
    /// works, keeping one or two break-glass admins for when the identity provider is down.
    #[serde(default)]
    pub local_passwords: LocalPasswords,
}

/// Single sign-on (OpenID Connect authorization code flow with PKCE). Register Trellis at the
/// identity provider as a confidential web client whose redirect URI is
/// `https://<dashboard host>/dashboard/login/oidc/callback`. The first sign-in of an account
/// creates its user (user name: the email address), or links the user of that name; every
/// sign-in sets the user's role from the claims. A user disabled in Trellis stays refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the provider's discovery document states it (Trellis reads
    /// `<issuer>/.well-known/openid-configuration`): `https://<org>.okta.com`,
    /// `https://accounts.google.com`, `https://login.microsoftonline.com/<tenant id>/v2.0`,
    /// `https://<host>/realms/<realm>` (Keycloak).
    pub issuer: String,
    /// The client id the provider gave Trellis.
    pub client_id: String,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// File holding the client secret (alternative to `client_secret_env`).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes requested; `openid` is always added. Default `[openid, email, profile]`; add
    /// what makes your provider put `role_claim` in the ID token (Okta: `groups`).
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The ID-token claim carrying the user's groups or roles: a string or a list of strings
    /// (`groups` for Okta, Keycloak and Entra ID group ids; `roles` for Entra ID app roles).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Value of `role_claim` → Trellis role (`admin`, `security`, `auditor`, `viewer`). A
    /// user with several mapped values gets the highest of their roles; one with none is
    /// refused.
    pub role_map: BTreeMap<String, crate::auth::Role>,
    /// Email domains that may sign in (`example.com`); empty: any. The ID token must carry
    /// an `email` (not marked unverified) in one of them.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Count the provider's multi-factor authentication as the second factor when the ID
    /// token's `amr` holds one of `amr` or its `acr` is one of `acr`. Otherwise (and when
    /// absent) Trellis's own TOTP step applies as for password sign-ins.
    #[serde(default)]
    pub trust_idp_mfa: Option<TrustIdpMfa>,
    /// The button says "Sign in with <display_name>". Default: `single sign-on`.
    #[serde(default = "default_oidc_display_name")]
    pub display_name: String,
    /// The redirect URI registered at the provider. Default: the request's own scheme and
    /// host with `/dashboard/login/oidc/callback`; set it behind a reverse proxy.
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// Which `amr` (authentication methods) or `acr` (authentication context) values of the
/// identity provider count as a second factor, e.g. `amr: [mfa, otp, hwk, swk]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustIdpMfa {
    #[serde(default)]
    pub amr: Vec<String>,
    #[serde(default)]
    pub acr: Vec<String>,
}

/// Local password sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalPasswords {
    /// Default true. When false, only the `break_glass` users may sign in with a password;
    /// everyone else uses single sign-on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// User names that may sign in with a password even when `enabled` is false.
    #[serde(default)]
    pub break_glass: Vec<String>,
}

impl Default for LocalPasswords {
    fn default() -> Self {
        LocalPasswords {
            enabled: true,
            break_glass: Vec::new(),
        }
    }
}

impl LocalPasswords {
    /// Whether `username` may sign in with a password.
    pub fn allows(&self, username: &str) -> bool {
        self.enabled
            || self
                .break_glass
                .iter()
                .any(|b| b.trim().eq_ignore_ascii_case(username.trim()))
    }
}

fn default_true() -> bool {
    true
}

fn default_oidc_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn default_role_claim() -> String {
    "groups".into()
}

fn default_oidc_display_name() -> String {
    "single sign-on".into()
}

fn default_idle_timeout() -> HumanDuration {
    "30m".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

fn default_absolute_timeout() -> HumanDuration {
    "12h".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

fn default_max_failures() -> u32 {
    5
}

fn default_max_failures_per_ip() -> u32 {
    20
}

fn default_lockout() -> HumanDuration {
    "15m".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            session_idle_timeout: default_idle_timeout(),
            session_absolute_timeout: default_absolute_timeout(),
            secure_cookies: None,
            max_failed_logins: default_max_failures(),
            max_failed_logins_per_ip: default_max_failures_per_ip(),
            lockout: default_lockout(),
            oidc: None,
            local_passwords: LocalPasswords::default(),
        }
    }
}

/// What the public trust page says about the company.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPageConfig {
    #[serde(default = "default_company")]
    pub company: String,
    /// Where to report security issues; shown on the page and, as `mailto:`, the default
    /// `Contact:` of security.txt.
    pub contact_email: Option<String>,
    /// Introductory paragraph under the heading.
    pub intro: Option<String>,
    /// The page's public address, e.g. `https://trust.example.com` (or with a path, for a
    /// static export served under one). Used for canonical links, the Atom feed, security.txt
    /// and the download links sent to approved document requests. Absent: links are relative
    /// and security.txt has no `Canonical:`.
    #[serde(default)]
    pub base_url: Option<BaseUrl>,
    /// How a failing control is shown publicly: `detail` ("Needs attention", since when) or
    /// `neutral` ("In remediation"). Neither is ever green.
    #[serde(default)]
    pub failing_display: FailingDisplay,
    /// Order of the categories on the page; categories not listed follow, alphabetically.
    #[serde(default)]
    pub category_order: Vec<String>,
    /// Narrative sections shown on the page (Markdown, rendered and sanitised), e.g. how data
    /// is protected, physical security, onward transfer.
    #[serde(default)]
    pub sections: Vec<TrustSection>,
    /// The vulnerability disclosure policy (Markdown): how to report, what is in scope, what
    /// reporters can expect. Shown on the page; security.txt's `Policy:` points to it.
    #[serde(default)]
    pub vulnerability_disclosure: Option<String>,
    /// `/.well-known/security.txt` (RFC 9116).
    #[serde(default)]
    pub security_txt: SecurityTxtConfig,
    /// Documents listed publicly and shared on request (SOC 2 report, pen-test letter…).
    #[serde(default)]
    pub documents: DocumentsConfig,
    /// The company's logo, favicon and accent colour on the public pages.
    #[serde(default)]
    pub brand: BrandConfig,
    /// Whether search engines may index the public pages. `false`: every page carries
    /// `<meta name="robots" content="noindex, nofollow">` (and `X-Robots-Tag` when served
    /// live) and `/robots.txt` disallows everything.
    #[serde(default = "default_true")]
    pub indexing: bool,
    /// Links in the footer of every public page: status page, privacy policy, contact…
    #[serde(default)]
    pub footer_links: Vec<FooterLink>,
    /// Questions and answers, in groups. An answer citing controls is marked with their live
    /// status: it never looks confirmed while one of them fails or is stale.
    #[serde(default)]
    pub faq: Vec<FaqGroup>,
    /// Visitor counts: no cookie, no third party, no address or user agent stored.
    #[serde(default)]
    pub analytics: AnalyticsConfig,
}

/// The company's brand. Logos are served by Trellis itself under content-hashed paths (the
/// strict Content-Security-Policy stays as it is) and copied by `trellis render`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandConfig {
    /// The logo (SVG or PNG, at most 1 MiB), shown above the page header on a light
    /// background and as the link preview image (PNG only). An SVG holding script, embedded
    /// documents or references to other files is refused.
    pub logo: Option<PathBuf>,
    /// The logo on a dark background (dark mode); absent: `logo`.
    pub logo_dark: Option<PathBuf>,
    /// The browser tab's icon: SVG, PNG or ICO.
    pub favicon: Option<PathBuf>,
    /// The accent colour (links, buttons, focus rings, the brand bar), `#rrggbb`. Refused when
    /// its contrast against the page is under WCAG AA: 4.5:1 for text, 3:1 for focus rings
    /// and borders. Status colours are Trellis's own and cannot be changed.
    pub accent_color: Option<crate::brand::Rgb>,
    /// The accent colour in dark mode; absent: Trellis's own dark accent.
    pub accent_color_dark: Option<crate::brand::Rgb>,
}

/// A link in the page footer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FooterLink {
    pub label: String,
    /// `https://…`, `http://…` or `mailto:…`.
    pub url: String,
}

/// A group of questions and answers, e.g. "Data protection".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqGroup {
    pub group: String,
    pub questions: Vec<FaqEntry>,
}

/// One question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqEntry {
    pub question: String,
    /// Markdown, rendered and sanitised like the narrative sections.
    pub answer: String,
    /// Public controls backing the answer: the page shows their live status beside it, and
    /// the answer is marked "not confirmed" while any of them is not passing. `validate`
    /// refuses an unknown or non-public control.
    #[serde(default)]
    pub controls: Vec<String>,
    /// The anchor, `faq-…` (letters, digits, `-`, `_`); absent: `faq-` and the question in
    /// kebab case.
    pub anchor: Option<String>,
}

/// Visitor counts (`/dashboard/visitors`). Per UTC day: page views, estimated unique visitors
/// (a hash of address and user agent with a salt that changes daily; the salt and the day's
/// hashes are deleted when the day ends, and the address is never written), JSON and feed
/// fetches, subscriptions, and requests, approvals and downloads per document. Bots (by user
/// agent) are counted apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Counts older than this are deleted.
    #[serde(default = "default_analytics_retention")]
    pub retention: HumanDuration,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            enabled: true,
            retention: default_analytics_retention(),
        }
    }
}

fn default_analytics_retention() -> HumanDuration {
    "395d".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

/// One narrative section of the trust page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    pub title: String,
    /// Markdown. Raw HTML is sanitised: no scripts, styles or event handlers.
    pub body: String,
}

/// How failing controls are shown publicly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailingDisplay {
    /// "Needs attention", with the date the control stopped passing.
    #[default]
    Detail,
    /// "In remediation", nothing more.
    Neutral,
}

/// `/.well-known/security.txt` (RFC 9116). Served only when it has a contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityTxtConfig {
    /// `Contact:` lines, in order of preference (`mailto:…`, `https://…`, `tel:…`). Default:
    /// `mailto:` the trust page's `contact_email`.
    #[serde(default)]
    pub contact: Vec<String>,
    /// `Expires:` is this long after the day of the newest check, so the file lapses if
    /// monitoring stops. At most a year (the RFC recommends less).
    #[serde(
        default = "default_security_txt_expiry",
        deserialize_with = "at_most_a_year"
    )]
    pub expires_after: HumanDuration,
    /// `Preferred-Languages:` (language tags).
    #[serde(default = "default_languages")]
    pub preferred_languages: Vec<String>,
    /// `Policy:`. Default: the vulnerability disclosure section of the page, when configured
    /// (needs `base_url`).
    #[serde(default)]
    pub policy: Option<String>,
    /// `Acknowledgments:`, `Encryption:` and `Hiring:` URLs, if any.
    #[serde(default)]
    pub acknowledgments: Option<String>,
    #[serde(default)]
    pub encryption: Option<String>,
    #[serde(default)]
    pub hiring: Option<String>,
}

fn default_security_txt_expiry() -> HumanDuration {
    "180d".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

fn default_languages() -> Vec<String> {
    vec!["en".into()]
}

impl Default for SecurityTxtConfig {
    fn default() -> Self {
        SecurityTxtConfig {
            contact: Vec::new(),
            expires_after: default_security_txt_expiry(),
            preferred_languages: default_languages(),
            policy: None,
            acknowledgments: None,
            encryption: None,
            hiring: None,
        }
    }
}

fn at_most_a_year<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let value = HumanDuration::deserialize(d)?;
    if value.get() > chrono::Duration::days(366) {
        return Err(serde::de::Error::custom(format!(
            "`{value}` is more than a year (RFC 9116 asks for less than a year)"
        )));
    }
    Ok(value)
}

/// Documents shared on request: listed publicly, downloadable only through a signed,
/// expiring, revocable link once the security team approves a visitor's request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsConfig {
    /// The documents, in the order listed.
    #[serde(default, deserialize_with = "unique_documents")]
    pub items: Vec<DocumentConfig>,
    /// The non-disclosure terms a visitor accepts with a request (Markdown). Required when
    /// there are documents; the request keeps the SHA-256 of the text accepted.
    #[serde(default)]
    pub nda: Option<String>,
    /// How long an approval's download link works.
    #[serde(default = "default_link_validity")]
    pub link_valid_for: HumanDuration,
    /// The key signing download links (32 random bytes, created with mode 0600 at first
    /// use). Whoever holds it can mint links: keep it out of backups you share.
    #[serde(default = "default_link_key_file")]
    pub link_key_file: PathBuf,
    /// Requests accepted per client address per hour (and per email address per day).
    #[serde(default = "default_requests_per_hour")]
    pub requests_per_hour: u32,
    /// Email domains refused as work addresses (free mail). Set `[]` to accept any.
    #[serde(default = "default_blocked_domains")]
    pub blocked_email_domains: Vec<String>,
}

fn unique_documents<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<DocumentConfig>, D::Error> {
    let items = Vec::<DocumentConfig>::deserialize(d)?;
    let mut seen = std::collections::HashSet::new();
    for item in &items {
        let id = &item.id;
        let well_formed = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err(serde::de::Error::custom(format!(
                "document id `{id}`: expected lowercase letters, digits and `-` (at most 64)"
            )));
        }
        if !seen.insert(id.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "duplicate document id `{id}`"
            )));
        }
    }
    Ok(items)
}

/// One document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentConfig {
    /// Stable identifier used in links (`soc2-type-ii-report`): lowercase letters, digits, `-`.
    pub id: String,
    pub title: String,
    /// One public sentence about it.
    #[serde(default)]
    pub description: Option<String>,
    /// The file, relative to the config file. Never served without an approved request.
    pub file: PathBuf,
}

fn default_link_validity() -> HumanDuration {
    "7d".parse().unwrap_or_else(|e| unreachable!("{e}"))
}

fn default_link_key_file() -> PathBuf {
    ".trellis/link-signing.key".into()
}

fn default_requests_per_hour() -> u32 {
    5
}

fn default_blocked_domains() -> Vec<String> {
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "mail.com",
        "yandex.com",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            items: Vec::new(),
            nda: None,
            link_valid_for: default_link_validity(),
            link_key_file: default_link_key_file(),
            requests_per_hour: default_requests_per_hour(),
            blocked_email_domains: default_blocked_domains(),
        }
    }
}

/// An absolute `http(s)` URL without query or fragment, kept without its trailing slash
/// (`https://trust.example.com`, `https://example.github.io/trust`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path` (starting with `/`) under this URL.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The host, for tag URIs and origin checks.
    pub fn origin(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(u) => u.origin().ascii_serialization(),
            Err(_) => self.0.clone(),
        }
    }
}

impl std::str::FromStr for BaseUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!("invalid url `{text}`: {e} (expected e.g. https://trust.example.com)")
        })?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(format!("invalid url `{text}`: expected an http(s) address"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "invalid url `{text}`: expected no query, fragment or user name"
            ));
        }
        Ok(BaseUrl(url.as_str().trim_end_matches('/').to_string()))
    }
}

impl Serialize for BaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn default_company() -> String {
    "Example Co".into()
}

impl Default for TrustPageConfig {
    fn default() -> Self {
        TrustPageConfig {
            company: default_company(),
            contact_email: None,
            intro: None,
            base_url: None,
            failing_display: FailingDisplay::default(),
            category_order: Vec::new(),
            sections: Vec::new(),
            vulnerability_disclosure: None,
            security_txt: SecurityTxtConfig::default(),
            documents: DocumentsConfig::default(),
            brand: BrandConfig::default(),
            indexing: true,
            footer_links: Vec::new(),
            faq: Vec::new(),
            analytics: AnalyticsConfig::default(),
        }
    }
}

/// The metrics listener: `/metrics` (Prometheus text format), `/healthz` and `/readyz` on an
/// address of its own, never on `server.bind`. Off unless `bind` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener (`127.0.0.1:9464`); absent: no metrics listener. What
    /// it serves is internal (control ids, sources, error causes): keep it off public networks.
    #[serde(default)]
    pub bind: Option<String>,
}

/// How log lines are written (to standard error). `TRELLIS_LOG` sets which (an env filter,
/// e.g. `info,trellis=debug`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default: one human-readable line per event) or `json` (one JSON object per
    /// line: `timestamp`, `level`, `target`, `fields`, for log collectors).
    #[serde(default)]
    pub format: LogFormat,
}

/// See [`LogConfig::format`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Where the file was read from (or the bundled example's name).
    pub source: PathBuf,
    /// Directory that relative paths resolve against.
    pub base_dir: PathBuf,
}

impl Loaded {
    /// The configuration's text, to locate fields in diagnostics (empty if it cannot be read
    /// again).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.source).unwrap_or_else(|_| {
            if self.source == Path::new(BUNDLED_EXAMPLE_NAME) {
                BUNDLED_EXAMPLE.to_string()
            } else {
                String::new()
            }
        })
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn controls_dir(&self) -> PathBuf {
        self.resolve(&self.config.controls_dir)
    }

    pub fn exceptions_dir(&self) -> PathBuf {
        self.resolve(&self.config.exceptions_dir)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostic),
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// Finds and loads the configuration: `explicit` (from `--config` or `TRELLIS_CONFIG`), else
/// `./trellis.yaml`, else `./config.example.yaml`, else the bundled example. Then applies
/// `TRELLIS__…` environment overrides.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(explicit, &vars)
}

pub fn load_with_env(
    explicit: Option<&Path>,
    env: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => vec!["trellis.yaml".into(), BUNDLED_EXAMPLE_NAME.into()],
    };
    for (i, path) in candidates.iter().enumerate() {
        let must_exist = explicit.is_some();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let base_dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                let config = parse(path, &text, env)?;
                return Ok(Loaded {
                    config,
                    source: path.clone(),
                    base_dir,
                });
            }
            Err(e) if must_exist || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Read {
                    path: path.clone(),
                    source: e,
                });
            }
            Err(_) if i + 1 < candidates.len() => continue,
            Err(_) => {}
        }
    }
    let path = PathBuf::from(BUNDLED_EXAMPLE_NAME);
    let config = parse(&path, BUNDLED_EXAMPLE, env)?;
    Ok(Loaded {
        config,
        source: path,
        base_dir: PathBuf::from("."),
    })
}

/// Parses config text and applies the environment overrides found in `env`.
pub fn parse(path: &Path, text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let config: Config = diag::parse_yaml(path, text).map_err(ConfigError::Invalid)?;
    let config = apply_env(config, env)?;
    check_relations(path, text, &config)?;
    Ok(config)
}

/// What the trust page's own fields cannot say, as (path, message): an accent colour under
/// WCAG AA contrast, a footer link that is not a web or mail address, a question without an
/// answer or an anchor used twice.
pub fn check_trust_page(trust: &TrustPageConfig) -> Vec<(String, String)> {
    use crate::brand::{Mode, check_accent};
    let mut out = Vec::new();
    for (field, colour, mode) in [
        ("accent_color", trust.brand.accent_color, Mode::Light),
        (
            "accent_color_dark",
            trust.brand.accent_color_dark,
            Mode::Dark,
        ),
    ] {
        let Some(colour) = colour else { continue };
        let problems = check_accent(colour, mode);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let hint = match mode {
                Mode::Light => "choose a darker colour",
                Mode::Dark => "choose a lighter colour",
            };
            out.push((
                format!("trust_page.brand.{field}"),
                format!(
                    "{colour} is not readable enough: {}; {hint}",
                    list.join("; ")
                ),
            ));
        }
    }
    if trust.brand.logo_dark.is_some() && trust.brand.logo.is_none() {
        out.push((
            "trust_page.brand.logo_dark".into(),
            "a dark-mode logo needs `logo` (the logo in light mode) too".into(),
        ));
    }
    for (i, link) in trust.footer_links.iter().enumerate() {
        let url = link.url.trim();
        let ok = if let Some(address) = url.strip_prefix("mailto:") {
            email_address::EmailAddress::is_valid(address)
        } else {
            url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        };
        if !ok {
            out.push((
                format!("trust_page.footer_links[{i}].url"),
                format!("`{url}` is not an https://, http:// or mailto: address"),
            ));
        }
        if link.label.trim().is_empty() {
            out.push((
                format!("trust_page.footer_links[{i}].label"),
                "a link needs a label".into(),
            ));
        }
    }
    let mut anchors = std::collections::HashMap::new();
    for (g, group) in trust.faq.iter().enumerate() {
        if group.group.trim().is_empty() {
            out.push((
                format!("trust_page.faq[{g}].group"),
                "a group needs a name".into(),
            ));
        }
        for (q, entry) in group.questions.iter().enumerate() {
            let here = format!("trust_page.faq[{g}].questions[{q}]");
            if entry.question.trim().is_empty() {
                out.push((format!("{here}.question"), "the question is empty".into()));
            }
            if entry.answer.trim().is_empty() {
                out.push((format!("{here}.answer"), "the answer is empty".into()));
            }
            if let Some(anchor) = &entry.anchor {
                // `faq-` keeps them apart from the page's own ids (`control-…`, `documents`…).
                let valid = anchor.len() > 4
                    && anchor.starts_with("faq-")
                    && anchor
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    out.push((
                        format!("{here}.anchor"),
                        format!(
                            "`{anchor}`: an anchor starts with `faq-`, then letters, digits, `-` \
                             and `_`"
                        ),
                    ));
                } else if let Some(first) = anchors.insert(anchor.clone(), here.clone()) {
                    out.push((
                        format!("{here}.anchor"),
                        format!("`{anchor}` is already the anchor of {first}"),
                    ));
                }
            }
        }
    }
    out
}

/// What one field cannot say about another: documents need NDA terms.
fn check_relations(path: &Path, text: &str, config: &Config) -> Result<(), ConfigError> {
    let index = diag::YamlIndex::new(text);
    let problems = crate::notify::config::check(&config.notifications, path, &index);
    if let Some(first) = problems.into_iter().next() {
        return Err(ConfigError::Invalid(first));
    }
    if let Some((at, message)) = check_trust_page(&config.trust_page).into_iter().next() {
        return Err(ConfigError::Invalid(index.at(path, &at, message)));
    }
    if config.notifications.visitors.is_some() && config.trust_page.base_url.is_none() {
        let (line, column) = key_position(text, "visitors:");
        return Err(ConfigError::Invalid(Diagnostic::new(
            path,
            line,
            column,
            "notifications.visitors needs trust_page.base_url: the emails carry absolute \
             links (confirm, unsubscribe, the trust page)",
        )));
    }
    let docs = &config.trust_page.documents;
    if !docs.items.is_empty() && docs.nda.as_deref().is_none_or(|t| t.trim().is_empty()) {
        let (line, column) = key_position(text, "documents:");
        return Err(ConfigError::Invalid(Diagnostic::new(
            path,
            line,
            column,
            "trust_page.documents.nda: required when documents are listed (the terms a \
             visitor accepts before a document is shared)",
        )));
    }
    let dashboard = &config.dashboard;
    let problem = match &dashboard.oidc {
        None if !dashboard.local_passwords.enabled => Some((
            "local_passwords:",
            "dashboard.local_passwords.enabled: false needs dashboard.oidc (single sign-on), \
             or only break-glass users could sign in",
        )),
        Some(oidc) if oidc.client_secret_env.is_some() == oidc.client_secret_file.is_some() => {
            Some((
                "oidc:",
                "dashboard.oidc: name the client secret with exactly one of client_secret_env \
                 and client_secret_file",
            ))
        }
        Some(oidc) if oidc.role_map.is_empty() => Some((
            "role_map:",
            "dashboard.oidc.role_map: map at least one claim value to a role, or nobody can \
             sign in",
        )),
        _ => None,
    };
    if let Some((key, message)) = problem {
        let (line, column) = key_position(text, key);
        return Err(ConfigError::Invalid(Diagnostic::new(
            path, line, column, message,
        )));
    }
    Ok(())
}

/// Where `key` first appears in the file (line, column), to point at it; (0, 0) if nowhere.
fn key_position(text: &str, key: &str) -> (u64, u64) {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(key).map(|c| (i as u64 + 1, c as u64 + 1)))
        .unwrap_or((0, 0))
}

const ENV_PREFIX: &str = "TRELLIS__";

/// Applies `TRELLIS__SECTION__KEY=value` overrides. Values are read as YAML scalars or flow
/// collections (`8080`, `true`, `[eu-west-1, us-east-1]`), else taken as strings.
fn apply_env(config: Config, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    if overrides.is_empty() {
        return Ok(config);
    }
    overrides.sort();
    let mut tree = serde_json::to_value(&config).map_err(|e| ConfigError::Env {
        var: ENV_PREFIX.into(),
        message: e.to_string(),
    })?;
    for (var, raw) in overrides {
        let keys: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|k| k.to_ascii_lowercase())
            .collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: "empty key segment".into(),
            });
        }
        let value: serde_json::Value = serde_saphyr::from_str(raw)
            .ok()
            .filter(|v: &serde_json::Value| !v.is_null() || raw.trim() == "null")
            .unwrap_or_else(|| serde_json::Value::String(raw.clone()));
        let mut node = &mut tree;
        for key in &keys[..keys.len() - 1] {
            let map = node.as_object_mut().ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!("`{key}` is not a section"),
            })?;
            node = map
                .entry(key.clone())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if node.is_null() {
                *node = serde_json::Value::Object(Default::default());
            }
        }
        let last = &keys[keys.len() - 1];
        let map = node.as_object_mut().ok_or_else(|| ConfigError::Env {
            var: var.clone(),
            message: "parent is not a section".into(),
        })?;
        // Keep strings strings where the file has a string (a bind address like `8080`).
        let value = match (map.get(last), &value) {
            (Some(serde_json::Value::String(_)), v) if !v.is_string() => {
                serde_json::Value::String(raw.clone())
            }
            _ => value,
        };
        map.insert(last.clone(), value);
        if let Err(e) = serde_json::from_value::<Config>(tree.clone()) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: e.to_string(),
            });
        }
    }
    serde_json::from_value(tree).map_err(|e| ConfigError::Env {
        var: "TRELLIS__*".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn trust_page_fields_are_checked_at_their_place() {
        // (YAML under trust_page, the problem's location and what it says)
        let table: &[(&str, &str, &str)] = &[
            (
                "brand:\n    accent_color: \"#ffd400\"",
                "t.yaml:3:19: trust_page.brand.accent_color: #ffd400 is not readable enough: 1.32:1 for link text",
                "choose a darker colour",
            ),
            (
                "brand:\n    accent_color: ffd400",
                "t.yaml:3:19:",
                "`ffd400` is not a colour: write it as #rrggbb (or #rgb)",
            ),
            (
                "footer_links:\n    - {label: Status, url: status.example.com}",
                "t.yaml:3:28: trust_page.footer_links[0].url:",
                "`status.example.com` is not an https://, http:// or mailto: address",
            ),
            (
                "footer_links:\n    - {label: Mail, url: \"mailto:not an address\"}",
                "trust_page.footer_links[0].url",
                "is not an https://",
            ),
            (
                "faq:\n    - group: G\n      questions:\n        - {question: Q?, answer: A, anchor: documents}",
                "t.yaml:5:45: trust_page.faq[0].questions[0].anchor:",
                "`documents`: an anchor starts with `faq-`",
            ),
            (
                "faq:\n    - group: G\n      questions:\n        - {question: Q?, answer: A, anchor: faq-a}\n        - {question: R?, answer: B, anchor: faq-a}",
                "t.yaml:6:45: trust_page.faq[0].questions[1].anchor:",
                "`faq-a` is already the anchor of trust_page.faq[0].questions[0]",
            ),
            (
                "brand:\n    logo_dark: dark.svg",
                "t.yaml:3:16: trust_page.brand.logo_dark:",
                "a dark-mode logo needs `logo`",
            ),
            (
                "faq:\n    - group: G\n      questions:\n        - {question: Q?, answer: \" \"}",
                "trust_page.faq[0].questions[0].answer",
                "the answer is empty",
            ),
        ];
        for (yaml, at, what) in table {
            let text = format!("trust_page:\n  {yaml}\n");
            let err = parse(Path::new("t.yaml"), &text, &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(at) && err.contains(what), "{yaml}\n→ {err}");
        }
        let ok = "trust_page:\n  footer_links:\n    - {label: Status, url: \"https://status.example.com\"}\n    - {label: Mail, url: \"mailto:security@example.com\"}\n  brand:\n    accent_color: \"#1f4e79\"\n    accent_color_dark: \"#8cc4ff\"\n";
        parse(Path::new("t.yaml"), ok, &[]).unwrap();
    }

    #[test]
    fn bundled_example_parses_and_documents_required_keys() {
        let c = parse(Path::new("config.example.yaml"), BUNDLED_EXAMPLE, &[]).unwrap();
        assert!(c.database_url.starts_with("sqlite://"));
        assert!(c.sources.hr.is_some());
        assert!(c.sources.policies.is_some());
        for key in [
            "database_url:",
            "controls_dir:",
            "bind:",
            "default_schedule:",
            "default_freshness:",
            "accounts:",
            "assume_role_arn:",
            "endpoint_url:",
            "api_url:",
            "orgs:",
            "token_env:",
            "category_order:",
            "contact_email:",
            "columns:",
        ] {
            assert!(
                BUNDLED_EXAMPLE.contains(key),
                "config.example.yaml does not document {key}"
            );
        }
    }

    /// The commented-out single sign-on example is valid, and what one field cannot say
    /// about another is checked.
    #[test]
    fn single_sign_on_example_parses_and_its_relations_are_checked() {
        let start = BUNDLED_EXAMPLE.find("  # oidc:").unwrap();
        let block: String = BUNDLED_EXAMPLE[start..]
            .lines()
            .take_while(|l| l.starts_with("  #"))
            .map(|l| format!("  {}\n", &l[4..]))
            .collect();
        let text = format!("dashboard:\n{block}");
        let c = parse(Path::new("example"), &text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let oidc = c.dashboard.oidc.unwrap();
        assert_eq!(oidc.role_map["trellis-admins"], crate::auth::Role::Admin);
        assert_eq!(oidc.role_claim, "groups");
        assert_eq!(oidc.trust_idp_mfa.unwrap().amr, ["mfa", "otp", "hwk"]);
        assert!(c.dashboard.local_passwords.enabled);

        let err = |text: &str| {
            parse(Path::new("x.yaml"), text, &[])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let off = "dashboard:\n  local_passwords: {enabled: false, break_glass: [ada]}\n";
        assert!(err(off).contains("needs dashboard.oidc"), "{}", err(off));
        let base = "dashboard:\n  oidc:\n    issuer: https://idp.example\n    client_id: t\n";
        let both = format!(
            "{base}    client_secret_env: A\n    client_secret_file: b\n    role_map: {{a: admin}}\n"
        );
        assert!(err(&both).contains("exactly one"), "{}", err(&both));
        let no_map = format!("{base}    client_secret_env: A\n    role_map: {{}}\n");
        assert!(err(&no_map).contains("role_map"), "{}", err(&no_map));
        let typo =
            format!("{base}    client_secret_env: A\n    role_map: {{a: admin}}\n    scope: [x]\n");
        assert!(err(&typo).contains("scope"), "unknown keys are refused");
        let bad_role = format!("{base}    client_secret_env: A\n    role_map: {{a: root}}\n");
        assert!(!err(&bad_role).is_empty(), "unknown roles are refused");
    }

    /// The commented-out `notifications` example is valid, rules and channels included.
    #[test]
    fn notifications_example_parses() {
        let start = BUNDLED_EXAMPLE.find("# notifications:").unwrap_or_default();
        let text: String = BUNDLED_EXAMPLE[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
            .collect();
        let text = format!("trust_page:\n  base_url: https://trust.example.com\n{text}");
        let c = parse(Path::new("example"), &text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(c.notifications.channels.len(), 4);
        assert_eq!(c.notifications.rules.len(), 3);
        let visitors = c
            .notifications
            .visitors
            .unwrap_or_else(|| panic!("no visitors"));
        assert_eq!(visitors.topics.len(), 3);
        assert_eq!(visitors.subprocessor_notice_days, Some(30));
        // Without the trust page's address, visitor mail is refused at its line.
        let without = text.replace("trust_page:\n  base_url: https://trust.example.com\n", "");
        let err = parse(Path::new("x.yaml"), &without, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("needs trust_page.base_url"), "{err}");
        assert_eq!(c.notifications.digest_window.to_string(), "1m");
    }

    #[test]
    fn break_glass_users_keep_their_password() {
        let mut p = LocalPasswords::default();
        assert!(p.allows("anyone"));
        p.enabled = false;
        p.break_glass = vec!["Ada".into()];
        assert!(p.allows("ada") && p.allows("ADA"));
        assert!(!p.allows("sam") && !p.allows(""));
    }

    /// The commented-out `aws` and `github` examples in config.example.yaml are valid config.
    #[test]
    fn commented_source_examples_parse() {
        for section in ["  # aws:", "  # github:"] {
            let start = BUNDLED_EXAMPLE.find(section).unwrap();
            let block: String = BUNDLED_EXAMPLE[start..]
                .lines()
                .take_while(|l| l.starts_with("  #"))
                .map(|l| format!("  {}\n", &l[4..]))
                .collect();
            let text = format!("sources:\n{block}");
            let c =
                parse(Path::new("example"), &text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
            if let Some(aws) = c.sources.aws {
                assert_eq!(aws.accounts[0].name, "production");
                assert_eq!(
                    aws.call_timeout.to_std(),
                    std::time::Duration::from_secs(20)
                );
            }
        }
    }

    #[test]
    fn unknown_key_is_located() {
        let err = parse(Path::new("t.yaml"), "server:\n  bnd: x\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("t.yaml:2:3: server: unknown field `bnd`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_are_located_and_named() {
        let check = |text: &str, want: &str| {
            let msg = parse(Path::new("t.yaml"), text, &[])
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(want), "{text}: {msg}");
        };
        check(
            "default_schedule: \"0 25 * * *\"\n",
            "t.yaml:1:19: default_schedule: invalid schedule `0 25 * * *`: hour",
        );
        check(
            "default_freshness: soon\n",
            "t.yaml:1:20: default_freshness: invalid duration `soon`",
        );
        check(
            "limits:\n  probe_timeout: 0s\n",
            "t.yaml:2:18: limits.probe_timeout: invalid duration `0s`",
        );
        check(
            "sources:\n  aws:\n    accounts:\n      - name: prod\n      - name: prod\n",
            "t.yaml:4:7: sources.aws.accounts: duplicate account name `prod`",
        );
        check(
            "sources:\n  aws:\n    max_attempts: 0\n",
            "t.yaml:3:5: sources.aws.max_attempts: invalid value: integer `0`, expected a nonzero u32",
        );
        check(
            "sources:\n  hr:\n    path: r.csv\n    columns: {employee_idd: x}\n",
            "t.yaml:4:15: sources.hr.columns: unknown field `employee_idd`",
        );
        let err = parse(
            Path::new("t.yaml"),
            "{}",
            &env(&[("TRELLIS__DEFAULT_SCHEDULE", "often")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable TRELLIS__DEFAULT_SCHEDULE: invalid schedule"),
            "{err}"
        );
    }

    #[test]
    fn repository_patterns_stop_at_slashes_and_ignore_case() {
        let check = |pattern: &str, name: &str, want: bool| {
            assert_eq!(
                repo_glob(pattern).unwrap().compile_matcher().is_match(name),
                want,
                "{pattern} ~ {name}"
            );
        };
        check("sandbox-*", "sandbox-tmp", true);
        check("a*", "acme/api", false);
        check("acme/*", "acme/api", true);
        check("Legacy-*", "legacy-billing", true);
        assert!(repo_glob("[oops").is_err());
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = parse(
            Path::new("t.yaml"),
            "server:\n  bind: 127.0.0.1:1\n",
            &env(&[
                ("TRELLIS__SERVER__BIND", "0.0.0.0:9000"),
                ("TRELLIS__DATABASE_URL", "sqlite::memory:"),
                ("TRELLIS__SOURCES__HR__PATH", "/tmp/roster.csv"),
                ("TRELLIS__LIMITS__CONCURRENCY", "2"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.database_url, "sqlite::memory:");
        assert_eq!(c.sources.hr.unwrap().path, PathBuf::from("/tmp/roster.csv"));
        assert_eq!(c.limits.concurrency, 2);
    }

    #[test]
    fn env_override_with_unknown_key_is_an_error() {
        let err = parse(
            Path::new("t.yaml"),
            "{}",
            &env(&[("TRELLIS__SERVER__BNID", "x")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
        assert!(
            err.to_string()
                .starts_with("environment variable TRELLIS__SERVER__BNID:"),
            "{err}"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = parse(
            Path::new("t.yaml"),
            "database_url: postgres://app:hunter2@db/trellis\n",
            &[],
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("postgres://app:***@db/trellis"));
        let check = |url: &str, want: &str| assert_eq!(redact_url(url), want, "{url}");
        check("postgres://u:p@ss@h/db", "postgres://u:***@h/db");
        check(
            "postgres://u@h/db?password=s3cret&sslmode=require",
            "postgres://u@h/db?password=***&sslmode=require",
        );
        check(
            "sqlite://trellis.db?mode=rwc",
            "sqlite://trellis.db?mode=rwc",
        );
        let s = Secret::new("ghp_supersecret".into());
        assert!(!format!("{s:?} {s}").contains("supersecret"));
    }

    #[test]
    fn github_token_comes_from_the_named_env_var_or_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "ghp_fromfile\n").unwrap();
        let g = GithubSource {
            token_file: Some("tok".into()),
            ..GithubSource::default()
        };
        assert_eq!(
            g.token(dir.path()).unwrap().unwrap().expose(),
            "ghp_fromfile"
        );
        let g = GithubSource {
            token_env: Some("TRELLIS_TEST_SURELY_UNSET_VAR".into()),
            token_file: None,
            ..g
        };
        let err = g.token(dir.path()).unwrap_err();
        assert!(err.contains("TRELLIS_TEST_SURELY_UNSET_VAR"));
    }

    /// `metrics` and `log`: off and text by default, set in the file or the environment,
    /// unknown keys refused; the commented-out example in config.example.yaml is valid.
    #[test]
    fn metrics_listener_and_log_format() {
        let c = parse(Path::new("t.yaml"), "", &[]).unwrap();
        assert!(c.metrics.bind.is_none());
        assert_eq!(c.log.format, LogFormat::Text);
        let text = "metrics: {bind: \"127.0.0.1:9464\"}\nlog: {format: json}\n";
        let c = parse(Path::new("t.yaml"), text, &[]).unwrap();
        assert_eq!(c.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
        assert_eq!(c.log.format, LogFormat::Json);
        let c = parse(
            Path::new("t.yaml"),
            "",
            &env(&[
                ("TRELLIS__METRICS__BIND", "127.0.0.1:0"),
                ("TRELLIS__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(c.metrics.bind.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(c.log.format, LogFormat::Json);
        for bad in ["metrics: {bnd: x}\n", "log: {format: xml}\n"] {
            assert!(parse(Path::new("t.yaml"), bad, &[]).is_err(), "{bad}");
        }
        let start = BUNDLED_EXAMPLE.find("# metrics:").unwrap();
        let block: String = BUNDLED_EXAMPLE[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
            .collect();
        let c = parse(Path::new("example"), &block, &[]).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert_eq!(c.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
    }
}
