//! `aws.s3.*`: S3, one population per account.
//!
//! - `aws.s3.buckets` — every bucket the account owns (`ListBuckets`, once per account per
//!   run), each read in its own region (`GetBucketLocation`): its public access block, its
//!   default encryption, whether its bucket policy denies requests not made over TLS
//!   (`aws:SecureTransport` = false), its lifecycle rules; and the account's public access
//!   block, since either one blocks public access.
//! - `aws.s3.account_public_access` — the account-level public access block (S3 Control).
//!
//! "Not configured" answers (`NoSuchPublicAccessBlockConfiguration`, `NoSuchBucketPolicy`,
//! `ServerSideEncryptionConfigurationNotFoundError`, `NoSuchLifecycleConfiguration`) are
//! values, not faults. A bucket whose region cannot be read is that bucket's `error`; a detail
//! that cannot be read leaves the attributes it gives unknown (a check reading them is `error`
//! naming why), and the other buckets and details are still evaluated.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::Region;
use aws_sdk_s3::error::ProvideErrorMetadata;
use serde::Serialize;
use serde_json::{Value, json};

use super::fetch::{self, cached};
use super::iam::per_account;
use super::{Account, AccountSelection, Op, classify, object, time, ts};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The S3 and S3 Control calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[
    LIST_BUCKETS,
    GET_BUCKET_LOCATION,
    GET_PUBLIC_ACCESS_BLOCK,
    GET_BUCKET_ENCRYPTION,
    GET_BUCKET_POLICY,
    GET_BUCKET_LIFECYCLE,
    GET_ACCOUNT_PUBLIC_ACCESS_BLOCK,
];

const LIST_BUCKETS: Op = Op {
    name: "ListBuckets",
    permission: "s3:ListAllMyBuckets",
};
const GET_BUCKET_LOCATION: Op = Op {
    name: "GetBucketLocation",
    permission: "s3:GetBucketLocation",
};
const GET_PUBLIC_ACCESS_BLOCK: Op = Op {
    name: "GetPublicAccessBlock",
    permission: "s3:GetBucketPublicAccessBlock",
};
const GET_BUCKET_ENCRYPTION: Op = Op {
    name: "GetBucketEncryption",
    permission: "s3:GetEncryptionConfiguration",
};
const GET_BUCKET_POLICY: Op = Op {
    name: "GetBucketPolicy",
    permission: "s3:GetBucketPolicy",
};
const GET_BUCKET_LIFECYCLE: Op = Op {
    name: "GetBucketLifecycleConfiguration",
    permission: "s3:GetLifecycleConfiguration",
};
const GET_ACCOUNT_PUBLIC_ACCESS_BLOCK: Op = Op {
    name: "GetPublicAccessBlock (S3 Control)",
    permission: "s3:GetAccountPublicAccessBlock",
};

/// `ListBuckets` page size.
const PAGE: i32 = 1000;

impl Account {
    /// An S3 client for `region`. With a custom endpoint (a local S3 such as moto or MinIO),
    /// buckets are addressed by path, since the endpoint has no per-bucket host names.
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .interceptor(super::CountCalls)
            .region(Region::new(region.to_string()))
            .force_path_style(self.sdk.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An S3 Control client. With a custom endpoint, requests go to that endpoint as written
    /// (AWS's own endpoints put the account id in front of the host name, which a local
    /// emulator on one host and port cannot answer).
    pub fn s3control(&self) -> aws_sdk_s3control::Client {
        let mut conf = aws_sdk_s3control::config::Builder::from(&self.sdk)
            .interceptor(super::CountCalls)
            .region(Region::new(self.home_region.clone()));
        if let Some(url) = self.sdk.endpoint_url() {
            conf = conf.endpoint_resolver(FixedEndpoint(url.to_string()));
        }
        aws_sdk_s3control::Client::from_conf(conf.build())
    }
}

/// An S3 Control endpoint resolver that keeps the configured URL's host: AWS's rules, then
/// the custom endpoint without the account id they put in front of its host name.
#[derive(Debug)]
struct FixedEndpoint(String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        use aws_sdk_s3control::config::endpoint::{
            DefaultResolver, EndpointFuture, ResolveEndpoint,
        };
        EndpointFuture::new(Box::pin(async move {
            let resolver = DefaultResolver::new();
            let resolved = ResolveEndpoint::resolve_endpoint(&resolver, params).await?;
            Ok(resolved
                .into_builder()
                .url(self.0.trim_end_matches('/').to_string())
                .build())
        }))
    }
}

/// The partition of ARNs in `region`.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The region account-wide S3 calls (ListBuckets, GetBucketLocation) are sent to.
fn global_region(home: &str) -> &'static str {
    match partition(home) {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        _ => "us-east-1",
    }
}

// ----------------------------------------------------------------------------------------
// Listings

/// A public access block's four settings (all false when none is configured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    fn all(&self) -> bool {
        self.block_public_acls
            && self.ignore_public_acls
            && self.block_public_policy
            && self.restrict_public_buckets
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Encryption {
    /// `AES256`, `aws:kms`, `aws:kms:dsse`.
    pub algorithm: String,
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LifecycleRule {
    pub id: Option<String>,
    pub enabled: bool,
    pub expiration_days: Option<i64>,
    pub noncurrent_expiration_days: Option<i64>,
}

/// A detail read from one per-bucket call: its value, or why it could not be read.
pub(crate) type Detail<T> = Result<T, String>;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Bucket {
    pub name: String,
    pub arn: String,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The bucket's region, or why it could not be read (then nothing else was read).
    pub region: Detail<String>,
    pub public_access_block: Detail<PublicAccessBlock>,
    /// `None`: no default encryption configured.
    pub encryption: Detail<Option<Encryption>>,
    /// The bucket policy document; `None`: no bucket policy.
    pub policy: Detail<Option<Value>>,
    /// `None`: no lifecycle configuration.
    pub lifecycle: Detail<Option<Vec<LifecycleRule>>>,
}

/// Reads `call`; an error whose code is `absent` is `Ok(None)`.
fn absent_is_none<T, E>(
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
    absent: &[&str],
    op: Op,
    label: &str,
) -> Detail<Option<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code().is_some_and(|c| absent.contains(&c)) => Ok(None),
        Err(e) => Err(classify(op, label, e).to_string()),
    }
}

async fn read_bucket(
    account: &Arc<Account>,
    name: String,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Bucket {
    let global = global_region(&account.home_region);
    let arn = format!("arn:{}:s3:::{name}", partition(&account.home_region));
    let label = format!("{}/{name}", account.name);
    let mut bucket = Bucket {
        name: name.clone(),
        arn,
        created_at,
        region: Err(String::new()),
        public_access_block: Err(String::new()),
        encryption: Err(String::new()),
        policy: Err(String::new()),
        lifecycle: Err(String::new()),
    };
    let location = {
        let permits = account.permits(global);
        let _permit = permits.acquire().await;
        account
            .s3(global)
            .get_bucket_location()
            .bucket(&name)
            .send()
            .await
    };
    let region = match location {
        Ok(out) => match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(r) => r.to_string(),
        },
        Err(e) => {
            let why = classify(GET_BUCKET_LOCATION, &label, e).to_string();
            bucket.region = Err(why.clone());
            bucket.public_access_block = Err(why.clone());
            bucket.encryption = Err(why.clone());
            bucket.policy = Err(why.clone());
            bucket.lifecycle = Err(why);
            return bucket;
        }
    };
    let client = account.s3(&region);
    let permits = account.permits(&region);
    bucket.region = Ok(region);

    bucket.public_access_block = {
        let _permit = permits.acquire().await;
        let answer = client.get_public_access_block().bucket(&name).send().await;
        absent_is_none(
            answer,
            &["NoSuchPublicAccessBlockConfiguration"],
            GET_PUBLIC_ACCESS_BLOCK,
            &label,
        )
        .map(|out| {
            out.and_then(|o| {
                o.public_access_block_configuration()
                    .map(|c| PublicAccessBlock {
                        block_public_acls: c.block_public_acls().unwrap_or(false),
                        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                        block_public_policy: c.block_public_policy().unwrap_or(false),
                        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                    })
            })
            .unwrap_or_default()
        })
    };

    bucket.encryption = {
        let _permit = permits.acquire().await;
        let answer = client.get_bucket_encryption().bucket(&name).send().await;
        absent_is_none(
            answer,
            &["ServerSideEncryptionConfigurationNotFoundError"],
            GET_BUCKET_ENCRYPTION,
            &label,
        )
        .map(|out| {
            out.and_then(|o| {
                o.server_side_encryption_configuration()
                    .and_then(|c| {
                        c.rules()
                            .iter()
                            .find_map(|r| r.apply_server_side_encryption_by_default())
                    })
                    .map(|d| Encryption {
                        algorithm: d.sse_algorithm().as_str().to_string(),
                        kms_key_id: d.kms_master_key_id().map(str::to_string),
                    })
            })
        })
    };

    bucket.policy = {
        let _permit = permits.acquire().await;
        let answer = client.get_bucket_policy().bucket(&name).send().await;
        absent_is_none(answer, &["NoSuchBucketPolicy"], GET_BUCKET_POLICY, &label).and_then(|out| {
            match out.as_ref().and_then(|o| o.policy()) {
                None => Ok(None),
                Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                    format!("GetBucketPolicy in {label}: the policy is not JSON: {e}")
                }),
            }
        })
    };

    bucket.lifecycle = {
        let _permit = permits.acquire().await;
        let answer = client
            .get_bucket_lifecycle_configuration()
            .bucket(&name)
            .send()
            .await;
        absent_is_none(
            answer,
            &["NoSuchLifecycleConfiguration"],
            GET_BUCKET_LIFECYCLE,
            &label,
        )
        .map(|out| {
            out.map(|o| {
                o.rules()
                    .iter()
                    .map(|r| LifecycleRule {
                        id: r.id().map(str::to_string),
                        enabled: r.status().as_str() == "Enabled",
                        expiration_days: r.expiration().and_then(|e| e.days()).map(i64::from),
                        noncurrent_expiration_days: r
                            .noncurrent_version_expiration()
                            .and_then(|e| e.noncurrent_days())
                            .map(i64::from),
                    })
                    .collect()
            })
        })
    };
    bucket
}

/// Every bucket of the account with its details, once per account per run.
pub(crate) async fn buckets(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<Vec<Bucket>>, ProbeError> {
    let key = format!("aws:{}:s3:buckets", account.name);
    cached(ctx, key, async {
        let global = global_region(&account.home_region);
        let client = account.s3(global);
        let permits = account.permits(global);
        let mut listed = Vec::new();
        let mut pages = client
            .list_buckets()
            .into_paginator()
            .page_size(PAGE)
            .send();
        loop {
            let next = {
                let _permit = permits.acquire().await;
                pages.next().await
            };
            let Some(page) = next else { break };
            let page = page.map_err(|e| classify(LIST_BUCKETS, &account.name, e))?;
            for b in page.buckets() {
                if let Some(name) = b.name() {
                    listed.push((name.to_string(), b.creation_date().and_then(time)));
                }
            }
        }
        Ok(futures::future::join_all(
            listed
                .into_iter()
                .map(|(name, created)| read_bucket(account, name, created)),
        )
        .await)
    })
    .await
}

/// The account's public access block (S3 Control); all false when none is configured.
pub(crate) async fn account_public_access_block(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<PublicAccessBlock>, ProbeError> {
    let key = format!("aws:{}:s3control:public-access-block", account.name);
    cached(ctx, key, async {
        let id = fetch::account_id(ctx, account).await?;
        let permits = account.permits(&account.home_region);
        let _permit = permits.acquire().await;
        let answer = account
            .s3control()
            .get_public_access_block()
            .account_id(id.as_str())
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out
                .public_access_block_configuration()
                .map(|c| PublicAccessBlock {
                    block_public_acls: c.block_public_acls().unwrap_or(false),
                    ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                    block_public_policy: c.block_public_policy().unwrap_or(false),
                    restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                })
                .unwrap_or_default()),
            Err(e)
                if aws_sdk_s3control::error::ProvideErrorMetadata::code(&e)
                    == Some("NoSuchPublicAccessBlockConfiguration") =>
            {
                Ok(PublicAccessBlock::default())
            }
            Err(e) => Err(classify(GET_ACCOUNT_PUBLIC_ACCESS_BLOCK, &account.name, e)),
        }
    })
    .await
}

// ----------------------------------------------------------------------------------------
// Bucket policy: does it deny every request not made over TLS?

/// A string or a list of strings.
fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// IAM wildcard match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The statement denies, to everyone, every S3 action on the bucket and all its objects,
/// under the one condition that the request was not made over TLS.
fn denies_insecure_transport(statement: &Value, bucket_arn: &str) -> bool {
    let effect = statement.get("Effect").and_then(Value::as_str);
    if effect != Some("Deny") || statement.get("NotAction").is_some() {
        return false;
    }
    if statement.get("NotPrincipal").is_some() || statement.get("NotResource").is_some() {
        return false;
    }
    let everyone = match statement.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(m)) => strings(m.get("AWS")).contains(&"*"),
        _ => false,
    };
    let all_actions = strings(statement.get("Action"))
        .iter()
        .any(|a| glob(a, "s3:*", true));
    let resources = strings(statement.get("Resource"));
    let objects = format!("{bucket_arn}/*");
    let covers = |target: &str| resources.iter().any(|r| glob(r, target, false));
    let on_bucket = covers(bucket_arn) && covers(&objects);
    let insecure_only = match statement.get("Condition") {
        Some(Value::Object(ops)) if ops.len() == 1 => ops.get("Bool").is_some_and(|keys| {
            keys.as_object().is_some_and(|keys| {
                keys.len() == 1
                    && keys.iter().all(|(k, v)| {
                        k.eq_ignore_ascii_case("aws:SecureTransport")
                            && match v {
                                Value::Bool(b) => !b,
                                Value::String(s) => s.eq_ignore_ascii_case("false"),
                                Value::Array(a) => {
                                    !a.is_empty()
                                        && a.iter().all(|x| {
                                            x == &Value::Bool(false)
                                                || x.as_str().is_some_and(|s| {
                                                    s.eq_ignore_ascii_case("false")
                                                })
                                        })
                                }
                                _ => false,
                            }
                    })
            })
        }),
        _ => false,
    };
    everyone && all_actions && on_bucket && insecure_only
}

/// Whether a bucket policy document denies every request not made over TLS.
pub(crate) fn tls_only(policy: &Value, bucket_arn: &str) -> bool {
    match policy.get("Statement") {
        Some(Value::Array(statements)) => statements
            .iter()
            .any(|s| denies_insecure_transport(s, bucket_arn)),
        Some(s @ Value::Object(_)) => denies_insecure_transport(s, bucket_arn),
        _ => false,
    }
}

// ----------------------------------------------------------------------------------------
// Probes

/// `aws.s3.buckets`.
pub struct Buckets;

impl Probe for Buckets {
    const NAME: &'static str = "aws.s3.buckets";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "S3 buckets the account owns, one resource per bucket, per account: region, public access block (the bucket's and the account's), default encryption, whether the bucket policy denies requests not made over TLS, lifecycle rules.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "the bucket's region"),
        attr!("arn", String, "the bucket's ARN"),
        attr!("bucket", String, "the bucket's name"),
        attr!("created_at", Timestamp, "when the bucket was created"),
        attr!(
            "bucket_public_access_block",
            Map,
            "the bucket's public access block: block_public_acls, ignore_public_acls, block_public_policy, restrict_public_buckets (all false when none is configured)"
        ),
        attr!(
            "bucket_public_access_blocked",
            Bool,
            "all four settings of the bucket's public access block are on"
        ),
        attr!(
            "account_public_access_blocked",
            Bool,
            "all four settings of the account's public access block are on"
        ),
        attr!(
            "public_access_blocked",
            Bool,
            "public access is blocked by the bucket's or the account's public access block"
        ),
        attr!(
            "default_encryption",
            String,
            "the default encryption algorithm (`AES256`, `aws:kms`, `aws:kms:dsse`), null if none is configured"
        ),
        attr!(
            "kms_key_id",
            String,
            "the default encryption's KMS key, null if none"
        ),
        attr!("has_policy", Bool, "the bucket has a bucket policy"),
        attr!(
            "tls_only",
            Bool,
            "the bucket policy denies everyone every S3 action on the bucket and its objects when `aws:SecureTransport` is false"
        ),
        attr!(
            "lifecycle_rules",
            List,
            "lifecycle rules: id, enabled, expiration_days, noncurrent_expiration_days (empty when none)"
        ),
        attr!(
            "expiration_days",
            Int,
            "the shortest expiration (days) of current objects among enabled lifecycle rules, null if none"
        ),
        attr!(
            "noncurrent_expiration_days",
            Int,
            "the shortest expiration (days) of noncurrent versions among enabled lifecycle rules, null if none"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.s3.buckets
assert: public_access_blocked && default_encryption != null && tls_only
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let buckets = buckets(ctx, &account).await?;
            // Read only when some bucket does not block public access itself.
            let needs_account = buckets
                .iter()
                .any(|b| !matches!(&b.public_access_block, Ok(p) if p.all()));
            let account_block = if needs_account {
                Some(account_public_access_block(ctx, &account).await)
            } else {
                None
            };
            let resources: Vec<Resource> = buckets
                .iter()
                .map(|b| bucket_resource(&account, b, account_block.as_ref()))
                .collect();
            let evidence = Value::Array(
                resources
                    .iter()
                    .map(|r| json!({"id": r.id, "attributes": r.attributes, "error": r.error, "unknown": r.unknown}))
                    .collect(),
            );
            Ok((resources, evidence.into()))
        })
        .await
    }
}

fn bucket_resource(
    account: &Account,
    b: &Bucket,
    account_block: Option<&Result<Arc<PublicAccessBlock>, ProbeError>>,
) -> Resource {
    let mut unknown = BTreeMap::new();
    let mut a = object(json!({
        "account": account.name,
        "arn": b.arn,
        "bucket": b.name,
        "created_at": ts(b.created_at),
    }));
    let region = match &b.region {
        Ok(r) => r.clone(),
        Err(why) => {
            return Resource {
                id: b.arn.clone(),
                name: format!("S3 bucket {} in {} ({})", b.name, account.name, b.arn),
                attributes: a,
                error: Some(why.clone()),
                unknown,
                scope: false,
            };
        }
    };
    a.insert("region".into(), json!(region));
    fn unread(
        names: &[&str],
        why: &str,
        a: &mut crate::probes::Attributes,
        unknown: &mut BTreeMap<String, String>,
    ) {
        for n in names {
            a.insert(n.to_string(), Value::Null);
            unknown.insert(n.to_string(), why.to_string());
        }
    }

    let account_all = match account_block {
        None => None,
        Some(Ok(p)) => Some(p.all()),
        Some(Err(e)) => {
            unread(
                &["account_public_access_blocked"],
                &e.to_string(),
                &mut a,
                &mut unknown,
            );
            None
        }
    };
    if let Some(all) = account_all {
        a.insert("account_public_access_blocked".into(), json!(all));
    }
    match &b.public_access_block {
        Ok(p) => {
            a.insert("bucket_public_access_block".into(), json!(p));
            a.insert("bucket_public_access_blocked".into(), json!(p.all()));
            if p.all() {
                a.insert("public_access_blocked".into(), json!(true));
                if account_block.is_none() {
                    a.insert("account_public_access_blocked".into(), Value::Null);
                    unknown.insert(
                        "account_public_access_blocked".into(),
                        "not read: the bucket's own public access block blocks public access"
                            .into(),
                    );
                }
            } else if let Some(all) = account_all {
                a.insert("public_access_blocked".into(), json!(all));
            } else {
                let why = match account_block {
                    Some(Err(e)) => e.to_string(),
                    _ => "the account's public access block was not read".into(),
                };
                unread(&["public_access_blocked"], &why, &mut a, &mut unknown);
            }
        }
        Err(why) => {
            unread(
                &["bucket_public_access_block", "bucket_public_access_blocked"],
                why,
                &mut a,
                &mut unknown,
            );
            match account_all {
                Some(true) => {
                    a.insert("public_access_blocked".into(), json!(true));
                }
                _ => unread(&["public_access_blocked"], why, &mut a, &mut unknown),
            }
        }
    }

    match &b.encryption {
        Ok(e) => {
            a.insert(
                "default_encryption".into(),
                json!(e.as_ref().map(|e| &e.algorithm)),
            );
            a.insert(
                "kms_key_id".into(),
                json!(e.as_ref().and_then(|e| e.kms_key_id.as_ref())),
            );
        }
        Err(why) => unread(
            &["default_encryption", "kms_key_id"],
            why,
            &mut a,
            &mut unknown,
        ),
    }

    match &b.policy {
        Ok(p) => {
            a.insert("has_policy".into(), json!(p.is_some()));
            a.insert(
                "tls_only".into(),
                json!(p.as_ref().is_some_and(|p| tls_only(p, &b.arn))),
            );
        }
        Err(why) => unread(&["has_policy", "tls_only"], why, &mut a, &mut unknown),
    }

    match &b.lifecycle {
        Ok(rules) => {
            let rules = rules.as_deref().unwrap_or(&[]);
            let enabled = || rules.iter().filter(|r| r.enabled);
            a.insert("lifecycle_rules".into(), json!(rules));
            a.insert(
                "expiration_days".into(),
                json!(enabled().filter_map(|r| r.expiration_days).min()),
            );
            a.insert(
                "noncurrent_expiration_days".into(),
                json!(enabled().filter_map(|r| r.noncurrent_expiration_days).min()),
            );
        }
        Err(why) => unread(
            &[
                "lifecycle_rules",
                "expiration_days",
                "noncurrent_expiration_days",
            ],
            why,
            &mut a,
            &mut unknown,
        ),
    }
    Resource {
        id: b.arn.clone(),
        name: format!(
            "S3 bucket {} in {}/{region} ({})",
            b.name, account.name, b.arn
        ),
        attributes: a,
        error: None,
        unknown,
        scope: false,
    }
}

/// `aws.s3.account_public_access`.
pub struct AccountPublicAccess;

impl Probe for AccountPublicAccess {
    const NAME: &'static str = "aws.s3.account_public_access";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "The account-level S3 public access block, one resource per account (S3 Control GetPublicAccessBlock; none configured is all off).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("account_id", String, "the 12-digit AWS account id"),
        attr!("block_public_acls", Bool, "new public ACLs are refused"),
        attr!(
            "ignore_public_acls",
            Bool,
            "existing public ACLs are ignored"
        ),
        attr!(
            "block_public_policy",
            Bool,
            "public bucket policies are refused"
        ),
        attr!(
            "restrict_public_buckets",
            Bool,
            "buckets with public policies are reachable only by AWS services and the account"
        ),
        attr!("all_blocked", Bool, "all four settings are on"),
    ];
    const EXAMPLE: &'static str = "probe: aws.s3.account_public_access\nassert: all_blocked\n";

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let block = account_public_access_block(ctx, &account).await?;
            let id = fetch::account_id(ctx, &account).await?;
            let mut a = object(json!({"account": account.name, "account_id": id.as_str()}));
            a.extend(object(json!(block.as_ref())));
            a.insert("all_blocked".into(), json!(block.all()));
            let evidence = json!(a);
            Ok((
                vec![Resource {
                    id: format!("aws:{}:s3:account-public-access-block", account.name),
                    name: format!(
                        "S3 account public access block of AWS account {} ({})",
                        account.name, id
                    ),
                    attributes: a,
                    error: None,
                    unknown: Default::default(),
                    scope: false,
                }],
                evidence.into(),
            ))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:s3:::acme-data";

    fn policy(statement: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [statement]})
    }

    fn deny(principal: Value, action: Value, resource: Value, condition: Value) -> Value {
        json!({"Effect": "Deny", "Principal": principal, "Action": action, "Resource": resource, "Condition": condition})
    }

    fn insecure() -> Value {
        json!({"Bool": {"aws:SecureTransport": "false"}})
    }

    #[test]
    fn the_usual_tls_only_statements_are_recognised() {
        let both = json!([ARN, format!("{ARN}/*")]);
        assert!(tls_only(
            &policy(deny(json!("*"), json!("s3:*"), both.clone(), insecure())),
            ARN
        ));
        assert!(tls_only(
            &policy(deny(
                json!({"AWS": "*"}),
                json!(["s3:*"]),
                both.clone(),
                json!({"Bool": {"aws:SecureTransport": false}})
            )),
            ARN
        ));
        assert!(tls_only(
            &policy(deny(
                json!("*"),
                json!("*"),
                json!("arn:aws:s3:::acme-*"),
                insecure()
            )),
            ARN
        ));
        // A single statement object rather than a list.
        assert!(tls_only(
            &json!({"Statement": deny(json!("*"), json!("s3:*"), both.clone(), insecure())}),
            ARN
        ));
    }

    #[test]
    fn partial_or_conditional_denials_are_not_tls_only() {
        let both = json!([ARN, format!("{ARN}/*")]);
        // Objects only, bucket only, some prefix only.
        assert!(!tls_only(
            &policy(deny(
                json!("*"),
                json!("s3:*"),
                json!(format!("{ARN}/*")),
                insecure()
            )),
            ARN
        ));
        assert!(!tls_only(
            &policy(deny(json!("*"), json!("s3:*"), json!(ARN), insecure())),
            ARN
        ));
        assert!(!tls_only(
            &policy(deny(
                json!("*"),
                json!("s3:*"),
                json!([ARN, format!("{ARN}/public/*")]),
                insecure()
            )),
            ARN
        ));
        // Some actions only; some principals only; allow instead of deny; another bucket.
        assert!(!tls_only(
            &policy(deny(
                json!("*"),
                json!("s3:GetObject"),
                both.clone(),
                insecure()
            )),
            ARN
        ));
        assert!(!tls_only(
            &policy(deny(
                json!({"AWS": "arn:aws:iam::111122223333:root"}),
                json!("s3:*"),
                both.clone(),
                insecure()
            )),
            ARN
        ));
        let mut allow = deny(json!("*"), json!("s3:*"), both.clone(), insecure());
        allow["Effect"] = json!("Allow");
        assert!(!tls_only(&policy(allow), ARN));
        assert!(!tls_only(
            &policy(deny(
                json!("*"),
                json!("s3:*"),
                json!(["arn:aws:s3:::other", "arn:aws:s3:::other/*"]),
                insecure()
            )),
            ARN
        ));
        // Secure transport true; an extra condition narrowing the denial; no condition.
        assert!(!tls_only(
            &policy(deny(
                json!("*"),
                json!("s3:*"),
                both.clone(),
                json!({"Bool": {"aws:SecureTransport": "true"}})
            )),
            ARN
        ));
        assert!(!tls_only(
            &policy(deny(
                json!("*"),
                json!("s3:*"),
                both.clone(),
                json!({"Bool": {"aws:SecureTransport": "false"}, "StringEquals": {"aws:PrincipalAccount": "111122223333"}})
            )),
            ARN
        ));
        assert!(!tls_only(
            &policy(deny(json!("*"), json!("s3:*"), both, json!(null))),
            ARN
        ));
        assert!(!tls_only(&json!({}), ARN));
    }

    #[test]
    fn globs_match_like_iam() {
        assert!(glob(
            "arn:aws:s3:::acme-*",
            "arn:aws:s3:::acme-data/*",
            false
        ));
        assert!(glob("*", "anything", false));
        assert!(glob("S3:*", "s3:*", true));
        assert!(!glob("s3:Get*", "s3:*", true));
        assert!(glob("arn:aws:s3:::acme-dat?", ARN, false));
        assert!(!glob(
            "arn:aws:s3:::acme-data/public/*",
            "arn:aws:s3:::acme-data/*",
            false
        ));
    }
}
