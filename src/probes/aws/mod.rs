//! AWS probes: IAM evidence per account, EC2 evidence per account and region.
//!
//! Configuration is `sources.aws` (see [`crate::config::AwsSource`]). For each configured
//! account this module builds one SDK configuration per run (credentials from the default
//! chain, a named profile or a credentials file, optionally an assumed role; a custom
//! `endpoint_url`; adaptive retry; a per-call timeout), resolves the regions to inspect, and
//! hands out [`Scope`]s — one account, one region — to the probes in [`iam`] and [`ec2`].
//!
//! Every AWS listing goes through [`fetch`], which caches it in the run's
//! [`FetchCache`](super::FetchCache) by account, region and operation: however many controls
//! read security groups, each page of `DescribeSecurityGroups` is requested once per run.
//!
//! Failures are never verdicts. A call that AWS refuses, that times out, is throttled past the
//! retries, returns 5xx or an unreadable body becomes a [`ProbeError`] naming the operation and,
//! for a refusal, the IAM permission that is missing. A scope (account or region) that fails is
//! reported as one `error` resource naming it, and the other scopes are still evaluated.

pub mod accounts;
pub mod cloudtrail;
pub mod ec2;
pub mod elbv2;
pub(crate) mod fetch;
pub mod guardduty;
pub mod iam;
pub mod monitoring;
pub mod rds;
pub mod s3;

/// Every AWS operation Trellis calls, one slice per service module.
/// `docs/aws-iam-policy.json` grants exactly these (tested).
pub const OPERATION_GROUPS: &[&[Op]] = &[
    fetch::OPERATIONS,
    accounts::OPERATIONS,
    elbv2::OPERATIONS,
    monitoring::OPERATIONS,
    rds::OPERATIONS,
    s3::OPERATIONS,
    cloudtrail::OPERATIONS,
    guardduty::OPERATIONS,
];

/// Every AWS operation Trellis calls.
pub fn operations() -> impl Iterator<Item = &'static Op> {
    OPERATION_GROUPS.iter().flat_map(|group| group.iter())
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_iam::config::SharedCredentialsProvider;
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{ProbeContext, ProbeError, Resource};
use crate::config::{AwsAccount, AwsRetryMode, AwsSource};

/// Region used for account-wide calls when the account names none.
pub const DEFAULT_HOME_REGION: &str = "us-east-1";

/// Which accounts a check reads (IAM probes). Empty means every configured account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSelection {
    /// Names of `sources.aws.accounts` to read; all when empty.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// Which accounts and regions a check reads (EC2 probes). Empty means all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionSelection {
    /// Names of `sources.aws.accounts` to read; all when empty.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Regions to read, among each account's regions; all of them when empty.
    #[serde(default)]
    pub regions: Vec<String>,
}

/// One configured account, ready to call: its SDK configuration and per-region call limits.
pub(crate) struct Account {
    pub name: String,
    pub sdk: SdkConfig,
    pub home_region: String,
    /// Regions from the configuration (empty: every enabled region, listed at run time).
    pub regions: Vec<String>,
    concurrency: usize,
    credential_report_wait: std::time::Duration,
    permits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("home_region", &self.home_region)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// The limiter of API calls in flight for one region of this account.
    fn permits(&self, region: &str) -> Arc<Semaphore> {
        let mut permits = self
            .permits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        permits
            .entry(region.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone()
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .interceptor(CountCalls)
            .region(Region::new(self.home_region.clone()))
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::from(&self.sdk)
            .interceptor(CountCalls)
            .region(Region::new(region.to_string()))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }
}

/// `impl Account { pub fn $name(&self, region) -> $sdk::Client }`: one service's client for a
/// region of the account, from the account's SDK configuration.
macro_rules! regional_client {
    ($name:ident, $sdk:ident) => {
        impl $crate::probes::aws::Account {
            pub fn $name(&self, region: &str) -> $sdk::Client {
                let conf = $sdk::config::Builder::from(&self.sdk)
                    .interceptor($crate::probes::aws::CountCalls)
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                $sdk::Client::from_conf(conf)
            }
        }
    };
}

regional_client!(rds, aws_sdk_rds);
regional_client!(cloudtrail, aws_sdk_cloudtrail);
regional_client!(elbv2, aws_sdk_elasticloadbalancingv2);
regional_client!(guardduty, aws_sdk_guardduty);
regional_client!(cloudwatch, aws_sdk_cloudwatch);

/// One account and one region: the unit EC2 evidence is collected in.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub account: Arc<Account>,
    pub region: String,
}

impl Scope {
    /// `production/eu-west-1`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.account.name, self.region)
    }
}

fn source(ctx: &ProbeContext) -> Result<&AwsSource, ProbeError> {
    ctx.sources
        .aws
        .as_ref()
        .filter(|a| !a.accounts.is_empty())
        .ok_or(ProbeError::NotConfigured("aws"))
}

/// An account that could be set up, or its name and why it could not.
pub(crate) type AccountResult = Result<Arc<Account>, (String, ProbeError)>;

/// The selected accounts, each built once per run (shared by every AWS probe of the run). A
/// check naming an account that is not configured is an error for the whole check; an
/// account that cannot be set up (unreadable credentials file…) is an error for that account
/// alone.
pub(crate) async fn accounts(
    ctx: &ProbeContext,
    selected: &[String],
) -> Result<Vec<AccountResult>, ProbeError> {
    let source = source(ctx)?;
    for name in selected {
        if !source.accounts.iter().any(|a| &a.name == name) {
            let known: Vec<&str> = source.accounts.iter().map(|a| a.name.as_str()).collect();
            return Err(ProbeError::Io(format!(
                "aws account `{name}` is not configured (sources.aws.accounts: {})",
                known.join(", ")
            )));
        }
    }
    let mut out = Vec::new();
    for account in &source.accounts {
        if !selected.is_empty() && !selected.contains(&account.name) {
            continue;
        }
        let built = ctx
            .cache
            .get_or_fetch(
                &format!("aws:{}:account", account.name),
                build_account(ctx, source, account),
            )
            .await;
        out.push(built.map_err(|e| (account.name.clone(), e)));
    }
    Ok(out)
}

async fn build_account(
    ctx: &ProbeContext,
    source: &AwsSource,
    account: &AwsAccount,
) -> Result<Account, ProbeError> {
    let home_region = account
        .home_region
        .clone()
        .or_else(|| account.regions.first().cloned())
        .unwrap_or_else(|| DEFAULT_HOME_REGION.to_string());
    let retry = match source.retry_mode {
        AwsRetryMode::Adaptive => RetryConfig::adaptive(),
        AwsRetryMode::Standard => RetryConfig::standard(),
    }
    .with_max_attempts(source.max_attempts.get())
    .with_initial_backoff(source.initial_backoff.to_std());
    let call = source.call_timeout.to_std();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(call.min(std::time::Duration::from_secs(10)))
        .operation_attempt_timeout(call)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(home_region.clone()))
        .retry_config(retry)
        .timeout_config(timeouts)
        .app_name(aws_config::AppName::new("trellis").map_err(|e| ProbeError::Io(e.to_string()))?);
    if let Some(url) = &account.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // Credentials: a credentials file named in the config, or a named profile, or the default
    // chain (environment, shared files, SSO, container and instance roles).
    if account.credentials_file.is_some() || account.profile.is_some() {
        let mut provider = ProfileFileCredentialsProvider::builder();
        if let Some(file) = &account.credentials_file {
            let path = ctx.resolve_path(file);
            if !path.is_file() {
                return Err(ProbeError::Auth(format!(
                    "aws account `{}`: credentials file {} cannot be read",
                    account.name,
                    path.display()
                )));
            }
            let files = EnvConfigFiles::builder()
                .with_file(EnvConfigFileKind::Credentials, path)
                .build();
            provider = provider.profile_files(files.clone());
            loader = loader.profile_files(files);
        }
        if let Some(profile) = &account.profile {
            provider = provider.profile_name(profile);
            loader = loader.profile_name(profile);
        }
        loader = loader.credentials_provider(provider.build());
    }
    let mut sdk = loader.load().await;
    if let Some(role) = &account.assume_role_arn {
        let mut builder = AssumeRoleProvider::builder(role)
            .session_name("trellis-audit")
            .configure(&sdk);
        if let Some(id) = &account.external_id {
            builder = builder.external_id(id);
        }
        let provider = builder.build().await;
        sdk = sdk
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
    }
    Ok(Account {
        name: account.name.clone(),
        sdk,
        home_region,
        regions: account.regions.clone(),
        concurrency: source.concurrency.get(),
        credential_report_wait: source.credential_report_wait.to_std(),
        permits: Mutex::new(HashMap::new()),
    })
}

/// The regions to read for `selection`: per account, the configured regions (or every enabled
/// region, listed once per run), narrowed to `selection.regions`. An account whose regions
/// cannot be listed, and a selected region the account does not have, are errors for that
/// account or region: a check never passes for want of anything to look at.
pub(crate) async fn scopes(
    ctx: &ProbeContext,
    selection: &RegionSelection,
) -> Result<Vec<Result<Scope, (String, ProbeError)>>, ProbeError> {
    let mut out = Vec::new();
    for account in accounts(ctx, &selection.accounts).await? {
        let account = match account {
            Ok(a) => a,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let regions = if account.regions.is_empty() {
            match fetch::enabled_regions(ctx, &account).await {
                Ok(r) if r.is_empty() => {
                    out.push(Err((
                        account.name.clone(),
                        ProbeError::BadBody(format!(
                            "DescribeRegions in {}: no enabled region was listed",
                            account.name
                        )),
                    )));
                    continue;
                }
                Ok(r) => r.as_ref().clone(),
                Err(e) => {
                    out.push(Err((account.name.clone(), e)));
                    continue;
                }
            }
        } else {
            account.regions.clone()
        };
        for wanted in &selection.regions {
            if !regions.contains(wanted) {
                out.push(Err((
                    format!("{}/{wanted}", account.name),
                    ProbeError::Io(format!(
                        "region `{wanted}` is not among the regions of aws account `{}` ({})",
                        account.name,
                        regions.join(", ")
                    )),
                )));
            }
        }
        for region in regions {
            if selection.regions.is_empty() || selection.regions.contains(&region) {
                out.push(Ok(Scope {
                    account: account.clone(),
                    region,
                }));
            }
        }
    }
    Ok(out)
}

/// The AWS probes whose population has exactly one resource per account or region: for them,
/// an account or region that could not be read is that one resource, not a scope.
const ONE_PER_SCOPE: &[&str] = &[
    <iam::PasswordPolicy as crate::probes::Probe>::NAME,
    <iam::AccountSummary as crate::probes::Probe>::NAME,
    <ec2::EbsEncryption as crate::probes::Probe>::NAME,
    <s3::AccountPublicAccess as crate::probes::Probe>::NAME,
    <guardduty::Detectors as crate::probes::Probe>::NAME,
];

/// An `error` resource standing for a whole account or region that could not be read: a
/// scope, which may hold any number of the probe's resources (unless the probe has one
/// resource per account or region).
pub(crate) fn scope_error(probe: &str, label: &str, error: &ProbeError) -> Resource {
    Resource {
        id: format!("aws:{label}:{probe}"),
        name: format!("AWS {label}"),
        attributes: Default::default(),
        error: Some(error.to_string()),
        unknown: Default::default(),
        scope: !ONE_PER_SCOPE.contains(&probe),
    }
}

/// An AWS API operation and the IAM permission it needs (named when access is denied).
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub name: &'static str,
    pub permission: &'static str,
}

/// Error codes meaning "these credentials may not do this".
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "Forbidden",
];
/// Error codes meaning "these credentials are not valid".
const BAD_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "IncompleteSignature",
];
/// Error codes meaning "slow down" (left after the SDK's retries).
const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];

/// Counts every attempt of every AWS call (retries included) and every answer saying to slow
/// down, for `/metrics` (`trellis_api_requests_total{source="aws"}`,
/// `trellis_api_throttles_total`). Added to every client Trellis builds: the one place all
/// AWS requests pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountCalls;

impl aws_sdk_iam::config::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "trellis-count-calls"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_iam::config::RuntimeComponents,
        _: &mut aws_sdk_iam::config::ConfigBag,
    ) -> Result<(), aws_sdk_iam::error::BoxError> {
        crate::metrics::api_request("aws");
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_iam::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_iam::config::RuntimeComponents,
        _: &mut aws_sdk_iam::config::ConfigBag,
    ) -> Result<(), aws_sdk_iam::error::BoxError> {
        let response = context.response();
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype");
        if throttling_answer(
            status,
            error_type,
            response.body().bytes().unwrap_or_default(),
        ) {
            crate::metrics::api_throttled("aws");
        }
        Ok(())
    }
}

/// Whether an AWS answer says to slow down: HTTP 429, or an error whose code (in the
/// `x-amzn-ErrorType` header, or the XML or JSON body) is one of [`THROTTLED`].
fn throttling_answer(status: u16, error_type: Option<&str>, body: &[u8]) -> bool {
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    let names = |text: &str| THROTTLED.iter().any(|code| text.contains(code));
    error_type.is_some_and(names) || names(&String::from_utf8_lossy(body))
}

/// Turns an SDK error into the cause of an `error` verdict, naming the operation (and the
/// permission, when access was denied). Never a pass, never a fail.
pub(crate) fn classify<E>(op: Op, label: &str, err: SdkError<E>) -> ProbeError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let context = format!("{} in {label}", op.name);
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("").to_string();
            let status = service.raw().status().as_u16();
            if (200..300).contains(&status) {
                // A success status whose body the SDK could not read as the operation's output.
                ProbeError::BadBody(format!(
                    "{context}: the response could not be read (HTTP {status}: {})",
                    DisplayErrorContext(&err)
                ))
            } else if DENIED.contains(&code) {
                ProbeError::Auth(format!(
                    "access denied to {context}: the credentials lack `{}` ({code}: {message})",
                    op.permission
                ))
            } else if BAD_CREDENTIALS.contains(&code) {
                ProbeError::Auth(format!(
                    "{context}: AWS rejected the credentials ({code}: {message})"
                ))
            } else if THROTTLED.contains(&code) || status == 429 {
                ProbeError::Throttled(format!(
                    "{context}: still throttled after the configured retries ({code})"
                ))
            } else if status >= 500 {
                ProbeError::Unavailable(format!(
                    "{context}: AWS answered HTTP {status} after the configured retries ({})",
                    if code.is_empty() {
                        "no error code"
                    } else {
                        code
                    }
                ))
            } else {
                ProbeError::Io(format!("{context} failed: HTTP {status} {code}: {message}"))
            }
        }
        SdkError::TimeoutError(_) => {
            ProbeError::Unavailable(format!("{context}: the call timed out"))
        }
        SdkError::ResponseError(_) => ProbeError::BadBody(format!(
            "{context}: the response could not be read: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::DispatchFailure(failure) => {
            let detail = DisplayErrorContext(&err).to_string();
            if failure.is_timeout() {
                ProbeError::Unavailable(format!("{context}: the call timed out ({detail})"))
            } else if detail.to_ascii_lowercase().contains("credential") {
                ProbeError::Auth(format!("{context}: no usable AWS credentials: {detail}"))
            } else {
                ProbeError::Unavailable(format!("{context}: AWS could not be reached: {detail}"))
            }
        }
        _ => {
            let detail = DisplayErrorContext(&err).to_string();
            if detail.to_ascii_lowercase().contains("credential") {
                ProbeError::Auth(format!("{context}: no usable AWS credentials: {detail}"))
            } else {
                ProbeError::Io(format!("{context} failed: {detail}"))
            }
        }
    }
}

/// An SDK timestamp as UTC.
pub(crate) fn time(t: &aws_sdk_iam::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

pub(crate) use crate::probes::{object, ts};

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/aws-iam-policy.json grants exactly the operations Trellis calls: nothing missing
    /// (which would be an `error` in production), nothing extra (least privilege).
    #[test]
    fn documented_policy_grants_exactly_what_is_called() {
        let text = include_str!("../../../docs/aws-iam-policy.json");
        let policy: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut granted: Vec<&str> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|s| {
                assert_eq!(s["Effect"], "Allow");
                assert_eq!(s["Resource"], "*");
            })
            .flat_map(|s| s["Action"].as_array().unwrap())
            .map(|a| a.as_str().unwrap())
            .collect();
        granted.sort();
        let mut called: Vec<&str> = operations().map(|o| o.permission).collect();
        called.sort();
        called.dedup();
        assert_eq!(granted, called);
    }

    #[test]
    fn throttling_answers_are_recognised() {
        for (status, header, body, expect) in [
            (429, None, "", true),
            (400, None, "<Error><Code>Throttling</Code></Error>", true),
            (
                503,
                None,
                "<Response><Errors><Error><Code>RequestLimitExceeded</Code>",
                true,
            ),
            (400, Some("ThrottlingException:http://internal"), "{}", true),
            (
                400,
                None,
                "{\"__type\":\"com.amazon#ThrottlingException\"}",
                true,
            ),
            (403, None, "<Code>AccessDenied</Code>", false),
            (200, None, "Throttling", false),
            (500, None, "", false),
        ] {
            assert_eq!(
                throttling_answer(status, header, body.as_bytes()),
                expect,
                "{status} {header:?} {body}"
            );
        }
    }

    #[test]
    fn selections_reject_unknown_fields() {
        let err = serde_json::from_value::<RegionSelection>(serde_json::json!({"region": ["x"]}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `region`"), "{err}");
    }
}
