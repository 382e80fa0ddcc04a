//! `aws.accounts` and the segregation-of-environments control against moto: an account's
//! environment comes from the config or its Organizations tag; instances tagged with another
//! environment, and two configured names for one AWS account, are other environments.

use std::path::Path;

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use trellis::config::Loaded;
use trellis::model::{Finding, Status};

use crate::common::aws::{at, run};
use crate::common::moto::Moto;

const CONTROL: &str = "segregation-of-environments";

/// A config with `accounts` (name, environment or none), every one at moto.
fn config(dir: &Path, moto: &Moto, accounts: &[(&str, Option<&str>)]) -> Loaded {
    let mut text = format!(
        "controls_dir: {}\nsources:\n  aws:\n    accounts:\n",
        crate::common::aws::repo().join("controls").display()
    );
    for (name, env) in accounts {
        text.push_str(&format!(
            "      - name: {name}\n        regions: [eu-west-1, us-east-1]\n        endpoint_url: {}\n",
            moto.url
        ));
        if let Some(env) = env {
            text.push_str(&format!("        environment: {env}\n"));
        }
    }
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn tagged_instance(moto: &Moto, region: &str, env: &str) -> String {
    moto.ec2(region)
        .run_instances()
        .image_id("ami-0abcdef1234567890")
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("Environment").value(env).build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

/// The findings of the control's `aws.accounts` check (its first).
async fn account_findings(loaded: &Loaded) -> Vec<Finding> {
    let report = run(loaded, &[CONTROL], at("2026-12-03T08:00:00Z")).await;
    let outcome = report
        .outcomes
        .iter()
        .find(|o| o.control_id == CONTROL)
        .unwrap();
    outcome
        .findings
        .iter()
        .filter(|f| f.check == 0)
        .cloned()
        .collect()
}

fn finding<'a>(findings: &'a [Finding], account: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.resource == format!("aws:{account}"))
        .unwrap_or_else(|| panic!("no finding for {account}: {findings:#?}"))
}

#[tokio::test]
async fn account_environments() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();

    // A production account holding only production: pass, with its id and regions.
    moto.reset().await;
    tagged_instance(&moto, "eu-west-1", "prod").await;
    let findings = account_findings(&config(
        dir.path(),
        &moto,
        &[("production", Some("production"))],
    ))
    .await;
    let f = finding(&findings, "production");
    assert_eq!(f.status, Status::Pass, "{f:#?}");

    // A staging instance in production (us-east-1): fail, naming the instance and region.
    tagged_instance(&moto, "us-east-1", "Staging").await;
    let findings = account_findings(&config(
        dir.path(),
        &moto,
        &[("production", Some("production"))],
    ))
    .await;
    let f = finding(&findings, "production");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["other_environments"],
        serde_json::json!(["staging"]),
        "{f:#?}"
    );

    // Undeclared, and Organizations not in use: no environment, fail (never assumed).
    moto.reset().await;
    let findings = account_findings(&config(dir.path(), &moto, &[("main", None)])).await;
    let f = finding(&findings, "main");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["environment"],
        serde_json::Value::Null,
        "{f:#?}"
    );

    // Undeclared, but tagged in Organizations: the tag is the environment.
    let sdk = moto.sdk("us-east-1");
    let org = aws_sdk_organizations::Client::new(&sdk);
    org.create_organization().send().await.unwrap();
    let sts = aws_sdk_sts::Client::new(&sdk);
    let id = sts
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .account()
        .unwrap()
        .to_string();
    org.tag_resource()
        .resource_id(&id)
        .tags(
            aws_sdk_organizations::types::Tag::builder()
                .key("Environment")
                .value("production")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let findings = account_findings(&config(dir.path(), &moto, &[("main", None)])).await;
    let f = finding(&findings, "main");
    assert_eq!(f.status, Status::Pass, "{f:#?}");

    // Declared development but tagged production in Organizations: two environments, fail.
    let findings =
        account_findings(&config(dir.path(), &moto, &[("main", Some("development"))])).await;
    let f = finding(&findings, "main");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["other_environments"],
        serde_json::json!(["production"]),
        "{f:#?}"
    );

    // Two configured names that are one AWS account: production shares it with staging.
    moto.reset().await;
    let findings = account_findings(&config(
        dir.path(),
        &moto,
        &[
            ("production", Some("production")),
            ("staging", Some("staging")),
        ],
    ))
    .await;
    assert_eq!(
        finding(&findings, "production").status,
        Status::Fail,
        "{findings:#?}"
    );
    assert_eq!(
        finding(&findings, "production").actual.to_value()["other_environments"],
        serde_json::json!(["staging"])
    );
    assert_eq!(finding(&findings, "staging").status, Status::Fail);
}

/// Faults, against wiremock: STS refusing the caller's identity and EC2 refusing the
/// instances are `error` naming the permission; Organizations refusing its tags is no fault
/// (the tag is optional evidence) when the config declares the environment.
mod faults {
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            crate::common::aws::repo()
                .join("tests/fixtures/aws")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn is(action: &'static str) -> impl Fn(&Request) -> bool + Send + Sync + 'static {
        move |r: &Request| {
            String::from_utf8_lossy(&r.body)
                .split('&')
                .any(|kv| kv == format!("Action={action}"))
        }
    }

    fn xml(status: u16, text: String) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_raw(text, "text/xml")
    }

    const IDENTITY: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::210987654321:assumed-role/TrellisAudit/trellis-audit</Arn>
    <UserId>AROAEXAMPLEID:trellis-audit</UserId>
    <Account>210987654321</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

    const STS_DENIED: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::210987654321:user/trellis is not authorized to perform: sts:GetCallerIdentity</Message>
  </Error>
  <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
</ErrorResponse>"#;

    /// Every call answered as in a member account of an organisation: identity read,
    /// Organizations refused, instances listed (none tagged with an environment).
    async fn member_account(server: &MockServer) {
        Mock::given(method("POST"))
            .and(is("GetCallerIdentity"))
            .respond_with(xml(200, IDENTITY.to_string()))
            .with_priority(10)
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(header(
                "x-amz-target",
                "AWSOrganizationsV20161128.ListTagsForResource",
            ))
            .respond_with(
                ResponseTemplate::new(400)
                    .insert_header("x-amzn-ErrorType", "AccessDeniedException")
                    .set_body_raw(
                        r#"{"__type":"AccessDeniedException","Message":"You don't have permissions to access this resource."}"#,
                        "application/x-amz-json-1.1",
                    ),
            )
            .with_priority(10)
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(is("DescribeInstances"))
            .respond_with(xml(200, fixture("ec2_describe_instances.xml")))
            .with_priority(10)
            .mount(server)
            .await;
    }

    fn config(dir: &Path, server: &MockServer, environment: &str) -> Loaded {
        let creds = dir.join("aws-credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIATESTTESTTESTTEST\naws_secret_access_key = testing-secret\n",
        )
        .unwrap();
        let text = format!(
            "controls_dir: {}\nsources:\n  aws:\n    max_attempts: 2\n    initial_backoff: 1ms\n    retry_mode: standard\n    accounts:\n      - name: production\n        environment: {environment}\n        regions: [eu-west-1]\n        endpoint_url: {}\n        credentials_file: {}\n",
            crate::common::aws::repo().join("controls").display(),
            server.uri(),
            creds.display()
        );
        let path = dir.join("trellis.yaml");
        std::fs::write(&path, &text).unwrap();
        trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[tokio::test]
    async fn organizations_refusing_its_tags_is_no_fault() {
        let server = MockServer::start().await;
        member_account(&server).await;
        let dir = tempfile::tempdir().unwrap();
        let findings = account_findings(&config(dir.path(), &server, "production")).await;
        let f = finding(&findings, "production");
        assert_eq!(f.status, Status::Pass, "{f:#?}");
        assert!(f.message.contains("210987654321"), "{}", f.message);
    }

    #[tokio::test]
    async fn refused_identity_or_instances_are_errors_naming_the_permission() {
        for (action, file, permission) in [
            ("GetCallerIdentity", None, "sts:GetCallerIdentity"),
            (
                "DescribeInstances",
                Some("ec2_error_unauthorized_operation.xml"),
                "ec2:DescribeInstances",
            ),
        ] {
            let server = MockServer::start().await;
            let body = match file {
                Some(f) => fixture(f),
                None => STS_DENIED.to_string(),
            };
            Mock::given(method("POST"))
                .and(is(action))
                .respond_with(xml(403, body))
                .with_priority(1)
                .mount(&server)
                .await;
            member_account(&server).await;
            let dir = tempfile::tempdir().unwrap();
            let findings = account_findings(&config(dir.path(), &server, "production")).await;
            let f = finding(&findings, "production");
            assert_eq!(f.status, Status::Error, "{action}: {f:#?}");
            assert!(
                f.message.contains(&format!("`{permission}`")),
                "{action}: {}",
                f.message
            );
        }
    }
}
