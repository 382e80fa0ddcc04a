//! The AWS probes and controls against moto server (a local AWS): planted violations are
//! found, clean resources pass. moto is installed into `.venv` by `scripts/test`; its path can
//! be overridden with `TRELLIS_MOTO_SERVER`.
//!
//! moto quirks these tests live with: its credential report has no root row (root checks are
//! not applicable there; the account summary covers root); it reports root MFA as off; it does
//! not apply EBS encryption by default to new volumes (so volumes are created encrypted
//! explicitly); it ignores page sizes (pagination is tested with wiremock).

use crate::common::aws as common;
use crate::common::moto;

use std::process::Command;

use moto::Moto;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, FlowLogsResourceType, HttpTokensState,
    InstanceMetadataOptionsRequest, InstanceType, IpPermission, IpRange, Ipv6Range, ResourceType,
    Tag, TagSpecification, TrafficType,
};
use chrono::Utc;
use common::{assert_resources, findings, loaded, outcome, run};
use trellis::model::Status;

const STAR: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// An IAM user; `console` gives a password, `mfa` a virtual MFA device.
async fn user(
    iam: &aws_sdk_iam::Client,
    name: &str,
    group: Option<&str>,
    console: bool,
    mfa: bool,
) {
    iam.create_user().user_name(name).send().await.unwrap();
    if let Some(g) = group {
        iam.add_user_to_group()
            .group_name(g)
            .user_name(name)
            .send()
            .await
            .unwrap();
    }
    if console {
        iam.create_login_profile()
            .user_name(name)
            .password("correct-horse-battery-staple-1!")
            .send()
            .await
            .unwrap();
    }
    if mfa {
        let device = iam
            .create_virtual_mfa_device()
            .virtual_mfa_device_name(format!("{name}-mfa"))
            .send()
            .await
            .unwrap();
        let serial = device
            .virtual_mfa_device()
            .unwrap()
            .serial_number()
            .to_string();
        iam.enable_mfa_device()
            .user_name(name)
            .serial_number(serial)
            .authentication_code1("123456")
            .authentication_code2("654321")
            .send()
            .await
            .unwrap();
    }
}

async fn group(iam: &aws_sdk_iam::Client, name: &str, policy_arn: &str) {
    iam.create_group().group_name(name).send().await.unwrap();
    iam.attach_group_policy()
        .group_name(name)
        .policy_arn(policy_arn)
        .send()
        .await
        .unwrap();
}

async fn security_group(ec2: &aws_sdk_ec2::Client, name: &str, rules: Vec<IpPermission>) -> String {
    let id = ec2
        .create_security_group()
        .group_name(name)
        .description(name)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    if !rules.is_empty() {
        ec2.authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(rules))
            .send()
            .await
            .unwrap();
    }
    id
}

fn rule(protocol: &str, port: i32, v4: Option<&str>, v6: Option<&str>) -> IpPermission {
    let mut p = IpPermission::builder().ip_protocol(protocol);
    if protocol != "-1" {
        p = p.from_port(port).to_port(port);
    }
    if let Some(c) = v4 {
        p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
    }
    if let Some(c) = v6 {
        p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build());
    }
    p.build()
}

/// An instance with an encrypted root volume; `imdsv2` requires tokens; `owner` tags it.
async fn instance(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    imdsv2: bool,
    owner: Option<&str>,
) -> String {
    let image = "ami-0abcdef1234567890";
    let mut tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("Name").value(name).build());
    if let Some(o) = owner {
        tags = tags.tags(Tag::builder().key("Owner").value(o).build());
    }
    let tokens = if imdsv2 {
        HttpTokensState::Required
    } else {
        HttpTokensState::Optional
    };
    ec2.run_instances()
        .image_id(image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(tokens)
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sda1")
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(8)
                        .encrypted(true)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(tags.build())
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

/// The volumes attached to `instance`.
async fn volumes_of(ec2: &aws_sdk_ec2::Client, instance: &str) -> Vec<String> {
    ec2.describe_volumes()
        .send()
        .await
        .unwrap()
        .volumes()
        .iter()
        .filter(|v| {
            v.attachments()
                .iter()
                .any(|a| a.instance_id() == Some(instance))
        })
        .filter_map(|v| v.volume_id().map(str::to_string))
        .collect()
}

async fn snapshot(ec2: &aws_sdk_ec2::Client, volume: &str) {
    ec2.create_snapshot()
        .volume_id(volume)
        .send()
        .await
        .unwrap();
}

async fn default_vpc(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string()
}

/// A flow log for `vpc` into a CloudWatch log group, which `deliverable` creates first (moto,
/// like AWS, reports delivery to a missing group as FAILED).
async fn flow_log(moto: &Moto, region: &str, vpc: &str, deliverable: bool) {
    if deliverable {
        // No CloudWatch Logs SDK in this project: the JSON call, by hand.
        let created = reqwest::Client::new()
            .post(format!("{}/", moto.url))
            .header("x-amz-target", "Logs_20140328.CreateLogGroup")
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/logs/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .body(format!(r#"{{"logGroupName": "/vpc/{vpc}"}}"#))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{:?}", created.text().await);
    }
    let ec2 = moto.ec2(region);
    ec2.create_flow_logs()
        .resource_ids(vpc)
        .resource_type(FlowLogsResourceType::Vpc)
        .traffic_type(TrafficType::All)
        .log_group_name(format!("/vpc/{vpc}"))
        .deliver_logs_permission_arn("arn:aws:iam::123456789012:role/flow-logs")
        .send()
        .await
        .unwrap();
}

/// One moto server, reset between scenarios.
#[tokio::test]
async fn moto_scenarios() {
    let moto = Moto::start().await;
    planted_violations_are_found(&moto).await;
    moto.reset().await;
    clean_resources_pass(&moto).await;
    moto.reset().await;
    the_cli_reads_aws_through_the_default_credential_chain(&moto).await;
}

async fn planted_violations_are_found(moto: &Moto) {
    let iam = moto.iam();
    iam.update_account_password_policy()
        .minimum_password_length(8)
        .send()
        .await
        .unwrap();
    group(
        &iam,
        "engineering",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
    )
    .await;
    user(&iam, "maria.garcia", Some("engineering"), true, true).await;
    user(&iam, "tom.nguyen", None, true, false).await;
    iam.attach_user_policy()
        .user_name("tom.nguyen")
        .policy_arn("arn:aws:iam::aws:policy/AdministratorAccess")
        .send()
        .await
        .unwrap();
    user(&iam, "deploy", None, false, false).await;
    iam.put_user_policy()
        .user_name("deploy")
        .policy_name("everything")
        .policy_document(STAR)
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        iam.create_access_key()
            .user_name("deploy")
            .send()
            .await
            .unwrap();
    }

    let east = moto.ec2("us-east-1");
    let ssh = security_group(
        &east,
        "ssh-open",
        vec![rule("tcp", 22, Some("0.0.0.0/0"), None)],
    )
    .await;
    let https = security_group(
        &east,
        "https",
        vec![rule("tcp", 443, Some("0.0.0.0/0"), Some("::/0"))],
    )
    .await;
    let all = security_group(
        &east,
        "everything",
        vec![rule("-1", 0, Some("0.0.0.0/0"), None)],
    )
    .await;
    let db = security_group(&east, "db-v6", vec![rule("tcp", 5432, None, Some("::/0"))]).await;
    let office = security_group(
        &east,
        "office-ssh",
        vec![rule("tcp", 22, Some("203.0.113.0/24"), None)],
    )
    .await;
    east.enable_ebs_encryption_by_default()
        .send()
        .await
        .unwrap();
    let good = instance(&east, "web-1", true, Some("platform@acme.example")).await;
    let bad = instance(&east, "legacy-1", false, None).await;
    for v in volumes_of(&east, &good).await {
        snapshot(&east, &v).await;
    }
    let plain = east
        .create_volume()
        .availability_zone("us-east-1a")
        .size(20)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    flow_log(moto, "us-east-1", &default_vpc(&east).await, true).await;
    let lab = east
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    // The lab VPC's flow log cannot deliver: it does not count.
    flow_log(moto, "us-east-1", &lab, false).await;
    let west_vpc = default_vpc(&moto.ec2("eu-west-1")).await;

    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &moto.url, &["us-east-1", "eu-west-1"], "");
    let report = run(&loaded, &[], Utc::now()).await;
    for o in &report.outcomes {
        assert_ne!(o.status, Status::Error, "{}: {}", o.control_id, o.summary);
    }
    use Status::{Fail, NotApplicable, Pass};

    // Password policy of 8 without reuse prevention; tom.nguyen signs in without MFA.
    assert_eq!(outcome(&report, "complex-passwords").status, Fail);
    assert_resources(
        &report,
        "complex-passwords",
        Fail,
        &["password-policy", "user/tom.nguyen"],
    );
    assert_resources(&report, "complex-passwords", Pass, &["user/maria.garcia"]);

    // AdministratorAccess on tom.nguyen; `*:*` inline on deploy. (moto reports root MFA off.)
    assert_resources(
        &report,
        "administrative-access-is-restricted",
        Fail,
        &["user/tom.nguyen", "user/deploy", "aws:acme:iam:account"],
    );
    assert_resources(
        &report,
        "administrative-access-is-restricted",
        Pass,
        &["user/maria.garcia"],
    );

    // deploy holds two active access keys.
    assert_resources(
        &report,
        "access-to-product-is-restricted",
        Fail,
        &["user/deploy"],
    );
    let keys = &findings(&report, "access-to-product-is-restricted", Fail)[0];
    assert_eq!(keys.actual.to_value()["active_access_keys"], 2);

    // Direct policies on tom.nguyen and deploy, and deploy's inline `*:*`.
    assert_resources(
        &report,
        "least-privilege-in-use",
        Fail,
        &[
            "user/tom.nguyen",
            "user/deploy",
            "user/deploy#inline/everything",
        ],
    );
    assert_resources(
        &report,
        "least-privilege-in-use",
        Pass,
        &["user/maria.garcia"],
    );

    // The generic `deploy` user; no root row in moto's report, so the root check is not
    // applicable.
    assert_resources(&report, "unique-access-ids", Fail, &["user/deploy"]);
    assert_eq!(
        outcome(&report, "unique-access-ids").checks[0].status,
        NotApplicable
    );

    // SSH, all traffic and PostgreSQL over IPv6 from the internet; HTTPS is fine; office SSH is
    // out of scope.
    assert_resources(
        &report,
        "restricted-port-configurations",
        Fail,
        &[&ssh, &all, &db],
    );
    assert_resources(
        &report,
        "restricted-port-configurations",
        Pass,
        &[&https, &https],
    );
    assert!(
        findings(&report, "restricted-port-configurations", NotApplicable)
            .iter()
            .any(|f| f.resource.contains(&office))
    );

    // Encryption by default on in us-east-1 (in use); eu-west-1 has nothing, so it does not
    // apply. The extra volume was created unencrypted.
    assert_resources(&report, "encryption-at-rest", Fail, &[&plain]);
    assert_resources(
        &report,
        "encryption-at-rest",
        NotApplicable,
        &["acme/eu-west-1/ebs-encryption"],
    );
    assert!(
        findings(&report, "encryption-at-rest", Pass)
            .iter()
            .any(|f| f.resource.contains("acme/us-east-1/ebs-encryption"))
    );

    // Flow log on us-east-1's default VPC only.
    assert_resources(
        &report,
        "network-traffic-monitoring",
        Fail,
        &[&lab, &west_vpc],
    );

    assert_resources(&report, "baseline-configurations", Fail, &[&bad]);
    assert_resources(&report, "baseline-configurations", Pass, &[&good]);
    assert_resources(&report, "asset-inventory", Fail, &[&bad]);
    assert_resources(&report, "asset-inventory", Pass, &[&good]);

    // web-1's volumes were snapshotted just now; legacy-1's were not. The unattached volume
    // is out of scope.
    let bad_volumes = volumes_of(&east, &bad).await;
    let bad_refs: Vec<&str> = bad_volumes.iter().map(String::as_str).collect();
    assert_resources(&report, "automated-backup-process", Fail, &bad_refs);
    let good_volumes = volumes_of(&east, &good).await;
    let good_refs: Vec<&str> = good_volumes.iter().map(String::as_str).collect();
    assert_resources(&report, "automated-backup-process", Pass, &good_refs);
}

async fn clean_resources_pass(moto: &Moto) {
    let iam = moto.iam();
    iam.update_account_password_policy()
        .minimum_password_length(16)
        .password_reuse_prevention(24)
        .require_symbols(true)
        .send()
        .await
        .unwrap();
    group(
        &iam,
        "engineering",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
    )
    .await;
    user(&iam, "maria.garcia", Some("engineering"), true, true).await;
    user(&iam, "li.wei", Some("engineering"), true, true).await;
    iam.create_access_key()
        .user_name("li.wei")
        .send()
        .await
        .unwrap();

    for region in ["us-east-1", "eu-west-1"] {
        let ec2 = moto.ec2(region);
        security_group(
            &ec2,
            "https",
            vec![rule("tcp", 443, Some("0.0.0.0/0"), Some("::/0"))],
        )
        .await;
        ec2.enable_ebs_encryption_by_default().send().await.unwrap();
        flow_log(moto, region, &default_vpc(&ec2).await, true).await;
    }
    let east = moto.ec2("us-east-1");
    let web = instance(&east, "web-1", true, Some("platform@acme.example")).await;
    for v in volumes_of(&east, &web).await {
        snapshot(&east, &v).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path(), &moto.url, &["us-east-1", "eu-west-1"], "");
    let report = run(&loaded, &[], Utc::now()).await;
    for o in &report.outcomes {
        for (i, check) in o.checks.iter().enumerate() {
            // moto always reports the root user without MFA: the one thing a clean moto
            // account cannot pass.
            if o.control_id == "administrative-access-is-restricted" && i == 1 {
                assert_eq!(check.status, Status::Fail);
                let root = &findings(&report, &o.control_id, Status::Fail)[0];
                assert_eq!(root.actual.to_value()["root_mfa_enabled"], false);
                continue;
            }
            // The GitHub parts of shared controls, and the identity join (which needs the HR
            // roster): not configured here, so not verified.
            if check.probe.starts_with("github.") || check.probe == "identity.accounts" {
                assert_eq!(check.status, Status::Error, "{check:?}");
                assert!(check.summary.contains("is not configured"), "{check:?}");
                continue;
            }
            assert!(
                matches!(check.status, Status::Pass | Status::NotApplicable),
                "{} check {i}: {:?}\n{:#?}",
                o.control_id,
                check,
                o.findings
            );
        }
    }
    // Nothing passed vacuously where there was something to check.
    for id in [
        "least-privilege-in-use",
        "restricted-port-configurations",
        "encryption-at-rest",
        "network-traffic-monitoring",
        "asset-inventory",
        "automated-backup-process",
    ] {
        assert_eq!(outcome(&report, id).status, Status::Pass, "{id}");
        assert!(!findings(&report, id, Status::Pass).is_empty(), "{id}");
    }
    // Controls with a GitHub part pass their AWS checks but are not verified as a whole.
    for id in ["complex-passwords", "baseline-configurations"] {
        assert_eq!(outcome(&report, id).status, Status::Error, "{id}");
        assert!(!findings(&report, id, Status::Pass).is_empty(), "{id}");
    }
}

/// The binary, configured only through the environment's default credential chain (static
/// test keys, instance metadata disabled), as an operator would run it.
async fn the_cli_reads_aws_through_the_default_credential_chain(moto: &Moto) {
    let east = moto.ec2("us-east-1");
    let ssh = security_group(
        &east,
        "ssh-open",
        vec![rule("tcp", 22, Some("0.0.0.0/0"), None)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("trellis.yaml");
    std::fs::write(
        &cfg,
        format!(
            "controls_dir: {}\nsources:\n  aws:\n    accounts:\n      - name: acme\n        regions: [us-east-1]\n        endpoint_url: {}\n",
            common::repo().join("controls").display(),
            moto.url
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["--config"])
        .arg(&cfg)
        .args([
            "check",
            "--no-store",
            "--format",
            "json",
            "--control",
            "restricted-port-configurations",
        ])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["controls"][0];
    assert_eq!(c["status"], "fail", "{c}");
    let failing: Vec<&str> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["resource"].as_str().unwrap())
        .collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(failing[0].contains(&ssh), "{failing:?}");
}
