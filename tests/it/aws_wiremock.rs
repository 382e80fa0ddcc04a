//! The AWS probes against wiremock, with payloads shaped like AWS's own (tests/fixtures/aws):
//! multi-page listings, one request per page per run, and every way a call can fail — each
//! ending as the right verdict, never a pass.

use crate::common::aws as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{assert_resources, at, findings, loaded, outcome, run};
use trellis::model::Status;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The fixtures describe the account as of this instant.
const NOW: &str = "2026-11-22T12:00:00Z";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::repo().join("tests/fixtures/aws").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn body(r: &Request) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The query-protocol action of a request, plus ` page 2` when it carries a page token.
fn action(r: &Request) -> String {
    let b = body(r);
    let name = b
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("?")
        .to_string();
    let mut key = if r.method == wiremock::http::Method::GET && r.url.path() == "/" {
        "ListBuckets".to_string()
    } else {
        name
    };
    if b.contains("NextToken=") || b.contains("Marker=") {
        key.push_str(" page 2");
    }
    if b.contains("RestorableBy") {
        key.push_str(" (public)");
    }
    key
}

fn is(name: &'static str) -> impl Fn(&Request) -> bool + Send + Sync + 'static {
    move |r: &Request| body(r).split('&').any(|kv| kv == format!("Action={name}"))
}

fn xml(status: u16, text: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(text, "text/xml")
}

/// Mounts every AWS answer of the healthy scenario (lowest priority, so a test can shadow any
/// of them with a failure).
async fn healthy(server: &MockServer) {
    let pages: &[(&'static str, &str, Option<&str>)] = &[
        (
            "GenerateCredentialReport",
            "iam_generate_credential_report.xml",
            None,
        ),
        ("GetCredentialReport", "iam_get_credential_report.xml", None),
        (
            "GetAccountPasswordPolicy",
            "iam_get_account_password_policy.xml",
            None,
        ),
        ("GetAccountSummary", "iam_get_account_summary.xml", None),
        (
            "DescribeNetworkInterfaces",
            "ec2_describe_network_interfaces.xml",
            None,
        ),
        (
            "GetEbsEncryptionByDefault",
            "ec2_get_ebs_encryption_by_default.xml",
            None,
        ),
        ("DescribeVolumes", "ec2_describe_volumes.xml", None),
        ("DescribeVpcs", "ec2_describe_vpcs.xml", None),
        ("DescribeFlowLogs", "ec2_describe_flow_logs.xml", None),
        ("DescribeInstances", "ec2_describe_instances.xml", None),
        (
            "GetAccountAuthorizationDetails",
            "iam_get_account_authorization_details_1.xml",
            Some("iam_get_account_authorization_details_2.xml"),
        ),
        (
            "DescribeSecurityGroups",
            "ec2_describe_security_groups_1.xml",
            Some("ec2_describe_security_groups_2.xml"),
        ),
    ];
    for (name, first, second) in pages {
        let name: &'static str = name;
        if let Some(second) = second {
            Mock::given(method("POST"))
                .and(is(name))
                .and(|r: &Request| {
                    let b = body(r);
                    b.contains("NextToken=") || b.contains("Marker=")
                })
                .respond_with(xml(200, fixture(second)))
                .with_priority(9)
                .mount(server)
                .await;
        }
        Mock::given(method("POST"))
            .and(is(name))
            .respond_with(xml(200, fixture(first)))
            .with_priority(10)
            .mount(server)
            .await;
    }
    Mock::given(method("POST"))
        .and(is("DescribeSnapshots"))
        .and(|r: &Request| body(r).contains("RestorableBy"))
        .respond_with(xml(200, fixture("ec2_describe_snapshots_public.xml")))
        .with_priority(9)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(is("DescribeSnapshots"))
        .respond_with(xml(200, fixture("ec2_describe_snapshots.xml")))
        .with_priority(10)
        .mount(server)
        .await;
    // The account holds no database and no bucket (the RDS and S3 checks of the shared
    // controls are tested in aws_data_wiremock).
    for rds in ["DescribeDBInstances", "DescribeDBClusters"] {
        let list = rds.trim_start_matches("Describe");
        Mock::given(method("POST"))
            .and(is(rds))
            .respond_with(xml(
                200,
                format!(
                    r#"<{rds}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><{rds}Result><{list}></{list}></{rds}Result></{rds}Response>"#
                ),
            ))
            .with_priority(10)
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/"))
        .respond_with(xml(
            200,
            r#"<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Buckets></Buckets></ListAllMyBucketsResult>"#.to_string(),
        ))
        .with_priority(10)
        .mount(server)
        .await;
}

/// Answers `action` with `status` and the fixture `file`, ahead of the healthy answers; with
/// `times`, only that often (then the healthy answer takes over).
async fn answer(
    server: &MockServer,
    action: &'static str,
    status: u16,
    file: &str,
    times: Option<u64>,
) {
    let mut mock = Mock::given(method("POST"))
        .and(is(action))
        .respond_with(xml(status, fixture(file)))
        .with_priority(1);
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.mount(server).await;
}

async fn counts(server: &MockServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        *out.entry(action(&r)).or_default() += 1;
    }
    out
}

/// Retries fast, gives up fast. `standard` retry: the adaptive mode's client-side rate
/// limiter deliberately waits for many seconds after throttling, which is right for AWS and
/// too slow for a test.
const QUICK: &str = "    max_attempts: 3\n    initial_backoff: 1ms\n    call_timeout: 2s\n    retry_mode: standard\n";

#[tokio::test]
async fn planted_violations_are_found_with_one_request_per_page() {
    let server = MockServer::start().await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(&loaded, &[], at(NOW)).await;

    // Every AWS control ran on real evidence; none errored.
    for o in &report.outcomes {
        assert_ne!(o.status, Status::Error, "{}: {}", o.control_id, o.summary);
    }
    use Status::{Fail, NotApplicable, Pass};
    let statuses: Vec<(&str, Status)> = report
        .outcomes
        .iter()
        .map(|o| (o.control_id.as_str(), o.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("complex-passwords", Fail),
            ("administrative-access-is-restricted", Fail),
            ("access-to-product-is-restricted", Fail),
            ("least-privilege-in-use", Fail),
            ("unique-access-ids", Fail),
            ("restricted-port-configurations", Fail),
            ("encryption-at-rest", Fail),
            ("network-traffic-monitoring", Fail),
            ("baseline-configurations", Fail),
            ("asset-inventory", Fail),
            ("automated-backup-process", Fail),
        ]
    );

    // complex-passwords: the policy (14, 24) passes; sam.okafor signs in without MFA; ci-deploy
    // has no console password, so MFA does not apply.
    assert_resources(&report, "complex-passwords", Fail, &["user/sam.okafor"]);
    assert_resources(
        &report,
        "complex-passwords",
        Pass,
        &[
            "password-policy",
            "user/dana.reyes",
            "user/old.contractor",
            "user/admin",
        ],
    );
    assert_resources(
        &report,
        "complex-passwords",
        NotApplicable,
        &[":root", "ci-deploy"],
    );

    // AdministratorAccess attached to sam.okafor (page 1); the root user is fine.
    assert_resources(
        &report,
        "administrative-access-is-restricted",
        Fail,
        &["user/sam.okafor"],
    );
    let sam = &findings(&report, "administrative-access-is-restricted", Fail)[0];
    assert!(
        sam.message.contains("IAM user sam.okafor in acme"),
        "{}",
        sam.message
    );
    assert_eq!(sam.actual.to_value()["admin_attached_directly"], true);

    // ci-deploy: two active keys, one 539 days old, one never used in 82 days;
    // old.contractor: password unused since July.
    let access = findings(&report, "access-to-product-is-restricted", Fail);
    let by_check = |check: usize| -> Vec<&str> {
        access
            .iter()
            .filter(|f| f.check == check)
            .map(|f| f.resource.as_str())
            .collect()
    };
    assert_eq!(
        by_check(0),
        ["arn:aws:iam::111122223333:user/automation/ci-deploy"]
    );
    assert_eq!(
        by_check(1),
        ["arn:aws:iam::111122223333:user/automation/ci-deploy"]
    );
    assert_eq!(
        by_check(2),
        [
            "arn:aws:iam::111122223333:user/automation/ci-deploy",
            "arn:aws:iam::111122223333:user/old.contractor"
        ]
    );
    let ci = access.iter().find(|f| f.check == 1).unwrap();
    assert_eq!(ci.actual.to_value()["oldest_active_key_days"], 539);

    // Direct policies: sam.okafor (managed) and ci-deploy (inline); the deployers group's
    // inline `*:*` (page 2); legacy-admin allows `*:*` but is attached to nobody.
    assert_resources(
        &report,
        "least-privilege-in-use",
        Fail,
        &[
            "user/sam.okafor",
            "user/automation/ci-deploy",
            "group/deployers#inline/everything",
        ],
    );
    assert_resources(
        &report,
        "least-privilege-in-use",
        NotApplicable,
        &["policy/legacy-admin"],
    );

    // The generic `admin` user (page 2 of the listing).
    assert_resources(&report, "unique-access-ids", Fail, &["user/admin"]);

    // Page 2 of the security groups: 22 from 0.0.0.0/0 and 3389 from ::/0. HTTPS from the
    // world and ICMP are fine; office SSH and group-to-group rules are out of scope.
    assert_resources(
        &report,
        "restricted-port-configurations",
        Fail,
        &[
            "sg-0a1b2c3d4e5f60003/ingress/0/0.0.0.0/0",
            "sg-0a1b2c3d4e5f60003/ingress/1/::/0",
        ],
    );
    assert_resources(
        &report,
        "restricted-port-configurations",
        Pass,
        &["ingress/0/0.0.0.0/0", "ingress/1/::/0"],
    );
    let rdp = findings(&report, "restricted-port-configurations", Fail)
        .into_iter()
        .find(|f| f.resource.ends_with("::/0"))
        .unwrap();
    assert!(
        rdp.message
            .contains("security group sg-0a1b2c3d4e5f60003 (legacy-admin) in acme/us-east-1: tcp port 3389 from ::/0"),
        "{}",
        rdp.message
    );

    assert_resources(
        &report,
        "encryption-at-rest",
        Fail,
        &["vol-0bb0000000000002"],
    );
    assert_resources(
        &report,
        "network-traffic-monitoring",
        Fail,
        &["vpc-0lab0000000000002"],
    );
    assert_resources(
        &report,
        "network-traffic-monitoring",
        Pass,
        &["vpc-0main000000000001"],
    );
    assert_resources(
        &report,
        "baseline-configurations",
        Fail,
        &["i-0legacy00000000002"],
    );
    assert_resources(&report, "asset-inventory", Fail, &["i-0legacy00000000002"]);
    assert_resources(&report, "asset-inventory", Pass, &["i-0web0000000000001"]);
    // vol-0aa has a 13-hour-old snapshot; vol-0bb's newest completed one is 3 weeks old (the
    // failed snapshot of this morning does not count).
    assert_resources(
        &report,
        "automated-backup-process",
        Fail,
        &["vol-0bb0000000000002"],
    );
    let backup = &findings(&report, "automated-backup-process", Fail)[0];
    assert_eq!(backup.actual.to_value()["hours_since_snapshot"], 514);

    // One request per listing page per run, however many controls read it.
    let expected: BTreeMap<String, usize> = [
        "DescribeDBClusters",
        "DescribeDBInstances",
        "DescribeFlowLogs",
        "DescribeInstances",
        "DescribeNetworkInterfaces",
        "DescribeSecurityGroups",
        "DescribeSecurityGroups page 2",
        "DescribeSnapshots",
        "DescribeSnapshots (public)",
        "DescribeVolumes",
        "DescribeVpcs",
        "GenerateCredentialReport",
        "GetAccountAuthorizationDetails",
        "GetAccountAuthorizationDetails page 2",
        "GetAccountPasswordPolicy",
        "GetAccountSummary",
        "GetCredentialReport",
        "GetEbsEncryptionByDefault",
        "ListBuckets",
    ]
    .into_iter()
    .map(|a| (a.to_string(), 1))
    .collect();
    assert_eq!(counts(&server).await, expected);
}

#[tokio::test]
async fn throttling_then_success_is_evaluated_normally() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeSecurityGroups",
        503,
        "ec2_error_request_limit_exceeded.xml",
        Some(1),
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let (requests, throttles) = trellis::metrics::api_counts("aws");
    let report = run(&loaded, &["restricted-port-configurations"], at(NOW)).await;
    let o = outcome(&report, "restricted-port-configurations");
    assert_eq!(o.status, Status::Fail, "{}", o.summary);
    assert_eq!(
        findings(&report, "restricted-port-configurations", Status::Fail).len(),
        2
    );
    // One throttled attempt, retried; then page 1 and page 2.
    let c = counts(&server).await;
    assert_eq!(c["DescribeSecurityGroups"], 2, "{c:?}");
    assert_eq!(c["DescribeSecurityGroups page 2"], 1, "{c:?}");
    // `/metrics` counts every attempt and the throttled one (other tests of this process
    // count theirs too).
    let (now_requests, now_throttles) = trellis::metrics::api_counts("aws");
    let sent: usize = c.values().sum();
    assert!(now_requests - requests >= sent as u64, "{c:?}");
    assert!(now_throttles > throttles);
}

#[tokio::test]
async fn throttling_past_the_retries_is_an_error() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeVpcs",
        503,
        "ec2_error_request_limit_exceeded.xml",
        None,
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(&loaded, &["network-traffic-monitoring"], at(NOW)).await;
    let o = outcome(&report, "network-traffic-monitoring");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    let e = &findings(&report, "network-traffic-monitoring", Status::Error)[0];
    assert!(
        e.message.contains("throttled: DescribeVpcs in acme/us-east-1: still throttled after the configured retries (RequestLimitExceeded)"),
        "{}",
        e.message
    );
    assert_eq!(counts(&server).await["DescribeVpcs"], 3, "max_attempts");
}

#[tokio::test]
async fn access_denied_is_an_error_naming_the_missing_permission() {
    let server = MockServer::start().await;
    answer(
        &server,
        "GenerateCredentialReport",
        403,
        "iam_error_access_denied.xml",
        None,
    )
    .await;
    answer(
        &server,
        "DescribeVpcs",
        403,
        "ec2_error_unauthorized_operation.xml",
        None,
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(
        &loaded,
        &["complex-passwords", "network-traffic-monitoring"],
        at(NOW),
    )
    .await;
    // The password policy passes; the MFA check cannot be made: the control is `error`.
    let o = outcome(&report, "complex-passwords");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    assert_eq!(o.checks[0].status, Status::Pass);
    let e = &findings(&report, "complex-passwords", Status::Error)[0];
    assert!(
        e.message.contains(
            "access denied to GenerateCredentialReport in acme: the credentials lack `iam:GenerateCredentialReport`"
        ),
        "{}",
        e.message
    );
    let e = &findings(&report, "network-traffic-monitoring", Status::Error)[0];
    assert!(e.message.contains("`ec2:DescribeVpcs`"), "{}", e.message);
    // Refusals are not retried.
    assert_eq!(counts(&server).await["GenerateCredentialReport"], 1);
}

#[tokio::test]
async fn server_errors_after_retries_are_errors() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeInstances",
        500,
        "ec2_error_internal.xml",
        None,
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(
        &loaded,
        &["baseline-configurations", "asset-inventory"],
        at(NOW),
    )
    .await;
    for id in ["baseline-configurations", "asset-inventory"] {
        let o = outcome(&report, id);
        assert_eq!(o.status, Status::Error, "{id}: {}", o.summary);
        let e = &findings(&report, id, Status::Error)[0];
        assert!(
            e.message.contains("DescribeInstances in acme/us-east-1: AWS answered HTTP 500 after the configured retries (InternalError)"),
            "{}",
            e.message
        );
    }
    // Three attempts, shared by both controls.
    assert_eq!(counts(&server).await["DescribeInstances"], 3);
}

#[tokio::test]
async fn timeouts_are_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(is("DescribeVolumes"))
        .respond_with(
            xml(200, fixture("ec2_describe_volumes.xml")).set_delay(Duration::from_secs(30)),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "    max_attempts: 2\n    initial_backoff: 1ms\n    call_timeout: 300ms\n    retry_mode: standard\n";
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], extra);
    let report = run(&loaded, &["encryption-at-rest"], at(NOW)).await;
    let o = outcome(&report, "encryption-at-rest");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    let e = &findings(&report, "encryption-at-rest", Status::Error)[0];
    assert!(
        e.message
            .contains("DescribeVolumes in acme/us-east-1: the call timed out"),
        "{}",
        e.message
    );
    // Two attempts, each cut off by the call timeout (the answer would take 30 s).
    assert_eq!(counts(&server).await["DescribeVolumes"], 2);
}

#[tokio::test]
async fn malformed_bodies_are_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(is("DescribeVolumes"))
        .respond_with(xml(
            200,
            "<DescribeVolumesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><volumeSet><item><volumeId>vol-1</volumeId><size>many</size>".into(),
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(is("GetCredentialReport"))
        .respond_with(xml(
            200,
            "<GetCredentialReportResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><GetCredentialReportResult><Content>bm90LGEsY3N2CnJlcG9ydAo=</Content></GetCredentialReportResult></GetCredentialReportResponse>".into(),
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(
        &loaded,
        &["automated-backup-process", "unique-access-ids"],
        at(NOW),
    )
    .await;
    let o = outcome(&report, "automated-backup-process");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    let e = &findings(&report, "automated-backup-process", Status::Error)[0];
    assert!(
        e.message.contains(
            "malformed data: DescribeVolumes in acme/us-east-1: the response could not be read"
        ),
        "{}",
        e.message
    );
    // A credential report that is not the CSV AWS documents: error, even though the other
    // check of the control (user names) passes... or fails: never a pass.
    let o = outcome(&report, "unique-access-ids");
    assert_ne!(o.status, Status::Pass, "{}", o.summary);
    assert_eq!(o.checks[0].status, Status::Error, "{:?}", o.checks[0]);
    let e = &findings(&report, "unique-access-ids", Status::Error)[0];
    assert!(
        e.message
            .contains("credential report of acme: missing column `user`"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_an_error() {
    // Bind and drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &["us-east-1"],
        QUICK,
    );
    let report = run(&loaded, &[], at(NOW)).await;
    for o in &report.outcomes {
        assert_eq!(o.status, Status::Error, "{}: {}", o.control_id, o.summary);
        for f in &o.findings {
            assert_eq!(f.status, Status::Error);
            assert!(
                f.message.contains("AWS could not be reached"),
                "{}",
                f.message
            );
        }
    }
}

#[tokio::test]
async fn missing_credentials_are_an_error() {
    let server = MockServer::start().await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    // A credentials file without the profile the account uses.
    std::fs::write(
        dir.path().join("aws-credentials"),
        "[someone-else]\naws_access_key_id = x\naws_secret_access_key = y\n",
    )
    .unwrap();
    let report = run(&loaded, &["network-traffic-monitoring"], at(NOW)).await;
    let o = outcome(&report, "network-traffic-monitoring");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    let e = &findings(&report, "network-traffic-monitoring", Status::Error)[0];
    assert!(
        e.message.contains("no usable AWS credentials"),
        "{}",
        e.message
    );
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn one_failing_region_does_not_hide_the_others() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(is("DescribeVpcs"))
        .and(|r: &Request| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("/eu-west-1/ec2/"))
        })
        .respond_with(xml(403, fixture("ec2_error_unauthorized_operation.xml")))
        .with_priority(1)
        .mount(&server)
        .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(
        dir.path(),
        &server.uri(),
        &["us-east-1", "eu-west-1"],
        QUICK,
    );
    let report = run(&loaded, &["network-traffic-monitoring"], at(NOW)).await;
    // us-east-1 was read: its unlogged VPC is a definite failure; eu-west-1 is one error.
    assert_resources(
        &report,
        "network-traffic-monitoring",
        Status::Fail,
        &["acme/us-east-1/vpc-0lab"],
    );
    assert_resources(
        &report,
        "network-traffic-monitoring",
        Status::Pass,
        &["acme/us-east-1/vpc-0main"],
    );
    assert_resources(
        &report,
        "network-traffic-monitoring",
        Status::Error,
        &["acme/eu-west-1"],
    );
    let e = &findings(&report, "network-traffic-monitoring", Status::Error)[0];
    assert!(
        e.message
            .starts_with("AWS acme/eu-west-1 could not be read"),
        "{}",
        e.message
    );
    assert_eq!(
        outcome(&report, "network-traffic-monitoring").status,
        Status::Fail
    );
}

/// A region that could not be read may hold any number of VPCs: a check expecting a share of
/// them is not satisfied by leaving it out (2 of the 3 resources would be 66%).
#[tokio::test]
async fn an_unreadable_region_never_makes_up_a_percentage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(is("DescribeVpcs"))
        .and(|r: &Request| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("/eu-west-1/ec2/"))
        })
        .respond_with(xml(403, fixture("ec2_error_unauthorized_operation.xml")))
        .with_priority(1)
        .mount(&server)
        .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let text = "id: t\ntitle: T\ncategory: C\ndescription: d\nclaim: system\nowner: o\nseverity: low\nchecks:\n  - probe: aws.ec2.vpcs\n    assert: cidr != ''\n    expect: {percent: 50}\n";
    let (control, _) =
        trellis::catalog::compile_file(std::path::Path::new("t.yaml"), text).unwrap();
    let evaluate = |regions: &'static [&'static str]| {
        let loaded = loaded(dir.path(), &server.uri(), regions, QUICK);
        let control = control.clone();
        async move {
            let ctx = trellis::probes::ProbeContext::for_run(&loaded, at(NOW));
            trellis::runner::execute(&ctx, &[&control], 2, &trellis::runner::NoSink, &|_, _| {})
                .await
                .unwrap()
                .outcomes
                .remove(0)
        }
    };
    // Both us-east-1 VPCs pass; eu-west-1 is denied.
    let o = evaluate(&["us-east-1", "eu-west-1"]).await;
    let verdicts: Vec<(&str, Status)> = o
        .findings
        .iter()
        .map(|f| (f.resource.as_str(), f.status))
        .collect();
    assert_eq!(verdicts.len(), 3, "{verdicts:?}");
    assert_eq!(
        verdicts
            .iter()
            .filter(|(r, s)| r.contains("us-east-1") && *s == Status::Pass)
            .count(),
        2,
        "{verdicts:?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|(r, s)| r.contains("acme/eu-west-1") && *s == Status::Error),
        "{verdicts:?}"
    );
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    assert_eq!(
        o.summary,
        "2 of 3 pass, 1 could not be evaluated (expected: at least 50%); AWS acme/eu-west-1 could not be read and may hold any number of resources"
    );
    // Every region read: the same VPCs pass.
    let o = evaluate(&["us-east-1"]).await;
    assert_eq!(o.status, Status::Pass, "{}", o.summary);
}

#[tokio::test]
async fn an_account_without_a_password_policy_fails_rather_than_errors() {
    let server = MockServer::start().await;
    answer(
        &server,
        "GetAccountPasswordPolicy",
        404,
        "iam_error_no_such_entity.xml",
        None,
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(&loaded, &["complex-passwords"], at(NOW)).await;
    let o = outcome(&report, "complex-passwords");
    assert_eq!(o.checks[0].status, Status::Fail, "{:?}", o.checks[0]);
    let f = findings(&report, "complex-passwords", Status::Fail)
        .into_iter()
        .find(|f| f.resource.contains("password-policy"))
        .unwrap();
    assert_eq!(f.actual.to_value()["present"], false);
    assert!(
        f.message
            .starts_with("password policy of AWS account acme fails"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn every_enabled_region_is_read_when_none_are_configured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(is("DescribeRegions"))
        .respond_with(xml(200, fixture("ec2_describe_regions.xml")))
        .mount(&server)
        .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &[], QUICK);
    let report = run(
        &loaded,
        &["network-traffic-monitoring", "baseline-configurations"],
        at(NOW),
    )
    .await;
    let regions: std::collections::BTreeSet<String> =
        outcome(&report, "network-traffic-monitoring")
            .findings
            .iter()
            .map(|f| f.resource.split('/').nth(1).unwrap().to_string())
            .collect();
    assert_eq!(
        regions.into_iter().collect::<Vec<_>>(),
        ["af-south-1", "eu-west-1", "us-east-1"]
    );
    let c = counts(&server).await;
    assert_eq!(c["DescribeRegions"], 1, "listed once per run: {c:?}");
    assert_eq!(c["DescribeVpcs"], 3, "once per region: {c:?}");
    assert_eq!(c["DescribeInstances"], 3, "once per region: {c:?}");
}

#[tokio::test]
async fn an_assumed_role_signs_every_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(is("AssumeRole"))
        .respond_with(xml(200, fixture("sts_assume_role.xml")))
        .mount(&server)
        .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    // Add the role to the account `loaded` wrote.
    let path = dir.path().join("trellis.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "        endpoint_url:",
        "        assume_role_arn: arn:aws:iam::111122223333:role/TrellisAudit\n        external_id: trellis-7f3a\n        endpoint_url:",
    );
    std::fs::write(&path, text).unwrap();
    let loaded = trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    let report = run(
        &loaded,
        &["network-traffic-monitoring", "complex-passwords"],
        at(NOW),
    )
    .await;
    for o in &report.outcomes {
        assert_ne!(o.status, Status::Error, "{}: {}", o.control_id, o.summary);
    }
    let requests = server.received_requests().await.unwrap();
    let assume: Vec<&Request> = requests
        .iter()
        .filter(|r| action(r) == "AssumeRole")
        .collect();
    assert_eq!(assume.len(), 1, "the role is assumed once per run");
    let b = body(assume[0]);
    assert!(
        b.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2FTrellisAudit"),
        "{b}"
    );
    assert!(b.contains("ExternalId=trellis-7f3a"), "{b}");
    // The base credentials only assume the role; everything else is signed as the role.
    let signer = |r: &Request| {
        r.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert!(signer(assume[0]).contains("Credential=AKIATESTTESTTESTTEST/"));
    for r in requests.iter().filter(|r| action(r) != "AssumeRole") {
        assert!(
            signer(r).contains("Credential=ASIAASSUMEDROLEKEY01/"),
            "{}: {}",
            action(r),
            signer(r)
        );
        assert_eq!(
            r.headers
                .get("x-amz-security-token")
                .and_then(|v| v.to_str().ok()),
            Some("IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN")
        );
    }
}

#[tokio::test]
async fn a_credential_report_still_being_generated_is_waited_for() {
    let server = MockServer::start().await;
    answer(
        &server,
        "GenerateCredentialReport",
        200,
        "iam_generate_credential_report_started.xml",
        Some(1),
    )
    .await;
    answer(
        &server,
        "GetCredentialReport",
        404,
        "iam_error_report_in_progress.xml",
        Some(1),
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], QUICK);
    let report = run(&loaded, &["access-to-product-is-restricted"], at(NOW)).await;
    let o = outcome(&report, "access-to-product-is-restricted");
    assert_eq!(o.status, Status::Fail, "{}", o.summary);
    // STARTED, read too early (in progress), then COMPLETE and read.
    let c = counts(&server).await;
    assert_eq!(c["GenerateCredentialReport"], 2, "{c:?}");
    assert_eq!(c["GetCredentialReport"], 2, "{c:?}");
}

#[tokio::test]
async fn a_credential_report_that_never_completes_is_an_error() {
    let server = MockServer::start().await;
    answer(
        &server,
        "GenerateCredentialReport",
        200,
        "iam_generate_credential_report_started.xml",
        None,
    )
    .await;
    answer(
        &server,
        "GetCredentialReport",
        404,
        "iam_error_report_in_progress.xml",
        None,
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{QUICK}    credential_report_wait: 1s\n");
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], &extra);
    let report = run(&loaded, &["access-to-product-is-restricted"], at(NOW)).await;
    let o = outcome(&report, "access-to-product-is-restricted");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    let e = &findings(&report, "access-to-product-is-restricted", Status::Error)[0];
    assert!(
        e.message.contains(
            "GenerateCredentialReport in acme: IAM had not finished the credential report after 1s"
        ),
        "{}",
        e.message
    );
}

/// The default retry mode (adaptive) recovers from throttling too.
#[tokio::test]
async fn adaptive_retry_recovers_from_throttling() {
    let server = MockServer::start().await;
    answer(
        &server,
        "DescribeVpcs",
        503,
        "ec2_error_request_limit_exceeded.xml",
        Some(1),
    )
    .await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "    max_attempts: 3\n    initial_backoff: 1ms\n";
    let loaded = loaded(dir.path(), &server.uri(), &["us-east-1"], extra);
    assert_eq!(
        loaded.config.sources.aws.as_ref().unwrap().retry_mode,
        trellis::config::AwsRetryMode::Adaptive
    );
    let report = run(&loaded, &["network-traffic-monitoring"], at(NOW)).await;
    let o = outcome(&report, "network-traffic-monitoring");
    assert_eq!(o.status, Status::Fail, "{}", o.summary);
    assert_eq!(counts(&server).await["DescribeVpcs"], 2);
}
