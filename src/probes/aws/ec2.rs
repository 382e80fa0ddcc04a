//! EC2 probes, one population per account and region:
//!
//! - `aws.ec2.security_group_rules` — every ingress rule source (IPv4 and IPv6 ranges, other
//!   groups, prefix lists), with its ports and whether it is open to the whole internet;
//! - `aws.ec2.security_groups` — every group, with whether it is in use and its rule counts;
//! - `aws.ec2.ebs_encryption` — EBS encryption by default, and whether the region is in use;
//! - `aws.ec2.volumes` — every EBS volume: encryption, attachment, newest snapshot;
//! - `aws.ec2.snapshots` — the account's own snapshots: age, encryption, public or not;
//! - `aws.ec2.vpcs` — every VPC with its active flow logs;
//! - `aws.ec2.instances` — every instance that is not terminated: IMDSv2, tags.

use serde_json::json;

use super::fetch;
use super::{RegionSelection, Scope, object, scope_error, ts};
use crate::probes::{
    Attribute, Collected, IdAndAttributes, Probe, ProbeContext, ProbeError, Resource,
    scope_error_raw, scoped_raw,
};

/// Collects one population per selected account and region with `per_region`; a scope that
/// fails is one `error` resource naming it, the others are still evaluated.
pub(crate) async fn per_region<F, Fut>(
    ctx: &ProbeContext,
    probe: &str,
    selection: &RegionSelection,
    per_region: F,
) -> Result<Collected, ProbeError>
where
    F: Fn(Scope) -> Fut,
    Fut: Future<Output = Result<Vec<Resource>, ProbeError>>,
{
    let scopes = super::scopes(ctx, selection).await?;
    let results = futures::future::join_all(scopes.iter().map(|s| {
        let s = s.clone();
        let f = &per_region;
        async move {
            match s {
                Ok(scope) => {
                    let label = scope.label();
                    (label, f(scope).await)
                }
                Err((account, e)) => (account, Err(e)),
            }
        }
    }))
    .await;
    let mut resources = Vec::new();
    let mut raw = std::collections::BTreeMap::new();
    for (label, result) in results {
        match result {
            Ok(rs) => {
                raw.insert(
                    label,
                    crate::probes::raw(&rs.iter().map(IdAndAttributes::of).collect::<Vec<_>>())?,
                );
                resources.extend(rs);
            }
            Err(e) => {
                raw.insert(label.clone(), scope_error_raw(&e));
                resources.push(scope_error(probe, &label, &e));
            }
        }
    }
    Ok(Collected {
        resources,
        raw: scoped_raw("aws", probe, "scopes", &raw)?,
    })
}

/// The common attributes of every EC2 resource.
pub(crate) fn base(scope: &Scope) -> crate::probes::Attributes {
    object(json!({"account": scope.account.name, "region": scope.region}))
}

pub(crate) fn id(scope: &Scope, resource: &str) -> String {
    format!("aws:{}/{}/{resource}", scope.account.name, scope.region)
}

/// What a region holds, to tell a region in use from an empty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionUsage {
    /// EBS volumes.
    pub volumes: usize,
    /// EC2 instances that are not terminated.
    pub instances: usize,
    /// RDS DB instances (when asked for).
    pub db_instances: usize,
}

impl RegionUsage {
    /// The region holds volumes, instances or (when counted) RDS instances.
    pub fn in_use(&self) -> bool {
        self.volumes > 0 || self.instances > 0 || self.db_instances > 0
    }
}

/// Whether the region is in use: its EBS volumes and EC2 instances, and with `rds` its RDS DB
/// instances, each from the run's cached listing. A listing that fails is the region's error:
/// a region is never taken for unused because it could not be read.
pub(crate) async fn region_usage(
    ctx: &ProbeContext,
    scope: &Scope,
    rds: bool,
) -> Result<RegionUsage, ProbeError> {
    let volumes = fetch::volumes(ctx, scope).await?;
    let instances = fetch::instances(ctx, scope).await?;
    let db_instances = if rds {
        super::rds::db_instances(ctx, scope).await?.len()
    } else {
        0
    };
    Ok(RegionUsage {
        volumes: volumes.len(),
        instances: instances.len(),
        db_instances,
    })
}

/// Whole hours, rounded up: a window of "48 hours" is not stretched by 59 minutes.
fn hours_rounded_up(d: chrono::Duration) -> i64 {
    let secs = d.num_seconds();
    secs.div_euclid(3600) + i64::from(secs.rem_euclid(3600) > 0)
}

fn is_world(source: &str) -> bool {
    source == "0.0.0.0/0" || source == "::/0"
}

// ----------------------------------------------------------------------------------------

/// `aws.ec2.security_group_rules`.
pub struct SecurityGroupRules;

impl Probe for SecurityGroupRules {
    const NAME: &'static str = "aws.ec2.security_group_rules";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "Security group ingress rules, one resource per rule and source (IPv4 or IPv6 range, group, prefix list), per account and region.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("group_id", String, "security group id"),
        attr!("group_name", String, "security group name"),
        attr!("vpc_id", String, "the group's VPC, null for EC2-Classic"),
        attr!("is_default_group", Bool, "the VPC's default security group"),
        attr!(
            "attached",
            Bool,
            "the group is used by at least one network interface"
        ),
        attr!(
            "protocol",
            String,
            "`tcp`, `udp`, `icmp`, `icmpv6`, `all` (protocol -1) or a protocol number"
        ),
        attr!(
            "from_port",
            Int,
            "first port (0 when the rule covers every port; ICMP type, -1 for any)"
        ),
        attr!(
            "to_port",
            Int,
            "last port (65535 when the rule covers every port; ICMP code, -1 for any)"
        ),
        attr!(
            "all_ports",
            Bool,
            "the rule covers every tcp/udp port, or every protocol"
        ),
        attr!(
            "source",
            String,
            "CIDR, security group id or prefix list id"
        ),
        attr!(
            "source_kind",
            String,
            "`ipv4`, `ipv6`, `security_group` or `prefix_list`"
        ),
        attr!("open_to_world", Bool, "the source is 0.0.0.0/0 or ::/0"),
        attr!(
            "description",
            String,
            "the rule's description, null if none"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.security_group_rules
with: {regions: [eu-west-1]}
where: open_to_world && protocol in ["tcp", "udp", "all"]
assert: "!all_ports && !([22, 3389].exists(p, from_port <= p && p <= to_port))"
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let groups = fetch::security_groups(ctx, &scope).await?;
            let usage = fetch::security_group_usage(ctx, &scope).await?;
            let mut out = Vec::new();
            for g in groups.iter() {
                for (n, r) in g.ingress.iter().enumerate() {
                    let all_ports = r.protocol == "all"
                        || (matches!(r.protocol.as_str(), "tcp" | "udp")
                            && r.from_port == 0
                            && r.to_port == 65535);
                    let ports = if all_ports {
                        "all ports".to_string()
                    } else if r.from_port == r.to_port {
                        format!("port {}", r.from_port)
                    } else {
                        format!("ports {}-{}", r.from_port, r.to_port)
                    };
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "group_id": g.id,
                        "group_name": g.name,
                        "vpc_id": g.vpc_id,
                        "is_default_group": g.name == "default",
                        "attached": usage.get(&g.id).copied().unwrap_or(0) > 0,
                        "protocol": r.protocol,
                        "from_port": r.from_port,
                        "to_port": r.to_port,
                        "all_ports": all_ports,
                        "source": r.source,
                        "source_kind": r.source_kind,
                        "open_to_world": is_world(&r.source),
                        "description": r.description,
                    })));
                    out.push(Resource {
                        id: id(&scope, &format!("{}/ingress/{n}/{}", g.id, r.source)),
                        name: format!(
                            "security group {} ({}) in {}: {} {ports} from {}",
                            g.id,
                            g.name,
                            scope.label(),
                            r.protocol,
                            r.source
                        ),
                        attributes: a,
                        error: None,
                        unknown: Default::default(),
                        scope: false,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

/// `aws.ec2.security_groups`.
pub struct SecurityGroups;

impl Probe for SecurityGroups {
    const NAME: &'static str = "aws.ec2.security_groups";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "Security groups, one resource per group, per account and region: in use or not, rule counts, world-open ingress.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("group_id", String, "security group id"),
        attr!("group_name", String, "security group name"),
        attr!("vpc_id", String, "the group's VPC"),
        attr!("is_default", Bool, "the VPC's default security group"),
        attr!("attached", Bool, "used by at least one network interface"),
        attr!("attachments", Int, "network interfaces using the group"),
        attr!("ingress_rules", Int, "ingress rule sources"),
        attr!("egress_rules", Int, "egress rule destinations"),
        attr!(
            "world_open_ingress",
            Bool,
            "some ingress rule is open to 0.0.0.0/0 or ::/0"
        ),
        attr!("tags", Map, "the group's tags"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.security_groups
where: is_default
assert: ingress_rules == 0 && egress_rules == 0
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let groups = fetch::security_groups(ctx, &scope).await?;
            let usage = fetch::security_group_usage(ctx, &scope).await?;
            Ok(groups
                .iter()
                .map(|g| {
                    let attachments = usage.get(&g.id).copied().unwrap_or(0);
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "group_id": g.id,
                        "group_name": g.name,
                        "vpc_id": g.vpc_id,
                        "is_default": g.name == "default",
                        "attached": attachments > 0,
                        "attachments": attachments,
                        "ingress_rules": g.ingress.len(),
                        "egress_rules": g.egress_rules,
                        "world_open_ingress": g.ingress.iter().any(|r| is_world(&r.source)),
                        "tags": g.tags,
                    })));
                    Resource {
                        id: id(&scope, &g.id),
                        name: format!("security group {} ({}) in {}", g.id, g.name, scope.label()),
                        attributes: a,
                        error: None,
                        unknown: Default::default(),
                        scope: false,
                    }
                })
                .collect())
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// `aws.ec2.ebs_encryption`.
pub struct EbsEncryption;

impl Probe for EbsEncryption {
    const NAME: &'static str = "aws.ec2.ebs_encryption";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "EBS encryption by default, one resource per account and region, with whether the region is in use (has volumes or instances).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("enabled", Bool, "new EBS volumes are encrypted by default"),
        attr!("volumes", Int, "EBS volumes in the region"),
        attr!("instances", Int, "instances (not terminated) in the region"),
        attr!("in_use", Bool, "the region has volumes or instances"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.ebs_encryption
where: in_use
assert: enabled
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let enabled = fetch::ebs_encryption_by_default(ctx, &scope).await?;
            let usage = region_usage(ctx, &scope, false).await?;
            let mut a = base(&scope);
            a.extend(object(json!({
                "enabled": *enabled,
                "volumes": usage.volumes,
                "instances": usage.instances,
                "in_use": usage.in_use(),
            })));
            Ok(vec![Resource {
                id: id(&scope, "ebs-encryption-by-default"),
                name: format!("EBS encryption by default in {}", scope.label()),
                attributes: a,
                error: None,
                unknown: Default::default(),
                scope: false,
            }])
        })
        .await
    }
}

/// `aws.ec2.volumes`.
pub struct Volumes;

/// Parameters of `aws.ec2.volumes`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeParams {
    /// Names of `sources.aws.accounts` to read; all when empty.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Regions to read, among each account's regions; all of them when empty.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Also list snapshots (`DescribeSnapshots`) for `latest_snapshot_at` and
    /// `hours_since_snapshot` (default true). Checks that only need volumes set it to false, so
    /// that they do not depend on another permission.
    #[serde(default = "yes")]
    pub include_snapshots: bool,
}

fn yes() -> bool {
    true
}

impl Probe for Volumes {
    const NAME: &'static str = "aws.ec2.volumes";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "EBS volumes, one resource per volume, per account and region: encryption, attachment, newest completed snapshot.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("volume_id", String, "volume id"),
        attr!(
            "encrypted",
            Bool,
            "the volume is encrypted (null if AWS did not say)"
        ),
        attr!(
            "kms_key_id",
            String,
            "KMS key of an encrypted volume, null otherwise"
        ),
        attr!("state", String, "`in-use`, `available`, `creating`…"),
        attr!("attached", Bool, "attached to at least one instance"),
        attr!("instance_ids", List, "instances the volume is attached to"),
        attr!("size_gib", Int, "size in GiB"),
        attr!("volume_type", String, "gp3, io2…"),
        attr!("created_at", Timestamp, "when the volume was created"),
        attr!(
            "latest_snapshot_at",
            Timestamp,
            "start time of the newest completed snapshot of the volume, null if none (or include_snapshots: false)"
        ),
        attr!(
            "hours_since_snapshot",
            Int,
            "hours since latest_snapshot_at, rounded up (48h01m is 49); null without a snapshot"
        ),
        attr!("tags", Map, "the volume's tags"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.volumes
where: attached
assert: hours_since_snapshot != null && hours_since_snapshot <= 48
"#;

    type Params = VolumeParams;

    async fn collect(ctx: &ProbeContext, params: &VolumeParams) -> Result<Collected, ProbeError> {
        let now = ctx.now;
        let selection = RegionSelection {
            accounts: params.accounts.clone(),
            regions: params.regions.clone(),
        };
        let with_snapshots = params.include_snapshots;
        per_region(ctx, Self::NAME, &selection, |scope| async move {
            let volumes = fetch::volumes(ctx, &scope).await?;
            let snapshots = if with_snapshots {
                fetch::snapshots(ctx, &scope).await?
            } else {
                std::sync::Arc::new(Vec::new())
            };
            Ok(volumes
                .iter()
                .map(|v| {
                    let latest = snapshots
                        .iter()
                        .filter(|s| s.volume_id.as_deref() == Some(v.id.as_str()))
                        .filter(|s| s.state == "completed")
                        .filter_map(|s| s.started_at)
                        .max();
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "volume_id": v.id,
                        "encrypted": v.encrypted,
                        "kms_key_id": v.kms_key_id,
                        "state": v.state,
                        "attached": !v.instance_ids.is_empty(),
                        "instance_ids": v.instance_ids,
                        "size_gib": v.size_gib,
                        "volume_type": v.volume_type,
                        "created_at": ts(v.created_at),
                        "latest_snapshot_at": ts(latest),
                        "hours_since_snapshot": latest.map(|t| hours_rounded_up(now - t)),
                        "tags": v.tags,
                    })));
                    let name = v
                        .tags
                        .get("Name")
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    let mut unknown = std::collections::BTreeMap::new();
                    if v.encrypted.is_none() {
                        unknown.insert(
                            "encrypted".to_string(),
                            "DescribeVolumes did not say whether it is encrypted".to_string(),
                        );
                    }
                    Resource {
                        id: id(&scope, &v.id),
                        name: format!("EBS volume {}{name} in {}", v.id, scope.label()),
                        attributes: a,
                        error: None,
                        unknown,
                        scope: false,
                    }
                })
                .collect())
        })
        .await
    }
}

/// `aws.ec2.snapshots`.
pub struct Snapshots;

impl Probe for Snapshots {
    const NAME: &'static str = "aws.ec2.snapshots";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "EBS snapshots the account owns, one resource per snapshot, per account and region: age, encryption, public or not.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("snapshot_id", String, "snapshot id"),
        attr!("volume_id", String, "the volume it was taken of"),
        attr!("state", String, "`completed`, `pending` or `error`"),
        attr!("started_at", Timestamp, "when the snapshot was started"),
        attr!("age_days", Int, "whole days since started_at"),
        attr!("encrypted", Bool, "the snapshot is encrypted"),
        attr!("public", Bool, "anyone may create volumes from it"),
        attr!("size_gib", Int, "size of the source volume in GiB"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.snapshots
assert: "!public && encrypted"
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        let now = ctx.now;
        per_region(ctx, Self::NAME, params, |scope| async move {
            let snapshots = fetch::snapshots(ctx, &scope).await?;
            Ok(snapshots
                .iter()
                .map(|s| {
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "snapshot_id": s.id,
                        "volume_id": s.volume_id,
                        "state": s.state,
                        "started_at": ts(s.started_at),
                        "age_days": s.started_at.map(|t| (now - t).num_days()),
                        "encrypted": s.encrypted,
                        "public": s.public,
                        "size_gib": s.size_gib,
                    })));
                    Resource {
                        id: id(&scope, &s.id),
                        name: format!("EBS snapshot {} in {}", s.id, scope.label()),
                        attributes: a,
                        error: None,
                        unknown: Default::default(),
                        scope: false,
                    }
                })
                .collect())
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// `aws.ec2.vpcs`.
pub struct Vpcs;

impl Probe for Vpcs {
    const NAME: &'static str = "aws.ec2.vpcs";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str =
        "VPCs, one resource per VPC, per account and region, with their active flow logs.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("vpc_id", String, "VPC id"),
        attr!("is_default", Bool, "the region's default VPC"),
        attr!("cidr", String, "primary IPv4 CIDR block"),
        attr!(
            "active_flow_logs",
            Int,
            "flow logs on the VPC that are ACTIVE and not failing to deliver"
        ),
        attr!(
            "failing_flow_logs",
            Int,
            "ACTIVE flow logs whose delivery status is FAILED"
        ),
        attr!("flow_log_ids", List, "ids of the active flow logs"),
        attr!(
            "flow_log_traffic",
            List,
            "traffic types the active flow logs capture (ALL, ACCEPT, REJECT)"
        ),
        attr!("tags", Map, "the VPC's tags"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.vpcs
assert: active_flow_logs > 0
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let vpcs = fetch::vpcs(ctx, &scope).await?;
            let logs = fetch::flow_logs(ctx, &scope).await?;
            Ok(vpcs
                .iter()
                .map(|v| {
                    let (active, failing): (Vec<&fetch::FlowLog>, Vec<&fetch::FlowLog>) = logs
                        .iter()
                        .filter(|f| f.resource_id == v.id && f.status.eq_ignore_ascii_case("ACTIVE"))
                        .partition(|f| {
                            !f.delivery_status
                                .as_deref()
                                .is_some_and(|d| d.eq_ignore_ascii_case("FAILED"))
                        });
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "vpc_id": v.id,
                        "is_default": v.is_default,
                        "cidr": v.cidr,
                        "active_flow_logs": active.len(),
                        "failing_flow_logs": failing.len(),
                        "flow_log_ids": active.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
                        "flow_log_traffic": active.iter().filter_map(|f| f.traffic_type.clone()).collect::<Vec<_>>(),
                        "tags": v.tags,
                    })));
                    let name = v.tags.get("Name").map(|n| format!(" ({n})")).unwrap_or_default();
                    Resource {
                        id: id(&scope, &v.id),
                        name: format!("VPC {}{name} in {}", v.id, scope.label()),
                        attributes: a,
                        error: None,
                        unknown: Default::default(),
                        scope: false,
                    }
                })
                .collect())
        })
        .await
    }
}

/// `aws.ec2.instances`.
pub struct Instances;

impl Probe for Instances {
    const NAME: &'static str = "aws.ec2.instances";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "EC2 instances that are not terminated, one resource per instance, per account and region: metadata service settings, tags, network.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("instance_id", String, "instance id"),
        attr!("state", String, "`running`, `stopped`, `pending`…"),
        attr!("instance_type", String, "t3.micro, m7g.large…"),
        attr!(
            "launch_time",
            Timestamp,
            "when the instance was last launched"
        ),
        attr!(
            "imds_http_tokens",
            String,
            "`required` (IMDSv2 only) or `optional` (IMDSv1 allowed)"
        ),
        attr!(
            "imdsv2_required",
            Bool,
            "the metadata service is off, or only answers IMDSv2 (token) requests; null if AWS did not report it"
        ),
        attr!(
            "imds_enabled",
            Bool,
            "the instance metadata service endpoint is enabled"
        ),
        attr!("vpc_id", String, "the instance's VPC"),
        attr!("security_groups", List, "security group ids"),
        attr!("public_ip", String, "public IPv4 address, null if none"),
        attr!(
            "tags",
            Map,
            "the instance's tags (`tags.Owner`, `\"Owner\" in tags`)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.ec2.instances
where: state == "running"
assert: imdsv2_required && "Owner" in tags
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let instances = fetch::instances(ctx, &scope).await?;
            Ok(instances
                .iter()
                .map(|i| {
                    let enabled = i.http_endpoint.as_deref() != Some("disabled");
                    // Unknown (null) when AWS did not report the metadata options: evaluated
                    // as an error, never as compliant or not.
                    let imdsv2_required = if enabled {
                        i.http_tokens.as_deref().map(|t| t == "required")
                    } else {
                        Some(true)
                    };
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "instance_id": i.id,
                        "state": i.state,
                        "instance_type": i.instance_type,
                        "launch_time": ts(i.launch_time),
                        "imds_http_tokens": i.http_tokens,
                        "imdsv2_required": imdsv2_required,
                        "imds_enabled": enabled,
                        "vpc_id": i.vpc_id,
                        "security_groups": i.security_groups,
                        "public_ip": i.public_ip,
                        "tags": i.tags,
                    })));
                    let name = i
                        .tags
                        .get("Name")
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    let mut unknown = std::collections::BTreeMap::new();
                    if imdsv2_required.is_none() {
                        unknown.insert(
                            "imdsv2_required".to_string(),
                            "DescribeInstances reported no metadata options for it".to_string(),
                        );
                    }
                    Resource {
                        id: id(&scope, &i.id),
                        name: format!("EC2 instance {}{name} in {}", i.id, scope.label()),
                        attributes: a,
                        error: None,
                        unknown,
                        scope: false,
                    }
                })
                .collect())
        })
        .await
    }
}
