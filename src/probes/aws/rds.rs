//! `aws.rds.*`: RDS, one population per account and region.
//!
//! - `aws.rds.instances` — every DB instance: storage encryption, Multi-AZ, backup retention,
//!   public accessibility, deletion protection, the Aurora cluster it belongs to;
//! - `aws.rds.clusters` — every DB cluster (Aurora, Multi-AZ DB clusters): the same, and the
//!   zones its member instances are in;
//! - `aws.rds.snapshots` — the manual DB and DB cluster snapshots the account owns: public or
//!   shared with accounts outside the configured ones.
//!
//! Each listing is requested once per run per account and region (`DescribeDBInstances`,
//! `DescribeDBClusters`, `DescribeDBSnapshots`, `DescribeDBClusterSnapshots`, 100 records a
//! page), plus one `Describe…SnapshotAttributes` per manual snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::ec2::{base, per_region};
use super::fetch::{self, cached, paginate, tags};
use super::{Op, RegionSelection, Scope, classify, object, time, ts};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The RDS calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[
    DESCRIBE_DB_INSTANCES,
    DESCRIBE_DB_CLUSTERS,
    DESCRIBE_DB_SNAPSHOTS,
    DESCRIBE_DB_CLUSTER_SNAPSHOTS,
    DESCRIBE_DB_SNAPSHOT_ATTRIBUTES,
    DESCRIBE_DB_CLUSTER_SNAPSHOT_ATTRIBUTES,
];

const DESCRIBE_DB_INSTANCES: Op = Op {
    name: "DescribeDBInstances",
    permission: "rds:DescribeDBInstances",
};
const DESCRIBE_DB_CLUSTERS: Op = Op {
    name: "DescribeDBClusters",
    permission: "rds:DescribeDBClusters",
};
const DESCRIBE_DB_SNAPSHOTS: Op = Op {
    name: "DescribeDBSnapshots",
    permission: "rds:DescribeDBSnapshots",
};
const DESCRIBE_DB_CLUSTER_SNAPSHOTS: Op = Op {
    name: "DescribeDBClusterSnapshots",
    permission: "rds:DescribeDBClusterSnapshots",
};
const DESCRIBE_DB_SNAPSHOT_ATTRIBUTES: Op = Op {
    name: "DescribeDBSnapshotAttributes",
    permission: "rds:DescribeDBSnapshotAttributes",
};
const DESCRIBE_DB_CLUSTER_SNAPSHOT_ATTRIBUTES: Op = Op {
    name: "DescribeDBClusterSnapshotAttributes",
    permission: "rds:DescribeDBClusterSnapshotAttributes",
};

/// RDS answers at most 100 records a page.
const PAGE: i32 = 100;

// ----------------------------------------------------------------------------------------
// Listings

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DbInstance {
    pub arn: String,
    pub identifier: String,
    pub engine: Option<String>,
    pub status: Option<String>,
    pub storage_encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub multi_az: Option<bool>,
    pub availability_zone: Option<String>,
    pub secondary_availability_zone: Option<String>,
    pub backup_retention_days: Option<i64>,
    pub publicly_accessible: Option<bool>,
    pub deletion_protection: Option<bool>,
    pub cluster: Option<String>,
    pub tags: super::fetch::Tags,
}

pub(crate) async fn db_instances(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<DbInstance>>, ProbeError> {
    let key = format!("aws:{}:{}:rds:instances", scope.account.name, scope.region);
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.rds(&scope.region);
        paginate!(
            scope,
            DESCRIBE_DB_INSTANCES,
            client
                .describe_db_instances()
                .into_paginator()
                .page_size(PAGE)
                .send(),
            |page| {
                for d in page.db_instances() {
                    out.push(DbInstance {
                        arn: d.db_instance_arn().unwrap_or("").to_string(),
                        identifier: d.db_instance_identifier().unwrap_or("").to_string(),
                        engine: d.engine().map(str::to_string),
                        status: d.db_instance_status().map(str::to_string),
                        storage_encrypted: d.storage_encrypted(),
                        kms_key_id: d.kms_key_id().map(str::to_string),
                        multi_az: d.multi_az(),
                        availability_zone: d.availability_zone().map(str::to_string),
                        secondary_availability_zone: d
                            .secondary_availability_zone()
                            .map(str::to_string),
                        backup_retention_days: d.backup_retention_period().map(i64::from),
                        publicly_accessible: d.publicly_accessible(),
                        deletion_protection: d.deletion_protection(),
                        cluster: d.db_cluster_identifier().map(str::to_string),
                        tags: tags(d.tag_list().iter().map(|t| (t.key(), t.value()))),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DbCluster {
    pub arn: String,
    pub identifier: String,
    pub engine: Option<String>,
    pub status: Option<String>,
    pub storage_encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub multi_az: Option<bool>,
    pub availability_zones: Vec<String>,
    pub backup_retention_days: Option<i64>,
    pub publicly_accessible: Option<bool>,
    pub deletion_protection: Option<bool>,
    pub members: Vec<String>,
    pub tags: super::fetch::Tags,
}

pub(crate) async fn db_clusters(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<DbCluster>>, ProbeError> {
    let key = format!("aws:{}:{}:rds:clusters", scope.account.name, scope.region);
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.rds(&scope.region);
        paginate!(
            scope,
            DESCRIBE_DB_CLUSTERS,
            client
                .describe_db_clusters()
                .into_paginator()
                .page_size(PAGE)
                .send(),
            |page| {
                for c in page.db_clusters() {
                    out.push(DbCluster {
                        arn: c.db_cluster_arn().unwrap_or("").to_string(),
                        identifier: c.db_cluster_identifier().unwrap_or("").to_string(),
                        engine: c.engine().map(str::to_string),
                        status: c.status().map(str::to_string),
                        storage_encrypted: c.storage_encrypted(),
                        kms_key_id: c.kms_key_id().map(str::to_string),
                        multi_az: c.multi_az(),
                        availability_zones: c.availability_zones().to_vec(),
                        backup_retention_days: c.backup_retention_period().map(i64::from),
                        publicly_accessible: c.publicly_accessible(),
                        deletion_protection: c.deletion_protection(),
                        members: c
                            .db_cluster_members()
                            .iter()
                            .filter_map(|m| m.db_instance_identifier().map(str::to_string))
                            .collect(),
                        tags: tags(c.tag_list().iter().map(|t| (t.key(), t.value()))),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

/// A manual snapshot the account owns, of a DB instance or of a DB cluster.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DbSnapshot {
    /// `instance` or `cluster`.
    pub kind: &'static str,
    pub arn: String,
    pub identifier: String,
    /// The DB instance or cluster it was taken of.
    pub source: Option<String>,
    pub status: Option<String>,
    pub encrypted: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    /// The `restore` attribute: account ids allowed to copy or restore it, `all` for anyone.
    pub restore: Vec<String>,
}

/// The `restore` attribute's values (no attribute: shared with nobody).
fn restore_values<'a>(
    attributes: impl IntoIterator<Item = (Option<&'a str>, &'a [String])>,
) -> Vec<String> {
    attributes
        .into_iter()
        .filter(|(name, _)| *name == Some("restore"))
        .flat_map(|(_, values)| values.iter().cloned())
        .collect()
}

pub(crate) async fn db_snapshots(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<DbSnapshot>>, ProbeError> {
    let key = format!("aws:{}:{}:rds:snapshots", scope.account.name, scope.region);
    cached(ctx, key, async {
        let client = scope.account.rds(&scope.region);
        let mut out = Vec::new();
        paginate!(
            scope,
            DESCRIBE_DB_SNAPSHOTS,
            client
                .describe_db_snapshots()
                .snapshot_type("manual")
                .into_paginator()
                .page_size(PAGE)
                .send(),
            |page| {
                for s in page.db_snapshots() {
                    out.push(DbSnapshot {
                        kind: "instance",
                        arn: s.db_snapshot_arn().unwrap_or("").to_string(),
                        identifier: s.db_snapshot_identifier().unwrap_or("").to_string(),
                        source: s.db_instance_identifier().map(str::to_string),
                        status: s.status().map(str::to_string),
                        encrypted: s.encrypted(),
                        created_at: s.snapshot_create_time().and_then(time),
                        restore: Vec::new(),
                    });
                }
            }
        );
        paginate!(
            scope,
            DESCRIBE_DB_CLUSTER_SNAPSHOTS,
            client
                .describe_db_cluster_snapshots()
                .snapshot_type("manual")
                .into_paginator()
                .page_size(PAGE)
                .send(),
            |page| {
                for s in page.db_cluster_snapshots() {
                    out.push(DbSnapshot {
                        kind: "cluster",
                        arn: s.db_cluster_snapshot_arn().unwrap_or("").to_string(),
                        identifier: s.db_cluster_snapshot_identifier().unwrap_or("").to_string(),
                        source: s.db_cluster_identifier().map(str::to_string),
                        status: s.status().map(str::to_string),
                        encrypted: s.storage_encrypted(),
                        created_at: s.snapshot_create_time().and_then(time),
                        restore: Vec::new(),
                    });
                }
            }
        );
        let label = scope.label();
        let permits = scope.account.permits(&scope.region);
        for s in out.iter_mut() {
            let _permit = permits.acquire().await;
            s.restore = if s.kind == "instance" {
                let answer = client
                    .describe_db_snapshot_attributes()
                    .db_snapshot_identifier(&s.identifier)
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE_DB_SNAPSHOT_ATTRIBUTES, &label, e))?;
                let result = answer.db_snapshot_attributes_result().ok_or_else(|| {
                    ProbeError::BadBody(format!(
                        "DescribeDBSnapshotAttributes in {label}: no attributes for {}",
                        s.identifier
                    ))
                })?;
                restore_values(
                    result
                        .db_snapshot_attributes()
                        .iter()
                        .map(|a| (a.attribute_name(), a.attribute_values())),
                )
            } else {
                let answer = client
                    .describe_db_cluster_snapshot_attributes()
                    .db_cluster_snapshot_identifier(&s.identifier)
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE_DB_CLUSTER_SNAPSHOT_ATTRIBUTES, &label, e))?;
                let result = answer
                    .db_cluster_snapshot_attributes_result()
                    .ok_or_else(|| {
                        ProbeError::BadBody(format!(
                            "DescribeDBClusterSnapshotAttributes in {label}: no attributes for {}",
                            s.identifier
                        ))
                    })?;
                restore_values(
                    result
                        .db_cluster_snapshot_attributes()
                        .iter()
                        .map(|a| (a.attribute_name(), a.attribute_values())),
                )
            };
        }
        Ok(out)
    })
    .await
}

/// The ids of every configured account, or why they cannot all be known (an account that
/// could not be set up, or whose id could not be read).
async fn configured_account_ids(ctx: &ProbeContext) -> Result<BTreeSet<String>, String> {
    let accounts = super::accounts(ctx, &[]).await.map_err(|e| e.to_string())?;
    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for account in accounts {
        match account {
            Ok(account) => match fetch::account_id(ctx, &account).await {
                Ok(id) => {
                    ids.insert(id.as_ref().clone());
                }
                Err(e) => problems.push(format!("the id of aws account `{}`: {e}", account.name)),
            },
            Err((name, e)) => problems.push(format!("aws account `{name}`: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(ids)
    } else {
        Err(problems.join("; "))
    }
}

// ----------------------------------------------------------------------------------------
// Probes

/// Attributes that AWS should always report: null means it did not, which is unknown (an
/// `error` for a check reading it), never a value.
fn unknown_when_null(
    attributes: &crate::probes::Attributes,
    names: &[&str],
    operation: &str,
) -> BTreeMap<String, String> {
    names
        .iter()
        .filter(|n| {
            attributes
                .get(n)
                .is_none_or(crate::probes::AttrValue::is_null)
        })
        .map(|n| (n.to_string(), format!("{operation} did not report it")))
        .collect()
}

/// The environment the account declares in `sources.aws.accounts` (null if none).
fn declared_environment(ctx: &ProbeContext, scope: &Scope) -> Value {
    ctx.sources
        .aws
        .as_ref()
        .and_then(|a| a.accounts.iter().find(|a| a.name == scope.account.name))
        .and_then(|a| a.environment)
        .map_or(Value::Null, |e| json!(e.as_str()))
}

fn resource(
    scope: &Scope,
    arn: &str,
    name: String,
    attributes: crate::probes::Attributes,
    unknown: BTreeMap<String, String>,
) -> Resource {
    Resource {
        id: if arn.is_empty() {
            super::ec2::id(scope, &name)
        } else {
            arn.to_string()
        },
        name,
        attributes,
        error: None,
        unknown,
        scope: false,
    }
}

/// `aws.rds.instances`.
pub struct Instances;

impl Probe for Instances {
    const NAME: &'static str = "aws.rds.instances";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "RDS DB instances, one resource per instance, per account and region: storage encryption, Multi-AZ, backup retention, public accessibility, deletion protection, and the Aurora cluster it belongs to.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("arn", String, "the instance's ARN"),
        attr!("identifier", String, "the DB instance identifier"),
        attr!(
            "environment",
            String,
            "the environment its account declares in sources.aws.accounts (`production`, `staging`, `development`, `shared`), null if none"
        ),
        attr!(
            "engine",
            String,
            "`postgres`, `mysql`, `aurora-postgresql`…"
        ),
        attr!("status", String, "`available`, `stopped`, `creating`…"),
        attr!(
            "storage_encrypted",
            Bool,
            "the instance's storage is encrypted"
        ),
        attr!(
            "kms_key_id",
            String,
            "KMS key of encrypted storage, null otherwise"
        ),
        attr!(
            "multi_az",
            Bool,
            "a Multi-AZ deployment (a standby in another zone)"
        ),
        attr!("availability_zone", String, "the zone of the primary"),
        attr!(
            "secondary_availability_zone",
            String,
            "the zone of the Multi-AZ standby, null if none"
        ),
        attr!(
            "backup_retention_days",
            Int,
            "days automated backups are kept (0: automated backups are off)"
        ),
        attr!(
            "publicly_accessible",
            Bool,
            "the instance has a public DNS name that resolves to a public address"
        ),
        attr!(
            "deletion_protection",
            Bool,
            "the instance cannot be deleted until this is turned off"
        ),
        attr!(
            "cluster",
            String,
            "identifier of the Aurora (or Multi-AZ) DB cluster the instance belongs to, null otherwise; encryption, backups and zones of cluster members are the cluster's (aws.rds.clusters)"
        ),
        attr!("tags", Map, "the instance's tags"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.rds.instances
where: cluster == null
assert: storage_encrypted && !publicly_accessible && backup_retention_days >= 7
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let instances = db_instances(ctx, &scope).await?;
            let environment = declared_environment(ctx, &scope);
            Ok(instances
                .iter()
                .map(|d| {
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "arn": d.arn,
                        "identifier": d.identifier,
                        "environment": environment,
                        "engine": d.engine,
                        "status": d.status,
                        "storage_encrypted": d.storage_encrypted,
                        "kms_key_id": d.kms_key_id,
                        "multi_az": d.multi_az,
                        "availability_zone": d.availability_zone,
                        "secondary_availability_zone": d.secondary_availability_zone,
                        "backup_retention_days": d.backup_retention_days,
                        "publicly_accessible": d.publicly_accessible,
                        "deletion_protection": d.deletion_protection,
                        "cluster": d.cluster,
                        "tags": d.tags,
                    })));
                    let unknown = unknown_when_null(
                        &a,
                        &[
                            "storage_encrypted",
                            "multi_az",
                            "backup_retention_days",
                            "publicly_accessible",
                            "deletion_protection",
                        ],
                        "DescribeDBInstances",
                    );
                    let name = format!(
                        "RDS instance {} in {} ({})",
                        d.identifier,
                        scope.label(),
                        d.arn
                    );
                    resource(&scope, &d.arn, name, a, unknown)
                })
                .collect())
        })
        .await
    }
}

/// `aws.rds.clusters`.
pub struct Clusters;

impl Probe for Clusters {
    const NAME: &'static str = "aws.rds.clusters";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "RDS DB clusters (Aurora and Multi-AZ DB clusters), one resource per cluster, per account and region: storage encryption, Multi-AZ, the zones its instances are in, backup retention, deletion protection.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("arn", String, "the cluster's ARN"),
        attr!("identifier", String, "the DB cluster identifier"),
        attr!(
            "environment",
            String,
            "the environment its account declares in sources.aws.accounts (`production`, `staging`, `development`, `shared`), null if none"
        ),
        attr!(
            "engine",
            String,
            "`aurora-postgresql`, `aurora-mysql`, `postgres`…"
        ),
        attr!("status", String, "`available`, `stopped`…"),
        attr!(
            "storage_encrypted",
            Bool,
            "the cluster's storage is encrypted"
        ),
        attr!(
            "kms_key_id",
            String,
            "KMS key of encrypted storage, null otherwise"
        ),
        attr!(
            "multi_az",
            Bool,
            "AWS reports the cluster as Multi-AZ (instances in several zones); some emulators always report false for Aurora, see instance_zones"
        ),
        attr!(
            "availability_zones",
            List,
            "the zones AWS lists for the cluster (where its instances can be placed)"
        ),
        attr!("members", List, "identifiers of the cluster's DB instances"),
        attr!(
            "instance_zones",
            List,
            "the distinct zones its member instances are in (from DescribeDBInstances)"
        ),
        attr!(
            "backup_retention_days",
            Int,
            "days automated backups are kept"
        ),
        attr!(
            "publicly_accessible",
            Bool,
            "a Multi-AZ DB cluster reachable from the internet (null for Aurora, whose instances say)"
        ),
        attr!(
            "deletion_protection",
            Bool,
            "the cluster cannot be deleted until this is turned off"
        ),
        attr!("tags", Map, "the cluster's tags"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.rds.clusters
assert: storage_encrypted && backup_retention_days >= 7 && (multi_az || size(instance_zones) >= 2)
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let clusters = db_clusters(ctx, &scope).await?;
            let instances = if clusters.is_empty() {
                Arc::new(Vec::new())
            } else {
                db_instances(ctx, &scope).await?
            };
            let environment = declared_environment(ctx, &scope);
            Ok(clusters
                .iter()
                .map(|c| {
                    let zones: BTreeSet<&str> = instances
                        .iter()
                        .filter(|i| {
                            i.cluster.as_deref() == Some(c.identifier.as_str())
                                || c.members.contains(&i.identifier)
                        })
                        .filter_map(|i| i.availability_zone.as_deref())
                        .collect();
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "arn": c.arn,
                        "identifier": c.identifier,
                        "environment": environment,
                        "engine": c.engine,
                        "status": c.status,
                        "storage_encrypted": c.storage_encrypted,
                        "kms_key_id": c.kms_key_id,
                        "multi_az": c.multi_az,
                        "availability_zones": c.availability_zones,
                        "members": c.members,
                        "instance_zones": zones,
                        "backup_retention_days": c.backup_retention_days,
                        "publicly_accessible": c.publicly_accessible,
                        "deletion_protection": c.deletion_protection,
                        "tags": c.tags,
                    })));
                    let unknown = unknown_when_null(
                        &a,
                        &[
                            "storage_encrypted",
                            "multi_az",
                            "backup_retention_days",
                            "deletion_protection",
                        ],
                        "DescribeDBClusters",
                    );
                    let name = format!(
                        "RDS cluster {} in {} ({})",
                        c.identifier,
                        scope.label(),
                        c.arn
                    );
                    resource(&scope, &c.arn, name, a, unknown)
                })
                .collect())
        })
        .await
    }
}

/// `aws.rds.snapshots`.
pub struct Snapshots;

impl Probe for Snapshots {
    const NAME: &'static str = "aws.rds.snapshots";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "Manual RDS DB and DB cluster snapshots the account owns, one resource per snapshot, per account and region: public, or shared with accounts outside the configured ones.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("arn", String, "the snapshot's ARN"),
        attr!("identifier", String, "the snapshot identifier"),
        attr!(
            "kind",
            String,
            "`instance` (DB snapshot) or `cluster` (DB cluster snapshot)"
        ),
        attr!(
            "source",
            String,
            "the DB instance or cluster it was taken of"
        ),
        attr!("status", String, "`available`, `creating`…"),
        attr!("encrypted", Bool, "the snapshot is encrypted"),
        attr!("created_at", Timestamp, "when the snapshot was taken"),
        attr!(
            "public",
            Bool,
            "anyone may copy or restore it (its `restore` attribute holds `all`)"
        ),
        attr!(
            "shared_with",
            List,
            "account ids its `restore` attribute names (besides `all`)"
        ),
        attr!(
            "shared_outside",
            List,
            "of those, the ids that are none of the configured accounts' (unknown when a configured account's id cannot be read)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.rds.snapshots
assert: "!public && size(shared_outside) == 0"
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let snapshots = db_snapshots(ctx, &scope).await?;
            let any_shared = snapshots
                .iter()
                .any(|s| s.restore.iter().any(|v| v != "all"));
            // Only needed (and only read) when some snapshot is shared with an account.
            let known = if any_shared {
                Some(configured_account_ids(ctx).await)
            } else {
                None
            };
            Ok(snapshots
                .iter()
                .map(|s| {
                    let shared_with: Vec<&String> =
                        s.restore.iter().filter(|v| *v != "all").collect();
                    let mut unknown = BTreeMap::new();
                    let shared_outside: Value = match &known {
                        _ if shared_with.is_empty() => json!([]),
                        Some(Ok(ids)) => json!(
                            shared_with
                                .iter()
                                .filter(|id| !ids.contains(id.as_str()))
                                .collect::<Vec<_>>()
                        ),
                        Some(Err(why)) => {
                            unknown.insert(
                                "shared_outside".to_string(),
                                format!(
                                    "the configured accounts' ids cannot all be read, so whether {} are among them is unknown: {why}",
                                    shared_with
                                        .iter()
                                        .map(|s| s.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                            Value::Null
                        }
                        None => Value::Null,
                    };
                    let mut a = base(&scope);
                    a.extend(object(json!({
                        "arn": s.arn,
                        "identifier": s.identifier,
                        "kind": s.kind,
                        "source": s.source,
                        "status": s.status,
                        "encrypted": s.encrypted,
                        "created_at": ts(s.created_at),
                        "public": s.restore.iter().any(|v| v == "all"),
                        "shared_with": shared_with,
                        "shared_outside": shared_outside,
                    })));
                    let what = if s.kind == "cluster" {
                        "RDS cluster snapshot"
                    } else {
                        "RDS snapshot"
                    };
                    let name = format!("{what} {} in {} ({})", s.identifier, scope.label(), s.arn);
                    resource(&scope, &s.arn, name, a, unknown)
                })
                .collect())
        })
        .await
    }
}
