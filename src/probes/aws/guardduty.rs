//! `aws.guardduty.detectors`: GuardDuty in each account and region, and whether the region is
//! in use.
//!
//! `ListDetectors` (50 a page) and `GetDetector` for each detector, once per account and region
//! per run. A region is in use when it holds EBS volumes, EC2 instances or RDS DB instances
//! ([`super::ec2::region_usage`], from the same cached listings the EC2 and RDS probes read).

use serde::Serialize;
use serde_json::json;

use super::ec2::{base, id, per_region, region_usage};
use super::fetch::{cached, paginate};
use super::{Op, RegionSelection, Scope, classify, object};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The GuardDuty calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[LIST_DETECTORS, GET_DETECTOR];

const LIST_DETECTORS: Op = Op {
    name: "ListDetectors",
    permission: "guardduty:ListDetectors",
};
const GET_DETECTOR: Op = Op {
    name: "GetDetector",
    permission: "guardduty:GetDetector",
};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Detector {
    pub id: String,
    /// `ENABLED` or `DISABLED`.
    pub status: Option<String>,
    /// `FIFTEEN_MINUTES`, `ONE_HOUR`, `SIX_HOURS`.
    pub finding_publishing_frequency: Option<String>,
}

pub(crate) async fn detectors(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<std::sync::Arc<Vec<Detector>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:guardduty:detectors",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let client = scope.account.guardduty(&scope.region);
        let mut ids = Vec::new();
        paginate!(
            scope,
            LIST_DETECTORS,
            client
                .list_detectors()
                .into_paginator()
                .page_size(50)
                .send(),
            |page| {
                ids.extend(page.detector_ids().iter().cloned());
            }
        );
        let permits = scope.account.permits(&scope.region);
        let mut out = Vec::new();
        for id in ids {
            let _permit = permits.acquire().await;
            let d = client
                .get_detector()
                .detector_id(&id)
                .send()
                .await
                .map_err(|e| classify(GET_DETECTOR, &scope.label(), e))?;
            out.push(Detector {
                id,
                status: d.status().map(|s| s.as_str().to_string()),
                finding_publishing_frequency: d
                    .finding_publishing_frequency()
                    .map(|f| f.as_str().to_string()),
            });
        }
        Ok(out)
    })
    .await
}

/// `aws.guardduty.detectors`.
pub struct Detectors;

impl Probe for Detectors {
    const NAME: &'static str = "aws.guardduty.detectors";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "GuardDuty, one resource per account and region: the region's detector and whether it is enabled, and whether the region is in use (holds EBS volumes, EC2 instances or RDS DB instances).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("detector_id", String, "the region's detector, null if none"),
        attr!(
            "enabled",
            Bool,
            "a detector exists and its status is ENABLED"
        ),
        attr!(
            "status",
            String,
            "`ENABLED` or `DISABLED`, null without a detector"
        ),
        attr!(
            "finding_publishing_frequency",
            String,
            "how often updated findings are published (`FIFTEEN_MINUTES`, `ONE_HOUR`, `SIX_HOURS`), null without a detector"
        ),
        attr!("volumes", Int, "EBS volumes in the region"),
        attr!(
            "instances",
            Int,
            "EC2 instances (not terminated) in the region"
        ),
        attr!("db_instances", Int, "RDS DB instances in the region"),
        attr!(
            "in_use",
            Bool,
            "the region holds EBS volumes, EC2 instances or RDS DB instances"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.guardduty.detectors
where: in_use
assert: enabled
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let detectors = detectors(ctx, &scope).await?;
            let usage = region_usage(ctx, &scope, true).await?;
            // One detector per region is all GuardDuty allows; prefer an enabled one.
            let detector = detectors
                .iter()
                .find(|d| d.status.as_deref() == Some("ENABLED"))
                .or_else(|| detectors.first());
            let mut a = base(&scope);
            a.extend(object(json!({
                "detector_id": detector.map(|d| &d.id),
                "enabled": detector.is_some_and(|d| d.status.as_deref() == Some("ENABLED")),
                "status": detector.and_then(|d| d.status.as_ref()),
                "finding_publishing_frequency": detector.and_then(|d| d.finding_publishing_frequency.as_ref()),
                "volumes": usage.volumes,
                "instances": usage.instances,
                "db_instances": usage.db_instances,
                "in_use": usage.in_use(),
            })));
            let mut unknown = std::collections::BTreeMap::new();
            if detector.is_some_and(|d| d.status.is_none()) {
                unknown.insert(
                    "enabled".to_string(),
                    "GetDetector did not report the detector's status".to_string(),
                );
            }
            let name = match detector {
                Some(d) => format!("GuardDuty detector {} in {}", d.id, scope.label()),
                None => format!("GuardDuty in {} (no detector)", scope.label()),
            };
            Ok(vec![Resource {
                id: id(&scope, "guardduty"),
                name,
                attributes: a,
                error: None,
                unknown,
                scope: false,
            }])
        })
        .await
    }
}
