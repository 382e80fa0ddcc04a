//! RDS, S3, CloudTrail and GuardDuty against wiremock, with payloads shaped like AWS's own
//! (query XML for RDS and STS, REST XML for S3 and S3 Control, JSON 1.1 for CloudTrail, REST
//! JSON for GuardDuty): each listing is requested once per run (once per page) however many
//! controls read it, and a refusal, a 5xx after the retries or a timeout on any new call is
//! `error` naming the cause — and the permission — never a pass.

use crate::common::aws as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{at, loaded, outcome, run};
use trellis::model::Status;
use trellis::runner::RunReport;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const NOW: &str = "2026-11-22T12:00:00Z";

const CONTROLS: &[&str] = &[
    "encryption-at-rest",
    "automated-backup-process",
    "high-availability-configuration",
    "encryption-in-transit",
    "logging-and-monitoring-for-threats",
    "automated-alerting-for-security-events",
    "access-to-customer-data-is-restricted",
];

/// Fast retries, a short call timeout.
const QUICK: &str = "    max_attempts: 2\n    initial_backoff: 1ms\n    call_timeout: 1s\n    retry_mode: standard\n";

const RDS_NS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

fn body(r: &Request) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn has_query(r: &Request, key: &str) -> bool {
    r.url.query_pairs().any(|(k, _)| k == key)
}

/// The operation a request calls, whatever the protocol (` page 2` for a continued listing).
fn operation(r: &Request) -> String {
    if let Some(target) = r.headers.get("x-amz-target") {
        let t = target.to_str().unwrap_or("");
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let b = body(r);
    if let Some(action) = b.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        let mut name = action.to_string();
        if b.contains("Marker=") {
            name.push_str(" page 2");
        }
        return name;
    }
    let path = r.url.path();
    if path.starts_with("/v20180820/") {
        return "S3Control.GetPublicAccessBlock".into();
    }
    if path == "/detector" {
        return "ListDetectors".into();
    }
    if path.starts_with("/detector/") {
        return "GetDetector".into();
    }
    if path == "/" {
        return "ListBuckets".into();
    }
    for (key, op) in [
        ("location", "GetBucketLocation"),
        ("publicAccessBlock", "GetPublicAccessBlock"),
        ("encryption", "GetBucketEncryption"),
        ("policy", "GetBucketPolicy"),
        ("lifecycle", "GetBucketLifecycleConfiguration"),
    ] {
        if has_query(r, key) {
            return op.into();
        }
    }
    format!("? {} {}", r.method, r.url)
}

/// Matches requests calling `op` (as [`operation`] names it).
fn calls(op: &'static str) -> impl Fn(&Request) -> bool + Send + Sync + 'static {
    move |r: &Request| operation(r) == op
}

fn xml(status: u16, text: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(text.into(), "text/xml")
}

fn json(status: u16, content_type: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(text.to_string(), content_type)
}

fn rds(action: &str, result: &str) -> ResponseTemplate {
    xml(
        200,
        format!(
            r#"<{action}Response xmlns="{RDS_NS}"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"#
        ),
    )
}

fn db_instance(id: &str, cluster: Option<&str>, zone: &str) -> String {
    let cluster = cluster
        .map(|c| format!("<DBClusterIdentifier>{c}</DBClusterIdentifier>"))
        .unwrap_or_default();
    format!(
        "<DBInstance><DBInstanceIdentifier>{id}</DBInstanceIdentifier><DBInstanceArn>arn:aws:rds:us-east-1:111122223333:db:{id}</DBInstanceArn><Engine>postgres</Engine><DBInstanceStatus>available</DBInstanceStatus><StorageEncrypted>true</StorageEncrypted><KmsKeyId>arn:aws:kms:us-east-1:111122223333:key/k</KmsKeyId><MultiAZ>true</MultiAZ><AvailabilityZone>{zone}</AvailabilityZone><BackupRetentionPeriod>7</BackupRetentionPeriod><PubliclyAccessible>false</PubliclyAccessible><DeletionProtection>true</DeletionProtection>{cluster}</DBInstance>"
    )
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:*","Resource":["arn:aws:s3:::acme-data","arn:aws:s3:::acme-data/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;

/// Mounts every healthy answer (lowest priority: a test shadows any of them with a fault).
async fn healthy(server: &MockServer) {
    let answers: Vec<(&'static str, ResponseTemplate)> = vec![
        (
            "GetCallerIdentity",
            xml(
                200,
                r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/trellis</Arn><UserId>AIDATRELLIS</UserId><Account>111122223333</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#,
            ),
        ),
        (
            "DescribeVolumes",
            xml(
                200,
                std::fs::read_to_string(
                    common::repo().join("tests/fixtures/aws/ec2_describe_volumes.xml"),
                )
                .unwrap(),
            ),
        ),
        (
            "DescribeInstances",
            xml(
                200,
                std::fs::read_to_string(
                    common::repo().join("tests/fixtures/aws/ec2_describe_instances.xml"),
                )
                .unwrap(),
            ),
        ),
        (
            "DescribeDBInstances",
            rds(
                "DescribeDBInstances",
                &format!(
                    "<DBInstances>{}{}</DBInstances><Marker>page-2</Marker>",
                    db_instance("orders", None, "us-east-1a"),
                    db_instance("ledger-0", Some("ledger"), "us-east-1a"),
                ),
            ),
        ),
        (
            "DescribeDBInstances page 2",
            rds(
                "DescribeDBInstances",
                &format!(
                    "<DBInstances>{}</DBInstances>",
                    db_instance("ledger-1", Some("ledger"), "us-east-1b")
                ),
            ),
        ),
        (
            "DescribeDBClusters",
            rds(
                "DescribeDBClusters",
                "<DBClusters><DBCluster><DBClusterIdentifier>ledger</DBClusterIdentifier><DBClusterArn>arn:aws:rds:us-east-1:111122223333:cluster:ledger</DBClusterArn><Engine>aurora-postgresql</Engine><Status>available</Status><StorageEncrypted>true</StorageEncrypted><MultiAZ>true</MultiAZ><AvailabilityZones><AvailabilityZone>us-east-1a</AvailabilityZone><AvailabilityZone>us-east-1b</AvailabilityZone></AvailabilityZones><BackupRetentionPeriod>14</BackupRetentionPeriod><DeletionProtection>true</DeletionProtection><DBClusterMembers><DBClusterMember><DBInstanceIdentifier>ledger-0</DBInstanceIdentifier></DBClusterMember><DBClusterMember><DBInstanceIdentifier>ledger-1</DBInstanceIdentifier></DBClusterMember></DBClusterMembers></DBCluster></DBClusters>",
            ),
        ),
        (
            "DescribeDBSnapshots",
            rds(
                "DescribeDBSnapshots",
                "<DBSnapshots><DBSnapshot><DBSnapshotIdentifier>orders-copy</DBSnapshotIdentifier><DBSnapshotArn>arn:aws:rds:us-east-1:111122223333:snapshot:orders-copy</DBSnapshotArn><DBInstanceIdentifier>orders</DBInstanceIdentifier><SnapshotType>manual</SnapshotType><Status>available</Status><Encrypted>true</Encrypted></DBSnapshot></DBSnapshots>",
            ),
        ),
        (
            "DescribeDBClusterSnapshots",
            rds(
                "DescribeDBClusterSnapshots",
                "<DBClusterSnapshots><DBClusterSnapshot><DBClusterSnapshotIdentifier>ledger-copy</DBClusterSnapshotIdentifier><DBClusterSnapshotArn>arn:aws:rds:us-east-1:111122223333:cluster-snapshot:ledger-copy</DBClusterSnapshotArn><DBClusterIdentifier>ledger</DBClusterIdentifier><SnapshotType>manual</SnapshotType><Status>available</Status><StorageEncrypted>true</StorageEncrypted></DBClusterSnapshot></DBClusterSnapshots>",
            ),
        ),
        (
            "DescribeDBSnapshotAttributes",
            rds(
                "DescribeDBSnapshotAttributes",
                "<DBSnapshotAttributesResult><DBSnapshotIdentifier>orders-copy</DBSnapshotIdentifier><DBSnapshotAttributes><DBSnapshotAttribute><AttributeName>restore</AttributeName><AttributeValues><AttributeValue>111122223333</AttributeValue></AttributeValues></DBSnapshotAttribute></DBSnapshotAttributes></DBSnapshotAttributesResult>",
            ),
        ),
        (
            "DescribeDBClusterSnapshotAttributes",
            rds(
                "DescribeDBClusterSnapshotAttributes",
                "<DBClusterSnapshotAttributesResult><DBClusterSnapshotIdentifier>ledger-copy</DBClusterSnapshotIdentifier><DBClusterSnapshotAttributes><DBClusterSnapshotAttribute><AttributeName>restore</AttributeName><AttributeValues></AttributeValues></DBClusterSnapshotAttribute></DBClusterSnapshotAttributes></DBClusterSnapshotAttributesResult>",
            ),
        ),
        (
            "ListBuckets",
            xml(
                200,
                format!(
                    r#"<ListAllMyBucketsResult xmlns="{S3_NS}"><Owner><ID>o</ID></Owner><Buckets><Bucket><Name>acme-data</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"#
                ),
            ),
        ),
        (
            "GetBucketLocation",
            xml(
                200,
                format!(r#"<LocationConstraint xmlns="{S3_NS}"></LocationConstraint>"#),
            ),
        ),
        (
            // No bucket-level block: the account's decides.
            "GetPublicAccessBlock",
            xml(
                404,
                "<Error><Code>NoSuchPublicAccessBlockConfiguration</Code><Message>The public access block configuration was not found</Message><RequestId>r</RequestId></Error>",
            ),
        ),
        (
            "GetBucketEncryption",
            xml(
                200,
                format!(
                    r#"<ServerSideEncryptionConfiguration xmlns="{S3_NS}"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:111122223333:key/k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#
                ),
            ),
        ),
        ("GetBucketPolicy", json(200, "application/json", POLICY)),
        (
            "GetBucketLifecycleConfiguration",
            xml(
                200,
                format!(
                    r#"<LifecycleConfiguration xmlns="{S3_NS}"><Rule><ID>expire</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status><Expiration><Days>365</Days></Expiration></Rule></LifecycleConfiguration>"#
                ),
            ),
        ),
        (
            "S3Control.GetPublicAccessBlock",
            xml(
                200,
                r#"<PublicAccessBlockConfiguration xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>"#,
            ),
        ),
        (
            "DescribeTrails",
            json(
                200,
                "application/x-amz-json-1.1",
                r#"{"trailList":[{"Name":"everywhere","TrailARN":"arn:aws:cloudtrail:eu-west-1:111122223333:trail/everywhere","HomeRegion":"eu-west-1","IsMultiRegionTrail":true,"LogFileValidationEnabled":true,"S3BucketName":"acme-trail","IsOrganizationTrail":false,"IncludeGlobalServiceEvents":true}]}"#,
            ),
        ),
        (
            "GetTrailStatus",
            json(
                200,
                "application/x-amz-json-1.1",
                r#"{"IsLogging":true,"LatestDeliveryTime":1795000000}"#,
            ),
        ),
        (
            "ListDetectors",
            json(200, "application/json", r#"{"detectorIds":["d-1"]}"#),
        ),
        (
            "GetDetector",
            json(
                200,
                "application/json",
                r#"{"status":"ENABLED","findingPublishingFrequency":"SIX_HOURS","serviceRole":"arn:aws:iam::111122223333:role/gd"}"#,
            ),
        ),
    ];
    for (op, answer) in answers {
        Mock::given(calls(op))
            .respond_with(answer)
            .with_priority(10)
            .mount(server)
            .await;
    }
}

/// Answers `op` with `answer` ahead of the healthy answers.
async fn fault(server: &MockServer, op: &'static str, answer: ResponseTemplate) {
    Mock::given(calls(op))
        .respond_with(answer)
        .with_priority(1)
        .mount(server)
        .await;
}

async fn counts(server: &MockServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        *out.entry(operation(&r)).or_default() += 1;
    }
    out
}

/// The check of control `id` reading `probe`.
fn check<'a>(
    report: &'a RunReport,
    id: &str,
    probe: &str,
) -> (usize, &'a trellis::model::CheckOutcome) {
    let o = outcome(report, id);
    o.checks
        .iter()
        .enumerate()
        .find(|(_, c)| c.probe == probe)
        .unwrap_or_else(|| panic!("{id} has no {probe} check"))
}

/// Everything the check said about why it could not evaluate: its summary, its error and
/// its `error` findings.
fn error_text(report: &RunReport, id: &str, probe: &str) -> String {
    let (i, c) = check(report, id, probe);
    let mut text = format!("{} {}", c.summary, c.error.clone().unwrap_or_default());
    for f in &outcome(report, id).findings {
        if f.check == i && f.status == Status::Error {
            text.push(' ');
            text.push_str(&f.message);
        }
    }
    text
}

const OUR_PROBES: &[&str] = &["aws.rds.", "aws.s3.", "aws.cloudtrail.", "aws.guardduty."];

fn ours(probe: &str) -> bool {
    OUR_PROBES.iter().any(|p| probe.starts_with(p))
}

#[tokio::test]
async fn every_listing_is_requested_once_per_run_and_every_check_passes() {
    let server = MockServer::start().await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(&loaded, CONTROLS, at(NOW)).await;

    let mut seen = 0;
    for id in CONTROLS {
        for c in &outcome(&report, id).checks {
            if ours(&c.probe) {
                seen += 1;
                assert_eq!(
                    c.status,
                    Status::Pass,
                    "{id} / {}: {c:?}\n{:#?}",
                    c.probe,
                    outcome(&report, id).findings
                );
            }
        }
    }
    assert_eq!(seen, 14);

    let counts = counts(&server).await;
    let ours: BTreeMap<&str, usize> = counts
        .iter()
        .map(|(op, n)| (op.as_str(), *n))
        // The EC2 and ELB checks of the same controls (not answered here but for the region
        // usage).
        .filter(|(op, _)| {
            !matches!(
                *op,
                "DescribeLoadBalancers"
                    | "DescribeVolumes"
                    | "DescribeInstances"
                    | "DescribeSnapshots"
                    | "DescribeVpcs"
                    | "DescribeFlowLogs"
                    | "GetEbsEncryptionByDefault"
            )
        })
        .collect();
    // Four probes read DescribeDBInstances (instances, clusters, the GuardDuty region usage;
    // four controls read aws.rds.instances), two pages, each requested once.
    assert_eq!(
        ours,
        BTreeMap::from([
            ("DescribeDBClusterSnapshotAttributes", 1),
            ("DescribeDBClusterSnapshots", 1),
            ("DescribeDBClusters", 1),
            ("DescribeDBInstances", 1),
            ("DescribeDBInstances page 2", 1),
            ("DescribeDBSnapshotAttributes", 1),
            ("DescribeDBSnapshots", 1),
            ("DescribeTrails", 1),
            ("GetBucketEncryption", 1),
            ("GetBucketLifecycleConfiguration", 1),
            ("GetBucketLocation", 1),
            ("GetBucketPolicy", 1),
            ("GetCallerIdentity", 1),
            ("GetDetector", 1),
            ("GetPublicAccessBlock", 1),
            ("GetTrailStatus", 1),
            ("ListBuckets", 1),
            ("ListDetectors", 1),
            ("S3Control.GetPublicAccessBlock", 1),
        ]),
        "{counts:#?}"
    );
    assert_eq!(counts.get("DescribeVolumes"), Some(&1), "{counts:#?}");
    assert_eq!(counts.get("DescribeInstances"), Some(&1), "{counts:#?}");

    // The values seen are the ones served.
    let (i, _) = check(
        &report,
        "high-availability-configuration",
        "aws.rds.clusters",
    );
    let ledger = outcome(&report, "high-availability-configuration")
        .findings
        .iter()
        .find(|f| f.check == i)
        .unwrap();
    assert_eq!(
        ledger.resource,
        "arn:aws:rds:us-east-1:111122223333:cluster:ledger"
    );
    assert_eq!(
        ledger.actual.to_value()["instance_zones"],
        serde_json::json!(["us-east-1a", "us-east-1b"])
    );
}

/// Each new call, refused: the checks reading it are `error` naming the IAM permission.
#[tokio::test]
async fn access_denied_on_each_new_call_is_an_error_naming_the_permission() {
    let rds_denied = || {
        xml(
            403,
            format!(
                r#"<ErrorResponse xmlns="{RDS_NS}"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
            ),
        )
    };
    let s3_denied = || {
        xml(
            403,
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>r</RequestId></Error>",
        )
    };
    let cases: Vec<(&'static str, ResponseTemplate, &str, &str, &str)> = vec![
        (
            "DescribeDBInstances",
            rds_denied(),
            "encryption-at-rest",
            "aws.rds.instances",
            "rds:DescribeDBInstances",
        ),
        (
            "DescribeDBClusters",
            rds_denied(),
            "encryption-at-rest",
            "aws.rds.clusters",
            "rds:DescribeDBClusters",
        ),
        (
            "DescribeDBSnapshots",
            rds_denied(),
            "access-to-customer-data-is-restricted",
            "aws.rds.snapshots",
            "rds:DescribeDBSnapshots",
        ),
        (
            "DescribeDBClusterSnapshots",
            rds_denied(),
            "access-to-customer-data-is-restricted",
            "aws.rds.snapshots",
            "rds:DescribeDBClusterSnapshots",
        ),
        (
            "DescribeDBSnapshotAttributes",
            rds_denied(),
            "access-to-customer-data-is-restricted",
            "aws.rds.snapshots",
            "rds:DescribeDBSnapshotAttributes",
        ),
        (
            "DescribeDBClusterSnapshotAttributes",
            rds_denied(),
            "access-to-customer-data-is-restricted",
            "aws.rds.snapshots",
            "rds:DescribeDBClusterSnapshotAttributes",
        ),
        (
            "ListBuckets",
            s3_denied(),
            "encryption-at-rest",
            "aws.s3.buckets",
            "s3:ListAllMyBuckets",
        ),
        (
            "GetBucketLocation",
            s3_denied(),
            "encryption-at-rest",
            "aws.s3.buckets",
            "s3:GetBucketLocation",
        ),
        (
            "GetPublicAccessBlock",
            s3_denied(),
            "access-to-customer-data-is-restricted",
            "aws.s3.buckets",
            "s3:GetBucketPublicAccessBlock",
        ),
        (
            "GetBucketEncryption",
            s3_denied(),
            "encryption-at-rest",
            "aws.s3.buckets",
            "s3:GetEncryptionConfiguration",
        ),
        (
            "GetBucketPolicy",
            s3_denied(),
            "encryption-in-transit",
            "aws.s3.buckets",
            "s3:GetBucketPolicy",
        ),
        (
            "S3Control.GetPublicAccessBlock",
            xml(
                403,
                "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            ),
            "access-to-customer-data-is-restricted",
            "aws.s3.buckets",
            "s3:GetAccountPublicAccessBlock",
        ),
        (
            "DescribeTrails",
            json(
                400,
                "application/x-amz-json-1.1",
                r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform cloudtrail:DescribeTrails"}"#,
            ),
            "logging-and-monitoring-for-threats",
            "aws.cloudtrail.trails",
            "cloudtrail:DescribeTrails",
        ),
        (
            "GetTrailStatus",
            json(
                400,
                "application/x-amz-json-1.1",
                r#"{"__type":"AccessDeniedException","message":"no"}"#,
            ),
            "logging-and-monitoring-for-threats",
            "aws.cloudtrail.trails",
            "cloudtrail:GetTrailStatus",
        ),
        (
            "ListDetectors",
            json(
                403,
                "application/json",
                r#"{"message":"no","__type":"AccessDeniedException"}"#,
            )
            .insert_header("x-amzn-ErrorType", "AccessDeniedException"),
            "automated-alerting-for-security-events",
            "aws.guardduty.detectors",
            "guardduty:ListDetectors",
        ),
        (
            "GetDetector",
            json(
                403,
                "application/json",
                r#"{"message":"no","__type":"AccessDeniedException"}"#,
            )
            .insert_header("x-amzn-ErrorType", "AccessDeniedException"),
            "automated-alerting-for-security-events",
            "aws.guardduty.detectors",
            "guardduty:GetDetector",
        ),
    ];
    for (op, answer, control, probe, permission) in cases {
        let server = MockServer::start().await;
        healthy(&server).await;
        fault(&server, op, answer).await;
        if op == "GetPublicAccessBlock" {
            // Else the account's block would decide, and the bucket's would not matter.
            fault(
                &server,
                "S3Control.GetPublicAccessBlock",
                xml(404, "<ErrorResponse><Error><Code>NoSuchPublicAccessBlockConfiguration</Code><Message>none</Message></Error><RequestId>r</RequestId></ErrorResponse>"),
            )
            .await;
        }
        let dir = tempfile::tempdir().unwrap();
        let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
        let report = run(&loaded, &[control], at(NOW)).await;
        let (_, c) = check(&report, control, probe);
        assert_eq!(c.status, Status::Error, "{op}: {c:?}");
        let text = error_text(&report, control, probe);
        assert!(text.contains(permission), "{op}: {text}");
        assert!(text.contains("access denied"), "{op}: {text}");
        // Never a pass for the control either.
        assert_ne!(outcome(&report, control).status, Status::Pass, "{op}");
    }
}

/// The lifecycle configuration is read for the evidence; refused, it leaves only the lifecycle
/// attributes unknown, and the checks that do not read them are still evaluated.
#[tokio::test]
async fn a_refused_bucket_detail_leaves_the_other_checks_evaluated() {
    let server = MockServer::start().await;
    healthy(&server).await;
    fault(
        &server,
        "GetBucketLifecycleConfiguration",
        xml(403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>r</RequestId></Error>"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(
        &loaded,
        &["encryption-at-rest", "encryption-in-transit"],
        at(NOW),
    )
    .await;
    assert_eq!(
        check(&report, "encryption-at-rest", "aws.s3.buckets")
            .1
            .status,
        Status::Pass
    );
    assert_eq!(
        check(&report, "encryption-in-transit", "aws.s3.buckets")
            .1
            .status,
        Status::Pass
    );
}

#[tokio::test]
async fn server_errors_after_retries_and_timeouts_are_errors() {
    let unavailable = || {
        xml(
            503,
            format!(
                r#"<ErrorResponse xmlns="{RDS_NS}"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>try later</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
            ),
        )
    };
    let slow = |answer: ResponseTemplate| answer.set_delay(Duration::from_secs(5));
    let cases: Vec<(&'static str, ResponseTemplate, &str, &str, &str)> = vec![
        (
            "DescribeDBInstances",
            unavailable(),
            "encryption-at-rest",
            "aws.rds.instances",
            "HTTP 503",
        ),
        (
            "GetBucketPolicy",
            xml(
                500,
                "<Error><Code>InternalError</Code><Message>oops</Message><RequestId>r</RequestId></Error>",
            ),
            "encryption-in-transit",
            "aws.s3.buckets",
            "HTTP 500",
        ),
        (
            "DescribeTrails",
            json(
                500,
                "application/x-amz-json-1.1",
                r#"{"__type":"InternalFailure","message":"oops"}"#,
            ),
            "logging-and-monitoring-for-threats",
            "aws.cloudtrail.trails",
            "HTTP 500",
        ),
        (
            "ListDetectors",
            slow(json(200, "application/json", r#"{"detectorIds":[]}"#)),
            "automated-alerting-for-security-events",
            "aws.guardduty.detectors",
            "timed out",
        ),
        (
            "ListBuckets",
            slow(xml(
                200,
                format!(
                    r#"<ListAllMyBucketsResult xmlns="{S3_NS}"><Buckets></Buckets></ListAllMyBucketsResult>"#
                ),
            )),
            "access-to-customer-data-is-restricted",
            "aws.s3.buckets",
            "timed out",
        ),
        (
            "DescribeDBSnapshots",
            slow(rds("DescribeDBSnapshots", "<DBSnapshots></DBSnapshots>")),
            "access-to-customer-data-is-restricted",
            "aws.rds.snapshots",
            "timed out",
        ),
    ];
    for (op, answer, control, probe, cause) in cases {
        let server = MockServer::start().await;
        healthy(&server).await;
        fault(&server, op, answer).await;
        let dir = tempfile::tempdir().unwrap();
        let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
        let report = run(&loaded, &[control], at(NOW)).await;
        let (_, c) = check(&report, control, probe);
        assert_eq!(c.status, Status::Error, "{op}: {c:?}");
        let text = error_text(&report, control, probe);
        assert!(text.contains(cause), "{op}: {text}");
        assert!(
            text.contains(op.trim_start_matches("S3Control.")),
            "{op}: {text}"
        );
        assert_ne!(outcome(&report, control).status, Status::Pass, "{op}");
        if cause.starts_with("HTTP") {
            // Retried as configured (two attempts) before giving up.
            assert_eq!(counts(&server).await.get(op), Some(&2), "{op}");
        }
    }
}
