//! `aws.cloudtrail.trails`: the CloudTrail trails that record each account's activity.
//!
//! `DescribeTrails` in the account's home region with shadow trails included, so a
//! multi-region trail created in another region (and an organisation trail the management
//! account created) is listed too; then `GetTrailStatus` for each trail, by ARN, to know
//! whether it is logging. Both once per account per run. A trail whose status cannot be read
//! leaves `logging` unknown (a check reading it is `error` naming why); the other trails are
//! still evaluated.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use super::fetch::cached;
use super::iam::per_account;
use super::{Account, AccountSelection, Op, classify, object, time, ts};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The CloudTrail calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[DESCRIBE_TRAILS, GET_TRAIL_STATUS];

const DESCRIBE_TRAILS: Op = Op {
    name: "DescribeTrails",
    permission: "cloudtrail:DescribeTrails",
};
const GET_TRAIL_STATUS: Op = Op {
    name: "GetTrailStatus",
    permission: "cloudtrail:GetTrailStatus",
};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TrailStatus {
    pub logging: Option<bool>,
    pub latest_delivery_at: Option<chrono::DateTime<chrono::Utc>>,
    pub latest_delivery_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Trail {
    pub arn: String,
    pub name: String,
    pub home_region: Option<String>,
    pub multi_region: Option<bool>,
    pub log_file_validation: Option<bool>,
    pub s3_bucket: Option<String>,
    pub kms_key_id: Option<String>,
    pub is_organization_trail: Option<bool>,
    pub include_global_service_events: Option<bool>,
    pub cloudwatch_log_group: Option<String>,
    /// The trail's status, or why it could not be read.
    pub status: Result<TrailStatus, String>,
}

/// The account's trails with their status, once per account per run.
pub(crate) async fn trails(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<Vec<Trail>>, ProbeError> {
    let key = format!("aws:{}:cloudtrail:trails", account.name);
    cached(ctx, key, async {
        let region = account.home_region.clone();
        let label = format!("{}/{region}", account.name);
        let client = account.cloudtrail(&region);
        let permits = account.permits(&region);
        let listed = {
            let _permit = permits.acquire().await;
            client
                .describe_trails()
                .include_shadow_trails(true)
                .send()
                .await
                .map_err(|e| classify(DESCRIBE_TRAILS, &label, e))?
        };
        let mut out = Vec::new();
        for t in listed.trail_list() {
            let arn = t.trail_arn().unwrap_or("").to_string();
            let name = t.name().unwrap_or("").to_string();
            let status = {
                let _permit = permits.acquire().await;
                client
                    .get_trail_status()
                    .name(if arn.is_empty() { &name } else { &arn })
                    .send()
                    .await
            };
            let status = status
                .map(|s| TrailStatus {
                    logging: s.is_logging(),
                    latest_delivery_at: s.latest_delivery_time().and_then(time),
                    latest_delivery_error: s
                        .latest_delivery_error()
                        .filter(|e| !e.is_empty())
                        .map(str::to_string),
                })
                .map_err(|e| classify(GET_TRAIL_STATUS, &label, e).to_string());
            out.push(Trail {
                arn,
                name,
                home_region: t.home_region().map(str::to_string),
                multi_region: t.is_multi_region_trail(),
                log_file_validation: t.log_file_validation_enabled(),
                s3_bucket: t.s3_bucket_name().map(str::to_string),
                kms_key_id: t.kms_key_id().map(str::to_string),
                is_organization_trail: t.is_organization_trail(),
                include_global_service_events: t.include_global_service_events(),
                cloudwatch_log_group: t.cloud_watch_logs_log_group_arn().map(str::to_string),
                status,
            });
        }
        Ok(out)
    })
    .await
}

/// `aws.cloudtrail.trails`.
pub struct Trails;

impl Probe for Trails {
    const NAME: &'static str = "aws.cloudtrail.trails";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "CloudTrail trails, one resource per trail, per account: the trails of the home region and every multi-region or organisation trail that applies to it, whether each is logging, multi-region, validates its log files, and where it delivers.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("arn", String, "the trail's ARN"),
        attr!("name", String, "the trail's name"),
        attr!("home_region", String, "the region the trail was created in"),
        attr!(
            "multi_region",
            Bool,
            "the trail records events in every region"
        ),
        attr!(
            "logging",
            Bool,
            "the trail is recording events now (GetTrailStatus)"
        ),
        attr!(
            "log_file_validation",
            Bool,
            "log file integrity validation (digest files) is on"
        ),
        attr!("s3_bucket", String, "the bucket the trail delivers to"),
        attr!(
            "kms_key_id",
            String,
            "the KMS key encrypting the logs, null if none"
        ),
        attr!(
            "is_organization_trail",
            Bool,
            "an organisation trail (created in the management account, recording every member account)"
        ),
        attr!(
            "include_global_service_events",
            Bool,
            "events of global services (IAM, STS…) are recorded"
        ),
        attr!(
            "cloudwatch_log_group",
            String,
            "the CloudWatch Logs group it also delivers to, null if none"
        ),
        attr!(
            "latest_delivery_at",
            Timestamp,
            "when a log file was last delivered to the bucket"
        ),
        attr!(
            "latest_delivery_error",
            String,
            "the last delivery error, null if none"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.cloudtrail.trails
require_resources: true
expect: at_least_one
assert: multi_region && logging && log_file_validation
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let trails = trails(ctx, &account).await?;
            let resources: Vec<Resource> = trails
                .iter()
                .map(|t| {
                    let mut a = object(json!({
                        "account": account.name,
                        "arn": t.arn,
                        "name": t.name,
                        "home_region": t.home_region,
                        "multi_region": t.multi_region,
                        "log_file_validation": t.log_file_validation,
                        "s3_bucket": t.s3_bucket,
                        "kms_key_id": t.kms_key_id,
                        "is_organization_trail": t.is_organization_trail,
                        "include_global_service_events": t.include_global_service_events,
                        "cloudwatch_log_group": t.cloudwatch_log_group,
                    }));
                    let mut unknown = BTreeMap::new();
                    match &t.status {
                        Ok(s) => {
                            a.insert("logging".into(), json!(s.logging));
                            a.insert("latest_delivery_at".into(), ts(s.latest_delivery_at));
                            a.insert(
                                "latest_delivery_error".into(),
                                json!(s.latest_delivery_error),
                            );
                            if s.logging.is_none() {
                                unknown.insert(
                                    "logging".to_string(),
                                    "GetTrailStatus did not say whether it is logging".to_string(),
                                );
                            }
                        }
                        Err(why) => {
                            for n in ["logging", "latest_delivery_at", "latest_delivery_error"] {
                                a.insert(n.into(), Value::Null);
                                unknown.insert(n.to_string(), why.clone());
                            }
                        }
                    }
                    for (n, v) in [
                        ("multi_region", t.multi_region),
                        ("log_file_validation", t.log_file_validation),
                    ] {
                        if v.is_none() {
                            unknown
                                .insert(n.to_string(), "DescribeTrails did not report it".into());
                        }
                    }
                    Resource {
                        id: if t.arn.is_empty() {
                            format!("aws:{}:cloudtrail:{}", account.name, t.name)
                        } else {
                            t.arn.clone()
                        },
                        name: format!(
                            "CloudTrail trail {} of {} ({})",
                            t.name, account.name, t.arn
                        ),
                        attributes: a,
                        error: None,
                        unknown,
                        scope: false,
                    }
                })
                .collect();
            let evidence = serde_json::to_value(trails.as_ref()).unwrap_or(Value::Null);
            Ok((resources, evidence.into()))
        })
        .await
    }
}
