//! RDS, S3, CloudTrail and GuardDuty probes and the controls re-evidenced with them, against
//! moto server: planted violators fail, clean resources pass, each through the runner.
//!
//! moto quirks these tests live with: its account id is always 123456789012; it reports
//! Aurora clusters as not Multi-AZ (the check reads the zones of the member instances too).

use crate::common::aws as common;
use crate::common::moto::Moto;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use chrono::Utc;
use common::{loaded, outcome, run};
use trellis::model::Status;
use trellis::runner::RunReport;

/// The controls these probes re-evidence.
const CONTROLS: &[&str] = &[
    "encryption-at-rest",
    "automated-backup-process",
    "high-availability-configuration",
    "encryption-in-transit",
    "logging-and-monitoring-for-threats",
    "automated-alerting-for-security-events",
    "access-to-customer-data-is-restricted",
];

const ACCOUNT_ID: &str = "123456789012";

/// The findings of control `id`'s check reading `probe` (its only one) with `status`.
fn resources<'a>(report: &'a RunReport, id: &str, probe: &str, status: Status) -> Vec<&'a str> {
    let o = outcome(report, id);
    let check = o
        .checks
        .iter()
        .position(|c| c.probe == probe)
        .unwrap_or_else(|| panic!("{id} has no {probe} check"));
    o.findings
        .iter()
        .filter(|f| f.check == check && f.status == status)
        .map(|f| f.resource.as_str())
        .collect()
}

/// The status of control `id`'s check reading `probe`.
fn check_status(report: &RunReport, id: &str, probe: &str) -> Status {
    let o = outcome(report, id);
    o.checks
        .iter()
        .find(|c| c.probe == probe)
        .unwrap_or_else(|| panic!("{id} has no {probe} check"))
        .status
}

/// Asserts the `status` findings of `id`'s `probe` check are exactly those whose resource ends
/// with one of `expected`.
#[track_caller]
fn assert_exactly(report: &RunReport, id: &str, probe: &str, status: Status, expected: &[&str]) {
    let got = resources(report, id, probe, status);
    let mut got_sorted: Vec<&str> = got.clone();
    got_sorted.sort();
    assert_eq!(
        got.len(),
        expected.len(),
        "{id} / {probe}: {status} {got_sorted:#?}, expected {expected:?}"
    );
    for want in expected {
        assert!(
            got.iter().any(|g| g.ends_with(want)),
            "{id} / {probe}: no {status} finding for {want} in {got_sorted:#?}"
        );
    }
}

fn db_arn(kind: &str, name: &str) -> String {
    format!("arn:aws:rds:us-east-1:{ACCOUNT_ID}:{kind}:{name}")
}

// ----------------------------------------------------------------------------------------
// Planting

struct Db<'a> {
    id: &'a str,
    encrypted: bool,
    multi_az: bool,
    backup_days: i32,
    public: bool,
}

async fn db_instance(moto: &Moto, db: Db<'_>) {
    moto.rds("us-east-1")
        .create_db_instance()
        .db_instance_identifier(db.id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("correct-horse-battery")
        .allocated_storage(20)
        .storage_encrypted(db.encrypted)
        .multi_az(db.multi_az)
        .backup_retention_period(db.backup_days)
        .publicly_accessible(db.public)
        .send()
        .await
        .unwrap();
}

/// An Aurora cluster with one member instance in each of `zones`.
async fn aurora(moto: &Moto, id: &str, encrypted: bool, backup_days: i32, zones: &[&str]) {
    let rds = moto.rds("us-east-1");
    rds.create_db_cluster()
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .master_username("admin")
        .master_user_password("correct-horse-battery")
        .storage_encrypted(encrypted)
        .backup_retention_period(backup_days)
        .send()
        .await
        .unwrap();
    for (n, zone) in zones.iter().enumerate() {
        rds.create_db_instance()
            .db_instance_identifier(format!("{id}-{n}"))
            .db_cluster_identifier(id)
            .db_instance_class("db.r6g.large")
            .engine("aurora-postgresql")
            .availability_zone(*zone)
            .publicly_accessible(false)
            .send()
            .await
            .unwrap();
    }
}

async fn db_snapshot(moto: &Moto, instance: &str, id: &str, share: &[&str]) {
    let rds = moto.rds("us-east-1");
    rds.create_db_snapshot()
        .db_instance_identifier(instance)
        .db_snapshot_identifier(id)
        .send()
        .await
        .unwrap();
    if !share.is_empty() {
        rds.modify_db_snapshot_attribute()
            .db_snapshot_identifier(id)
            .attribute_name("restore")
            .set_values_to_add(Some(share.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .unwrap();
    }
}

async fn cluster_snapshot(moto: &Moto, cluster: &str, id: &str, share: &[&str]) {
    let rds = moto.rds("us-east-1");
    rds.create_db_cluster_snapshot()
        .db_cluster_identifier(cluster)
        .db_cluster_snapshot_identifier(id)
        .send()
        .await
        .unwrap();
    if !share.is_empty() {
        rds.modify_db_cluster_snapshot_attribute()
            .db_cluster_snapshot_identifier(id)
            .attribute_name("restore")
            .set_values_to_add(Some(share.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .unwrap();
    }
}

fn tls_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"DenyHttp","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"],"Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}]}}"#
    )
}

/// A policy that looks like TLS enforcement but only covers the objects.
fn objects_only_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::{bucket}/*","Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}]}}"#
    )
}

struct BucketSpec<'a> {
    name: &'a str,
    region: &'a str,
    block: bool,
    encrypted: bool,
    policy: Option<String>,
    expire_days: Option<i32>,
}

async fn bucket(moto: &Moto, b: BucketSpec<'_>) {
    let s3 = moto.s3(b.region);
    let mut create = s3.create_bucket().bucket(b.name);
    if b.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(b.region))
                .build(),
        );
    }
    create.send().await.unwrap();
    if b.block {
        s3.put_public_access_block()
            .bucket(b.name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    if b.encrypted {
        s3.put_bucket_encryption()
            .bucket(b.name)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(ServerSideEncryption::Aes256)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    if let Some(policy) = b.policy {
        s3.put_bucket_policy()
            .bucket(b.name)
            .policy(policy)
            .send()
            .await
            .unwrap();
    }
    if let Some(days) = b.expire_days {
        s3.put_bucket_lifecycle_configuration()
            .bucket(b.name)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(
                        LifecycleRule::builder()
                            .id("expire")
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix("").build())
                            .expiration(LifecycleExpiration::builder().days(days).build())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// A trail homed in `region`, logging, delivering to `bucket` (created here).
async fn trail(moto: &Moto, region: &str, name: &str, multi_region: bool, validation: bool) {
    let bucket_name = format!("{name}-logs");
    bucket(
        moto,
        BucketSpec {
            name: &bucket_name,
            region,
            block: true,
            encrypted: true,
            policy: Some(tls_policy(&bucket_name)),
            expire_days: Some(400),
        },
    )
    .await;
    let ct = moto.cloudtrail(region);
    ct.create_trail()
        .name(name)
        .s3_bucket_name(&bucket_name)
        .is_multi_region_trail(multi_region)
        .enable_log_file_validation(validation)
        .send()
        .await
        .unwrap();
    ct.start_logging().name(name).send().await.unwrap();
}

async fn detector(moto: &Moto, region: &str, enabled: bool) {
    moto.guardduty(region)
        .create_detector()
        .enable(enabled)
        .send()
        .await
        .unwrap();
}

/// An EBS volume, so that a region is in use.
async fn volume(moto: &Moto, region: &str) {
    moto.ec2(region)
        .create_volume()
        .availability_zone(format!("{region}a"))
        .size(8)
        .encrypted(true)
        .send()
        .await
        .unwrap();
}

// ----------------------------------------------------------------------------------------

/// One moto server, reset between scenarios.
#[tokio::test]
async fn data_services_on_moto() {
    let moto = Moto::start().await;
    planted_violations_are_found(&moto).await;
    moto.reset().await;
    clean_resources_pass(&moto).await;
}

async fn planted_violations_are_found(moto: &Moto) {
    use Status::{Fail, NotApplicable, Pass};
    db_instance(
        moto,
        Db {
            id: "orders",
            encrypted: true,
            multi_az: true,
            backup_days: 7,
            public: false,
        },
    )
    .await;
    db_instance(
        moto,
        Db {
            id: "legacy",
            encrypted: false,
            multi_az: false,
            backup_days: 1,
            public: true,
        },
    )
    .await;
    aurora(moto, "ledger", true, 14, &["us-east-1a", "us-east-1b"]).await;
    aurora(moto, "reports", false, 1, &["us-east-1a"]).await;
    db_snapshot(moto, "orders", "orders-private", &[]).await;
    db_snapshot(moto, "orders", "orders-public", &["all"]).await;
    db_snapshot(moto, "orders", "orders-partner", &["999988887777"]).await;
    db_snapshot(moto, "orders", "orders-ours", &[ACCOUNT_ID]).await;
    cluster_snapshot(moto, "ledger", "ledger-public", &["all"]).await;
    cluster_snapshot(moto, "ledger", "ledger-private", &[]).await;

    bucket(
        moto,
        BucketSpec {
            name: "acme-clean",
            region: "us-east-1",
            block: true,
            encrypted: true,
            policy: Some(tls_policy("acme-clean")),
            expire_days: Some(365),
        },
    )
    .await;
    bucket(
        moto,
        BucketSpec {
            name: "acme-open",
            region: "eu-west-1",
            block: false,
            encrypted: false,
            policy: None,
            expire_days: None,
        },
    )
    .await;
    bucket(
        moto,
        BucketSpec {
            name: "acme-half",
            region: "eu-west-1",
            block: false,
            encrypted: true,
            policy: Some(objects_only_policy("acme-half")),
            expire_days: None,
        },
    )
    .await;

    // A single-region trail (out of scope) and a multi-region trail homed in eu-west-1, seen
    // from us-east-1 as a shadow trail, without log file validation.
    trail(moto, "us-east-1", "regional", false, true).await;
    trail(moto, "eu-west-1", "everywhere", true, false).await;

    // us-east-1 holds only databases and has no detector; eu-west-1 holds a volume and a
    // disabled detector.
    detector(moto, "eu-west-1", false).await;
    volume(moto, "eu-west-1").await;

    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &moto.url, &["us-east-1", "eu-west-1"], "");
    let report = run(&loaded, CONTROLS, Utc::now()).await;

    // encryption-at-rest
    let id = "encryption-at-rest";
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Fail,
        &[&db_arn("db", "legacy")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Pass,
        &[&db_arn("db", "orders")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        NotApplicable,
        &[
            &db_arn("db", "ledger-0"),
            &db_arn("db", "ledger-1"),
            &db_arn("db", "reports-0"),
        ],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.clusters",
        Fail,
        &[&db_arn("cluster", "reports")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.clusters",
        Pass,
        &[&db_arn("cluster", "ledger")],
    );
    assert_exactly(
        &report,
        id,
        "aws.s3.buckets",
        Fail,
        &["arn:aws:s3:::acme-open"],
    );
    assert_exactly(
        &report,
        id,
        "aws.s3.buckets",
        Pass,
        &[
            "arn:aws:s3:::acme-clean",
            "arn:aws:s3:::acme-half",
            "arn:aws:s3:::regional-logs",
            "arn:aws:s3:::everywhere-logs",
        ],
    );
    let legacy = outcome(&report, id)
        .findings
        .iter()
        .find(|f| f.resource == db_arn("db", "legacy") && f.status == Fail)
        .unwrap();
    assert_eq!(
        legacy.actual.to_value()["storage_encrypted"],
        false,
        "{legacy:?}"
    );
    assert!(
        legacy.message.contains("RDS instance legacy"),
        "{}",
        legacy.message
    );
    assert_eq!(outcome(&report, id).status, Fail);

    // automated-backup-process
    let id = "automated-backup-process";
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Fail,
        &[&db_arn("db", "legacy")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Pass,
        &[&db_arn("db", "orders")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.clusters",
        Fail,
        &[&db_arn("cluster", "reports")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.clusters",
        Pass,
        &[&db_arn("cluster", "ledger")],
    );

    // high-availability-configuration: no environment is declared, so every database counts.
    let id = "high-availability-configuration";
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Fail,
        &[&db_arn("db", "legacy")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Pass,
        &[&db_arn("db", "orders")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.clusters",
        Fail,
        &[&db_arn("cluster", "reports")],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.clusters",
        Pass,
        &[&db_arn("cluster", "ledger")],
    );

    // encryption-in-transit: a policy on the objects only is not TLS-only.
    let id = "encryption-in-transit";
    assert_exactly(
        &report,
        id,
        "aws.s3.buckets",
        Fail,
        &["arn:aws:s3:::acme-open", "arn:aws:s3:::acme-half"],
    );
    assert_exactly(
        &report,
        id,
        "aws.s3.buckets",
        Pass,
        &[
            "arn:aws:s3:::acme-clean",
            "arn:aws:s3:::regional-logs",
            "arn:aws:s3:::everywhere-logs",
        ],
    );

    // logging-and-monitoring-for-threats: the one multi-region trail lacks validation.
    let id = "logging-and-monitoring-for-threats";
    let everywhere = format!("arn:aws:cloudtrail:eu-west-1:{ACCOUNT_ID}:trail/everywhere");
    let regional = format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:trail/regional");
    assert_exactly(&report, id, "aws.cloudtrail.trails", Fail, &[&everywhere]);
    assert_exactly(
        &report,
        id,
        "aws.cloudtrail.trails",
        NotApplicable,
        &[&regional],
    );
    assert_eq!(check_status(&report, id, "aws.cloudtrail.trails"), Fail);
    let trail = outcome(&report, id)
        .findings
        .iter()
        .find(|f| f.resource == everywhere)
        .unwrap();
    assert_eq!(trail.actual.to_value()["logging"], true, "{trail:?}");
    assert_eq!(
        trail.actual.to_value()["log_file_validation"],
        false,
        "{trail:?}"
    );
    assert_exactly(
        &report,
        id,
        "aws.guardduty.detectors",
        Fail,
        &["acme/us-east-1/guardduty", "acme/eu-west-1/guardduty"],
    );
    let east = outcome(&report, id)
        .findings
        .iter()
        .find(|f| f.resource.ends_with("acme/us-east-1/guardduty"))
        .unwrap();
    assert_eq!(east.actual.to_value()["enabled"], false);

    // automated-alerting-for-security-events
    let id = "automated-alerting-for-security-events";
    assert_exactly(
        &report,
        id,
        "aws.guardduty.detectors",
        Fail,
        &["acme/us-east-1/guardduty", "acme/eu-west-1/guardduty"],
    );

    // access-to-customer-data-is-restricted: no account-level block, so only the buckets
    // blocking public access themselves pass.
    let id = "access-to-customer-data-is-restricted";
    assert_exactly(
        &report,
        id,
        "aws.s3.buckets",
        Fail,
        &["arn:aws:s3:::acme-open", "arn:aws:s3:::acme-half"],
    );
    assert_exactly(
        &report,
        id,
        "aws.s3.buckets",
        Pass,
        &[
            "arn:aws:s3:::acme-clean",
            "arn:aws:s3:::regional-logs",
            "arn:aws:s3:::everywhere-logs",
        ],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.instances",
        Fail,
        &[&db_arn("db", "legacy")],
    );
    assert_eq!(resources(&report, id, "aws.rds.instances", Pass).len(), 4);
    assert_exactly(
        &report,
        id,
        "aws.rds.snapshots",
        Fail,
        &[
            &db_arn("snapshot", "orders-public"),
            &db_arn("snapshot", "orders-partner"),
            &db_arn("cluster-snapshot", "ledger-public"),
        ],
    );
    assert_exactly(
        &report,
        id,
        "aws.rds.snapshots",
        Pass,
        &[
            &db_arn("snapshot", "orders-private"),
            &db_arn("snapshot", "orders-ours"),
            &db_arn("cluster-snapshot", "ledger-private"),
        ],
    );
    let partner = outcome(&report, id)
        .findings
        .iter()
        .find(|f| f.resource == db_arn("snapshot", "orders-partner"))
        .unwrap();
    assert_eq!(
        partner.actual.to_value()["shared_outside"],
        serde_json::json!(["999988887777"])
    );
    assert_eq!(partner.actual.to_value()["public"], false);
}

async fn clean_resources_pass(moto: &Moto) {
    db_instance(
        moto,
        Db {
            id: "orders",
            encrypted: true,
            multi_az: true,
            backup_days: 14,
            public: false,
        },
    )
    .await;
    aurora(moto, "ledger", true, 14, &["us-east-1a", "us-east-1b"]).await;
    db_snapshot(moto, "orders", "orders-ours", &[ACCOUNT_ID]).await;
    bucket(
        moto,
        BucketSpec {
            name: "acme-data",
            region: "eu-west-1",
            block: false,
            encrypted: true,
            policy: Some(tls_policy("acme-data")),
            expire_days: Some(30),
        },
    )
    .await;
    // Public access blocked for the whole account, not per bucket.
    moto.put_account_public_access_block(true).await;
    trail(moto, "eu-west-1", "everywhere", true, true).await;
    detector(moto, "us-east-1", true).await;
    detector(moto, "eu-west-1", true).await;

    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &moto.url, &["us-east-1", "eu-west-1"], "");
    let report = run(&loaded, CONTROLS, Utc::now()).await;
    let mut seen = 0;
    for id in CONTROLS {
        let o = outcome(&report, id);
        for c in &o.checks {
            let ours = ["aws.rds.", "aws.s3.", "aws.cloudtrail.", "aws.guardduty."]
                .iter()
                .any(|p| c.probe.starts_with(p));
            if !ours {
                continue;
            }
            seen += 1;
            assert_eq!(
                c.status,
                Status::Pass,
                "{id} / {}: {c:?}\n{:#?}",
                c.probe,
                o.findings
            );
            assert!(
                !resources(&report, id, &c.probe, Status::Pass).is_empty(),
                "{id} / {}: passed with nothing to check",
                c.probe
            );
        }
    }
    assert_eq!(seen, 14);
    let bucket = outcome(&report, "access-to-customer-data-is-restricted")
        .findings
        .iter()
        .find(|f| f.resource == "arn:aws:s3:::acme-data")
        .unwrap();
    assert_eq!(
        bucket.actual.to_value()["public_access_blocked"],
        true,
        "{bucket:?}"
    );
    // us-east-1 is in use through its databases alone.
    let east = outcome(&report, "automated-alerting-for-security-events")
        .findings
        .iter()
        .find(|f| f.resource.ends_with("acme/us-east-1/guardduty"))
        .unwrap();
    assert_eq!(east.actual.to_value()["enabled"], true, "{east:?}");
}
