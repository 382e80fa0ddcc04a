//! `aws.elbv2.load_balancers` and `aws.monitoring.targets`, through the controls that read
//! them (high availability, encryption in transit, uptime monitoring).
//!
//! - Against moto (Elastic Load Balancing v2, Route 53, ACM for the certificates), behind a
//!   wiremock front that answers CloudWatch itself: the Rust SDK speaks Smithy RPC v2 CBOR
//!   to CloudWatch, which moto 5.2.5 does not serve. Planted violators and clean resources.
//! - Against wiremock alone: multi-page listings (moto ignores page sizes), one request per
//!   page per run, and AccessDenied, 5xx and timeouts on every new API — `error`, never pass.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use trellis::config::Loaded;
use trellis::model::{Finding, Status};
use trellis::runner::RunReport;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::aws::{at, repo};
use crate::common::moto::Moto;

const NOW: &str = "2026-12-03T08:00:00Z";
const HA: &str = "high-availability-configuration";
const TRANSIT: &str = "encryption-in-transit";
const UPTIME: &str = "uptime-and-availability-monitoring";
/// The index of the load-balancer check in encryption-in-transit (appended last).
const TRANSIT_LB_CHECK: usize = 2;

/// Fast retries and timeouts for the fault tests.
const QUICK: &str = "    max_attempts: 2\n    initial_backoff: 1ms\n    call_timeout: 1s\n    retry_mode: standard\n";

/// A config with one account `acme` at `endpoint` (if any) and `endpoints` as
/// `sources.http.endpoints` (if any).
fn config(
    dir: &Path,
    endpoint: Option<&str>,
    regions: &[&str],
    endpoints: &[&str],
    extra: &str,
) -> Loaded {
    let mut text = format!(
        "controls_dir: {}\nsources:\n",
        repo().join("controls").display()
    );
    if let Some(endpoint) = endpoint {
        let creds = dir.join("aws-credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIATESTTESTTESTTEST\naws_secret_access_key = testing-secret\n",
        )
        .unwrap();
        text.push_str(&format!(
            "  aws:\n{extra}    accounts:\n      - name: acme\n        regions: [{}]\n        endpoint_url: {endpoint}\n        credentials_file: {}\n",
            regions.join(", "),
            creds.display()
        ));
    }
    if !endpoints.is_empty() {
        text.push_str(&format!(
            "  http:\n    endpoints: [{}]\n",
            endpoints.join(", ")
        ));
    }
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn run(loaded: &Loaded, ids: &[&str]) -> RunReport {
    crate::common::aws::run(loaded, ids, at(NOW)).await
}

fn check_findings<'a>(report: &'a RunReport, control: &str, check: usize) -> Vec<&'a Finding> {
    crate::common::aws::outcome(report, control)
        .findings
        .iter()
        .filter(|f| f.check == check)
        .collect()
}

/// The resources of one check with `status`, exactly `expected` (by substring, any order).
#[track_caller]
fn assert_check(
    report: &RunReport,
    control: &str,
    check: usize,
    status: Status,
    expected: &[&str],
) {
    let all = check_findings(report, control, check);
    let got: Vec<&str> = all
        .iter()
        .filter(|f| f.status == status)
        .map(|f| f.resource.as_str())
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{control}[{check}]: {status} resources {got:#?}, expected {expected:?}\n{all:#?}"
    );
    for want in expected {
        assert!(
            got.iter().any(|g| g.contains(want)),
            "{control}[{check}]: no {status} finding for {want} in {got:#?}"
        );
    }
}

#[track_caller]
fn finding<'a>(report: &'a RunReport, control: &str, check: usize, resource: &str) -> &'a Finding {
    check_findings(report, control, check)
        .into_iter()
        .find(|f| f.resource.contains(resource))
        .unwrap_or_else(|| panic!("{control}[{check}]: no finding for {resource}"))
}

// ----------------------------------------------------------------------------------------
// CloudWatch in Smithy RPC v2 CBOR

fn cbor_value(e: &mut aws_smithy_cbor::Encoder, v: &Value) {
    match v {
        Value::Null => {
            e.null();
        }
        Value::Bool(b) => {
            e.boolean(*b);
        }
        Value::Number(n) => {
            e.long(n.as_i64().unwrap());
        }
        Value::String(s) => {
            e.str(s);
        }
        Value::Array(items) => {
            e.array(items.len());
            for i in items {
                cbor_value(e, i);
            }
        }
        Value::Object(map) => {
            e.map(map.len());
            for (k, v) in map {
                e.str(k);
                cbor_value(e, v);
            }
        }
    }
}

fn cbor(status: u16, v: &Value) -> ResponseTemplate {
    let mut e = aws_smithy_cbor::Encoder::new(Vec::new());
    cbor_value(&mut e, v);
    ResponseTemplate::new(status)
        .insert_header("smithy-protocol", "rpc-v2-cbor")
        .set_body_raw(e.into_writer(), "application/cbor")
}

/// A metric alarm as DescribeAlarms lists it.
fn alarm(name: &str, dimensions: &[(&str, &str)], actions: &[&str], enabled: bool) -> Value {
    let namespace = if dimensions.iter().any(|(n, _)| *n == "HealthCheckId") {
        ("AWS/Route53", "HealthCheckStatus")
    } else {
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count")
    };
    json!({
        "AlarmName": name,
        "AlarmArn": format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"),
        "ActionsEnabled": enabled,
        "AlarmActions": actions,
        "Namespace": namespace.0,
        "MetricName": namespace.1,
        "Dimensions": dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
        "StateValue": "OK",
    })
}

const SNS: &str = "arn:aws:sns:eu-west-1:123456789012:oncall";

fn is_cloudwatch(r: &Request) -> bool {
    r.url.path() == "/service/GraniteServiceVersion20100801/operation/DescribeAlarms"
}

/// The region a request is signed for (from its credential scope).
fn signed_region(r: &Request) -> String {
    r.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("")
        .to_string()
}

fn has_bytes(r: &Request, needle: &str) -> bool {
    r.body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Answers DescribeAlarms in `region` with `alarms` (one page).
async fn mount_alarms(server: &MockServer, region: &'static str, alarms: Vec<Value>) {
    Mock::given(is_cloudwatch)
        .and(move |r: &Request| signed_region(r) == region)
        .respond_with(cbor(200, &json!({"MetricAlarms": alarms})))
        .with_priority(5)
        .mount(server)
        .await;
}

// ----------------------------------------------------------------------------------------
// The moto front: CloudWatch answered here, everything else forwarded to moto.

struct Forward(String);

impl Respond for Forward {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let mut url = format!("{}{}", self.0, r.url.path());
        if let Some(q) = r.url.query() {
            url.push('?');
            url.push_str(q);
        }
        let method = r.method.clone();
        let headers = r.headers.clone();
        let body = r.body.clone();
        // wiremock answers on its own thread; forward on another with its own runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut req = reqwest::Client::new().request(method, &url).body(body);
                for (k, v) in &headers {
                    if k != "host" && k != "content-length" {
                        req = req.header(k, v);
                    }
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("text/xml")
                    .to_string();
                let mut template = ResponseTemplate::new(status);
                for (k, v) in resp.headers() {
                    if !matches!(
                        k.as_str(),
                        "content-type" | "content-length" | "transfer-encoding" | "connection"
                    ) {
                        template = template.insert_header(k.as_str(), v.to_str().unwrap_or(""));
                    }
                }
                let bytes = resp.bytes().await.unwrap().to_vec();
                template.set_body_raw(bytes, &content_type)
            })
        })
        .join()
        .unwrap()
    }
}

/// A raw JSON-protocol call to moto (ACM has no SDK crate in this project).
async fn moto_json(moto: &Moto, service: &str, target: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(&moto.url)
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20261203/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

struct Planted {
    good: String,
    legacy: String,
    single: String,
}

fn suffix(arn: &str) -> String {
    arn.split_once(":loadbalancer/").unwrap().1.to_string()
}

/// In moto (eu-west-1): `good` (two zones, HTTP redirecting to HTTPS, TLS 1.2+ policy),
/// `legacy` (two zones, HTTP forwarding, ELBSecurityPolicy-2016-08), `single` (one zone,
/// HTTPS with TLS 1.2+), `private` (internal, plain HTTP: not public, so in no population
/// that asks for internet-facing ones); a Route 53 health check of app.example.test.
async fn plant(moto: &Moto) -> (Planted, String) {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, Certificate, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
        ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum,
    };
    let sdk = moto.sdk("eu-west-1");
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut subnets = Vec::new();
    for (zone, cidr) in [("eu-west-1a", "10.0.1.0/24"), ("eu-west-1b", "10.0.2.0/24")] {
        subnets.push(
            ec2.create_subnet()
                .vpc_id(&vpc)
                .cidr_block(cidr)
                .availability_zone(zone)
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string(),
        );
    }
    let cert = moto_json(
        moto,
        "acm",
        "CertificateManager.RequestCertificate",
        json!({"DomainName": "app.example.test"}),
    )
    .await["CertificateArn"]
        .as_str()
        .unwrap()
        .to_string();

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let tg = elb
        .create_target_group()
        .name("web")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(&tg)
        .build();
    let redirect = Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(
            RedirectActionConfig::builder()
                .protocol("HTTPS")
                .port("443")
                .status_code(RedirectActionStatusCodeEnum::Http301)
                .build(),
        )
        .build();
    let lb = async |name: &str, scheme: LoadBalancerSchemeEnum, zones: usize| -> String {
        elb.create_load_balancer()
            .name(name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(scheme)
            .set_subnets(Some(subnets[..zones].to_vec()))
            .send()
            .await
            .unwrap()
            .load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string()
    };
    let listener = async |arn: &str, port: i32, policy: Option<&str>, action: &Action| {
        let mut req = elb
            .create_listener()
            .load_balancer_arn(arn)
            .port(port)
            .default_actions(action.clone());
        req = match policy {
            Some(p) => req
                .protocol(ProtocolEnum::Https)
                .ssl_policy(p)
                .certificates(Certificate::builder().certificate_arn(&cert).build()),
            None => req.protocol(ProtocolEnum::Http),
        };
        req.send().await.unwrap();
    };
    let good = lb("good", LoadBalancerSchemeEnum::InternetFacing, 2).await;
    listener(&good, 80, None, &redirect).await;
    listener(
        &good,
        443,
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06"),
        &forward,
    )
    .await;
    let legacy = lb("legacy", LoadBalancerSchemeEnum::InternetFacing, 2).await;
    listener(&legacy, 80, None, &forward).await;
    listener(&legacy, 443, Some("ELBSecurityPolicy-2016-08"), &forward).await;
    let single = lb("single", LoadBalancerSchemeEnum::InternetFacing, 1).await;
    listener(
        &single,
        443,
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06"),
        &forward,
    )
    .await;
    let private = lb("private", LoadBalancerSchemeEnum::Internal, 1).await;
    listener(&private, 80, None, &forward).await;

    let r53 = aws_sdk_route53::Client::new(&moto.sdk("us-east-1"));
    let hc = r53
        .create_health_check()
        .caller_reference("app")
        .health_check_config(
            aws_sdk_route53::types::HealthCheckConfig::builder()
                .r#type(aws_sdk_route53::types::HealthCheckType::Https)
                .fully_qualified_domain_name("app.example.test")
                .port(443)
                .resource_path("/health")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .health_check()
        .unwrap()
        .id()
        .to_string();
    (
        Planted {
            good,
            legacy,
            single,
        },
        hc,
    )
}

#[tokio::test]
async fn planted_load_balancers_and_monitoring_on_moto() {
    let moto = Moto::start().await;
    moto.reset().await;
    let (lbs, hc) = plant(&moto).await;

    let front = MockServer::start().await;
    Mock::given(|_: &Request| true)
        .respond_with(Forward(moto.url.clone()))
        .with_priority(10)
        .mount(&front)
        .await;
    mount_alarms(
        &front,
        "eu-west-1",
        vec![
            alarm(
                "good-5xx",
                &[("LoadBalancer", &suffix(&lbs.good))],
                &[SNS],
                true,
            ),
            // An alarm that notifies no one.
            alarm(
                "legacy-5xx",
                &[("LoadBalancer", &suffix(&lbs.legacy))],
                &[],
                true,
            ),
        ],
    )
    .await;
    mount_alarms(
        &front,
        "us-east-1",
        vec![alarm("app-health", &[("HealthCheckId", &hc)], &[SNS], true)],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    // High availability and encryption in transit (no http endpoints: http.tls is not read).
    let loaded = config(dir.path(), Some(&front.uri()), &["eu-west-1"], &[], "");
    let report = run(&loaded, &[HA, TRANSIT]).await;
    assert_check(
        &report,
        HA,
        0,
        Status::Pass,
        &["/app/good/", "/app/legacy/"],
    );
    assert_check(&report, HA, 0, Status::Fail, &["/app/single/"]);
    let single = finding(&report, HA, 0, "/app/single/");
    assert_eq!(
        single.actual.to_value()["zone_count"],
        json!(1),
        "{single:#?}"
    );
    assert!(single.message.contains(&lbs.single), "{}", single.message);
    assert_check(
        &report,
        TRANSIT,
        TRANSIT_LB_CHECK,
        Status::Pass,
        &["/app/good/", "/app/single/"],
    );
    assert_check(
        &report,
        TRANSIT,
        TRANSIT_LB_CHECK,
        Status::Fail,
        &["/app/legacy/"],
    );
    assert_check(&report, TRANSIT, TRANSIT_LB_CHECK, Status::Error, &[]);
    let legacy = finding(&report, TRANSIT, TRANSIT_LB_CHECK, "/app/legacy/");
    assert_eq!(
        legacy.actual.to_value()["plain_http_listeners"],
        json!(1),
        "{legacy:#?}"
    );
    assert_eq!(
        legacy.actual.to_value()["allows_legacy_tls"],
        json!(true),
        "{legacy:#?}"
    );
    assert!(legacy.message.contains(&lbs.legacy), "{}", legacy.message);

    // The probe's own view of the listeners: the redirect, the policies' versions.
    let ctx = trellis::probes::ProbeContext::for_run(&loaded, at(NOW));
    let planned = trellis::probes::find("aws.elbv2.load_balancers")
        .unwrap()
        .plan(&json!({}))
        .unwrap();
    let collected = planned.collect(&ctx).await.unwrap();
    let by_name: BTreeMap<String, &trellis::probes::Attributes> = collected
        .resources
        .iter()
        .map(|r| {
            (
                r.attributes["name"].as_str().unwrap().to_string(),
                &r.attributes,
            )
        })
        .collect();
    assert_eq!(by_name.len(), 4, "{by_name:#?}");
    let good = by_name["good"];
    assert_eq!(
        good["availability_zones"],
        json!(["eu-west-1a", "eu-west-1b"])
    );
    assert_eq!(good["weakest_tls"], json!("TLSv1.2"));
    assert_eq!(good["allows_legacy_tls"], json!(false));
    assert_eq!(good["plain_http_listeners"], json!(0));
    assert_eq!(
        good["listeners"],
        json!([
            {"port": 80, "protocol": "HTTP", "ssl_policy": null, "tls_versions": null, "redirects_to_https": true},
            {"port": 443, "protocol": "HTTPS", "ssl_policy": "ELBSecurityPolicy-TLS13-1-2-2021-06", "tls_versions": ["TLSv1.2", "TLSv1.3"], "redirects_to_https": false},
        ])
    );
    let legacy = by_name["legacy"];
    assert_eq!(legacy["weakest_tls"], json!("TLSv1.0"));
    assert_eq!(legacy["plain_http_ports"], json!([80]));
    assert_eq!(
        legacy["listeners"][1]["tls_versions"],
        json!(["TLSv1.0", "TLSv1.1", "TLSv1.2"])
    );
    assert_eq!(by_name["private"]["scheme"], json!("internal"));
    assert_eq!(by_name["single"]["weakest_tls"], json!("TLSv1.2"));

    // Uptime monitoring: load balancers and the configured endpoints.
    let loaded = config(
        dir.path(),
        Some(&front.uri()),
        &["eu-west-1"],
        &["https://app.example.test", "https://status.example.test"],
        "",
    );
    let report = run(&loaded, &[UPTIME]).await;
    assert_check(
        &report,
        UPTIME,
        0,
        Status::Pass,
        &["/app/good/", "endpoint:https://app.example.test"],
    );
    assert_check(
        &report,
        UPTIME,
        0,
        Status::Fail,
        &[
            "/app/legacy/",
            "/app/single/",
            "endpoint:https://status.example.test",
        ],
    );
    assert_check(&report, UPTIME, 0, Status::Error, &[]);
    let legacy = finding(&report, UPTIME, 0, "/app/legacy/");
    assert_eq!(
        legacy.actual.to_value()["watched"],
        json!(true),
        "{legacy:#?}"
    );
    assert_eq!(
        legacy.actual.to_value()["alarms_with_actions"],
        json!(0),
        "{legacy:#?}"
    );
    let single = finding(&report, UPTIME, 0, "/app/single/");
    assert_eq!(
        single.actual.to_value()["watched"],
        json!(false),
        "{single:#?}"
    );
    let app = finding(&report, UPTIME, 0, "endpoint:https://app.example.test");
    assert_eq!(
        app.actual.to_value()["alarms_with_actions"],
        json!(1),
        "{app:#?}"
    );

    // The health check's alarm loses its action: the endpoint is watched, not notifying.
    front.reset().await;
    Mock::given(|_: &Request| true)
        .respond_with(Forward(moto.url.clone()))
        .with_priority(10)
        .mount(&front)
        .await;
    mount_alarms(&front, "eu-west-1", vec![]).await;
    mount_alarms(
        &front,
        "us-east-1",
        vec![alarm(
            "app-health",
            &[("HealthCheckId", &hc)],
            &[SNS],
            false,
        )],
    )
    .await;
    let report = run(&loaded, &[UPTIME]).await;
    assert_check(&report, UPTIME, 0, Status::Pass, &[]);
    let app = finding(&report, UPTIME, 0, "endpoint:https://app.example.test");
    assert_eq!(app.status, Status::Fail);
    assert_eq!(app.actual.to_value()["watched"], json!(true), "{app:#?}");
}

#[tokio::test]
async fn endpoints_without_aws_are_errors_never_passes() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config(dir.path(), None, &[], &["https://app.example.test"], "");
    let report = run(&loaded, &[UPTIME]).await;
    assert_check(
        &report,
        UPTIME,
        0,
        Status::Error,
        &["endpoint:https://app.example.test"],
    );
    let f = finding(&report, UPTIME, 0, "endpoint:https://app.example.test");
    assert!(
        f.message.contains("`aws` is not configured"),
        "{}",
        f.message
    );
    assert_ne!(
        crate::common::aws::outcome(&report, UPTIME).status,
        Status::Pass
    );
}

// ----------------------------------------------------------------------------------------
// wiremock alone: pages, request counts, faults

const ELB_NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
const ACCOUNT: &str = "123456789012";

fn lb_arn(name: &str, id: &str) -> String {
    format!("arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:loadbalancer/app/{name}/{id}")
}

fn listener_arn(lb: &str, id: &str, l: &str) -> String {
    format!("arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:listener/app/{lb}/{id}/{l}")
}

fn elb_page(op: &str, list: &str, members: &[String], next: Option<&str>) -> String {
    format!(
        r#"<{op}Response xmlns="{ELB_NS}"><{op}Result><{list}>{}</{list}>{}</{op}Result><ResponseMetadata><RequestId>5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a</RequestId></ResponseMetadata></{op}Response>"#,
        members.join(""),
        next.map(|m| format!("<NextMarker>{m}</NextMarker>"))
            .unwrap_or_default()
    )
}

fn lb_member(name: &str, id: &str, scheme: &str, zones: &[&str]) -> String {
    let zones: String = zones
        .iter()
        .map(|z| {
            format!("<member><ZoneName>{z}</ZoneName><SubnetId>subnet-{z}</SubnetId></member>")
        })
        .collect();
    format!(
        "<member><LoadBalancerArn>{}</LoadBalancerArn><DNSName>{name}-{id}.us-east-1.elb.amazonaws.com</DNSName><LoadBalancerName>{name}</LoadBalancerName><Scheme>{scheme}</Scheme><Type>application</Type><VpcId>vpc-1</VpcId><State><Code>active</Code></State><AvailabilityZones>{zones}</AvailabilityZones><CreatedTime>2026-01-05T10:00:00.000Z</CreatedTime></member>",
        lb_arn(name, id)
    )
}

fn action_xml(redirect: bool) -> String {
    if redirect {
        "<member><Type>redirect</Type><RedirectConfig><Protocol>HTTPS</Protocol><Port>443</Port><StatusCode>HTTP_301</StatusCode></RedirectConfig></member>".to_string()
    } else {
        "<member><Type>forward</Type><TargetGroupArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/1</TargetGroupArn></member>".to_string()
    }
}

fn listener_member(arn: &str, port: u16, policy: Option<&str>, redirect: bool) -> String {
    let (protocol, policy) = match policy {
        Some(p) => ("HTTPS", format!("<SslPolicy>{p}</SslPolicy>")),
        None => ("HTTP", String::new()),
    };
    format!(
        "<member><ListenerArn>{arn}</ListenerArn><Port>{port}</Port><Protocol>{protocol}</Protocol>{policy}<DefaultActions>{}</DefaultActions></member>",
        action_xml(redirect)
    )
}

fn rule_member(n: usize, redirect: bool) -> String {
    let priority = if n == 0 {
        "default".to_string()
    } else {
        n.to_string()
    };
    format!(
        "<member><RuleArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/x/{n}</RuleArn><Priority>{priority}</Priority><IsDefault>{}</IsDefault><Conditions/><Actions>{}</Actions></member>",
        n == 0,
        action_xml(redirect)
    )
}

fn policy_member(name: &str, protocols: &[&str]) -> String {
    let p: String = protocols
        .iter()
        .map(|p| format!("<member>{p}</member>"))
        .collect();
    format!("<member><Name>{name}</Name><SslProtocols>{p}</SslProtocols></member>")
}

fn health_check_xml(id: &str, fqdn: &str) -> String {
    format!(
        "<HealthCheck><Id>{id}</Id><CallerReference>{id}</CallerReference><HealthCheckConfig><Port>443</Port><Type>HTTPS</Type><ResourcePath>/health</ResourcePath><FullyQualifiedDomainName>{fqdn}</FullyQualifiedDomainName></HealthCheckConfig><HealthCheckVersion>1</HealthCheckVersion></HealthCheck>"
    )
}

fn health_checks_page(checks: &[String], next: Option<&str>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><ListHealthChecksResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><HealthChecks>{}</HealthChecks><Marker></Marker><IsTruncated>{}</IsTruncated>{}<MaxItems>1000</MaxItems></ListHealthChecksResponse>"#,
        checks.join(""),
        next.is_some(),
        next.map(|n| format!("<NextMarker>{n}</NextMarker>"))
            .unwrap_or_default()
    )
}

/// The decoded form parameters of a query-protocol request.
fn params(r: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&r.body).into_owned().collect()
}

/// The ELBv2 operation of a request (the same controls also read RDS, on the same Query
/// protocol, which this server does not answer).
fn elb_op(r: &Request) -> Option<String> {
    params(r)
        .get("Action")
        .filter(|a| !a.starts_with("DescribeDB"))
        .cloned()
}

fn is_route53(r: &Request) -> bool {
    r.url.path() == "/2013-04-01/healthcheck"
}

/// The operation of a request, plus ` page 2` when it carries a page token, plus which load
/// balancer or listener it reads.
fn op(r: &Request) -> String {
    if is_cloudwatch(r) {
        let page = if has_bytes(r, "NextToken") {
            " page 2"
        } else {
            ""
        };
        return format!("DescribeAlarms {}{page}", signed_region(r));
    }
    if is_route53(r) {
        let page = if r.url.query().unwrap_or("").contains("marker=") {
            " page 2"
        } else {
            ""
        };
        return format!("ListHealthChecks{page}");
    }
    let p = params(r);
    let mut key = p.get("Action").cloned().unwrap_or_else(|| "?".into());
    if let Some(arn) = p.get("LoadBalancerArn").or(p.get("ListenerArn")) {
        key.push(' ');
        let resource = arn.rsplit_once(':').map(|(_, s)| s).unwrap_or(arn);
        let resource = resource
            .strip_prefix("loadbalancer/")
            .or(resource.strip_prefix("listener/"))
            .unwrap_or(resource);
        key.push_str(resource);
    }
    if p.contains_key("Marker") {
        key.push_str(" page 2");
    }
    key
}

fn xml(status: u16, text: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(text, "text/xml")
}

/// Mounts `answer` for requests whose `op()` is `key` (healthy answers: priority 10).
async fn on(server: &MockServer, key: &'static str, answer: ResponseTemplate) {
    Mock::given(move |r: &Request| op(r) == key)
        .respond_with(answer)
        .with_priority(10)
        .mount(server)
        .await;
}

/// us-east-1 of account `acme`, every listing on two pages: `web` (two zones, HTTP that
/// redirects on every rule of two pages, TLS 1.2+) on page one, `api` (one zone, TLS 1.0
/// policy — listed on the policies' second page — and plain HTTP on the listeners' second
/// page) on page two; `web` alarmed with an action (alarms' page one), the endpoint's health
/// check on the checks' page two and its alarm on the alarms' page two.
async fn healthy(server: &MockServer) {
    let web_http = listener_arn("web", "111", "l1");
    let web_https = listener_arn("web", "111", "l2");
    let api_https = listener_arn("api", "222", "l3");
    let api_http = listener_arn("api", "222", "l4");
    on(
        server,
        "DescribeLoadBalancers",
        xml(
            200,
            elb_page(
                "DescribeLoadBalancers",
                "LoadBalancers",
                &[lb_member(
                    "web",
                    "111",
                    "internet-facing",
                    &["us-east-1a", "us-east-1b"],
                )],
                Some("lb-page-2"),
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeLoadBalancers page 2",
        xml(
            200,
            elb_page(
                "DescribeLoadBalancers",
                "LoadBalancers",
                &[
                    lb_member("api", "222", "internet-facing", &["us-east-1a"]),
                    lb_member("int", "333", "internal", &["us-east-1a"]),
                ],
                None,
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeListeners app/web/111",
        xml(
            200,
            elb_page(
                "DescribeListeners",
                "Listeners",
                &[
                    listener_member(&web_http, 80, None, true),
                    listener_member(
                        &web_https,
                        443,
                        Some("ELBSecurityPolicy-TLS13-1-2-2021-06"),
                        false,
                    ),
                ],
                None,
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeListeners app/api/222",
        xml(
            200,
            elb_page(
                "DescribeListeners",
                "Listeners",
                &[listener_member(
                    &api_https,
                    443,
                    Some("ELBSecurityPolicy-2016-08"),
                    false,
                )],
                Some("listeners-2"),
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeListeners app/api/222 page 2",
        xml(
            200,
            elb_page(
                "DescribeListeners",
                "Listeners",
                &[listener_member(&api_http, 80, None, false)],
                None,
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeListeners app/int/333",
        xml(200, elb_page("DescribeListeners", "Listeners", &[], None)),
    )
    .await;
    on(
        server,
        "DescribeRules app/web/111/l1",
        xml(
            200,
            elb_page(
                "DescribeRules",
                "Rules",
                &[rule_member(1, true)],
                Some("rules-2"),
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeRules app/web/111/l1 page 2",
        xml(
            200,
            elb_page("DescribeRules", "Rules", &[rule_member(0, true)], None),
        ),
    )
    .await;
    on(
        server,
        "DescribeRules app/api/222/l4",
        xml(
            200,
            elb_page("DescribeRules", "Rules", &[rule_member(0, false)], None),
        ),
    )
    .await;
    on(
        server,
        "DescribeSSLPolicies",
        xml(
            200,
            elb_page(
                "DescribeSSLPolicies",
                "SslPolicies",
                &[policy_member(
                    "ELBSecurityPolicy-TLS13-1-2-2021-06",
                    &["TLSv1.3", "TLSv1.2"],
                )],
                Some("policies-2"),
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeSSLPolicies page 2",
        xml(
            200,
            elb_page(
                "DescribeSSLPolicies",
                "SslPolicies",
                &[policy_member(
                    "ELBSecurityPolicy-2016-08",
                    &["TLSv1.2", "TLSv1.1", "TLSv1"],
                )],
                None,
            ),
        ),
    )
    .await;
    on(
        server,
        "DescribeAlarms us-east-1",
        cbor(
            200,
            &json!({
                "MetricAlarms": [alarm("web-5xx", &[("LoadBalancer", "app/web/111")], &[SNS], true)],
                "NextToken": "alarms-2",
            }),
        ),
    )
    .await;
    on(
        server,
        "DescribeAlarms us-east-1 page 2",
        cbor(
            200,
            &json!({"MetricAlarms": [alarm("app-health", &[("HealthCheckId", "hc-app")], &[SNS], true)]}),
        ),
    )
    .await;
    on(
        server,
        "ListHealthChecks",
        xml(
            200,
            health_checks_page(
                &[health_check_xml("hc-other", "other.example.test")],
                Some("hc-app"),
            ),
        ),
    )
    .await;
    on(
        server,
        "ListHealthChecks page 2",
        xml(
            200,
            health_checks_page(&[health_check_xml("hc-app", "app.example.test")], None),
        ),
    )
    .await;
}

async fn counts(server: &MockServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        *out.entry(op(&r)).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn every_page_is_read_once_per_run_however_many_controls_read_it() {
    let server = MockServer::start().await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = config(
        dir.path(),
        Some(&server.uri()),
        &["us-east-1"],
        &["https://app.example.test"],
        QUICK,
    );
    let report = run(&loaded, &[HA, UPTIME]).await;
    assert_check(&report, HA, 0, Status::Pass, &["/app/web/"]);
    assert_check(&report, HA, 0, Status::Fail, &["/app/api/"]);
    assert_check(
        &report,
        UPTIME,
        0,
        Status::Pass,
        &["/app/web/", "endpoint:https://app.example.test"],
    );
    assert_check(&report, UPTIME, 0, Status::Fail, &["/app/api/"]);

    // Every request asked for the largest page.
    for r in server.received_requests().await.unwrap() {
        if is_cloudwatch(&r) {
            assert!(has_bytes(&r, "MaxRecords"), "{}", op(&r));
        } else if is_route53(&r) {
            assert!(
                r.url.query().unwrap().contains("maxitems=1000"),
                "{:?}",
                r.url
            );
        } else if elb_op(&r).is_some() {
            assert_eq!(
                params(&r).get("PageSize").map(String::as_str),
                Some("400"),
                "{}",
                op(&r)
            );
        }
    }

    // A second run with the load-balancer check of encryption in transit too (no endpoints:
    // http.tls reads nothing here): three controls read the load balancers, once per page.
    server.reset().await;
    healthy(&server).await;
    let loaded = config(dir.path(), Some(&server.uri()), &["us-east-1"], &[], QUICK);
    let report = run(&loaded, &[HA, TRANSIT, UPTIME]).await;
    assert_check(
        &report,
        TRANSIT,
        TRANSIT_LB_CHECK,
        Status::Pass,
        &["/app/web/"],
    );
    assert_check(
        &report,
        TRANSIT,
        TRANSIT_LB_CHECK,
        Status::Fail,
        &["/app/api/"],
    );
    let api = finding(&report, TRANSIT, TRANSIT_LB_CHECK, "/app/api/");
    assert_eq!(
        api.actual.to_value()["plain_http_listeners"],
        json!(1),
        "{api:#?}"
    );
    assert_eq!(
        api.actual.to_value()["allows_legacy_tls"],
        json!(true),
        "{api:#?}"
    );
    let expected: BTreeMap<String, usize> = [
        "DescribeLoadBalancers",
        "DescribeLoadBalancers page 2",
        "DescribeListeners app/web/111",
        "DescribeListeners app/api/222",
        "DescribeListeners app/api/222 page 2",
        "DescribeListeners app/int/333",
        "DescribeRules app/web/111/l1",
        "DescribeRules app/web/111/l1 page 2",
        "DescribeRules app/api/222/l4",
        "DescribeSSLPolicies",
        "DescribeSSLPolicies page 2",
        "DescribeAlarms us-east-1",
        "DescribeAlarms us-east-1 page 2",
        "ListHealthChecks",
        "ListHealthChecks page 2",
    ]
    .into_iter()
    .map(|k| (k.to_string(), 1))
    .collect();
    // The same controls also read RDS and S3 (high availability, encryption in transit),
    // which this server does not answer: their requests are counted by their own tests.
    let ours: BTreeMap<String, usize> = counts(&server)
        .await
        .into_iter()
        .filter(|(k, _)| k != "?" && !k.starts_with("DescribeDB"))
        .collect();
    assert_eq!(ours, expected);
}

fn elb_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    xml(
        status,
        format!(
            r#"<ErrorResponse xmlns="{ELB_NS}"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a</RequestId></ErrorResponse>"#
        ),
    )
}

fn route53_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    xml(
        status,
        format!(
            r#"<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a</RequestId></ErrorResponse>"#
        ),
    )
}

fn cloudwatch_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    cbor(
        status,
        &json!({"__type": format!("com.amazonaws.cloudwatch#{code}"), "message": message}),
    )
    .insert_header("x-amzn-query-error", format!("{code};Sender").as_str())
}

/// Shadows every request of `operation` (any page, any resource) with `answer`.
async fn fail(server: &MockServer, operation: &'static str, answer: ResponseTemplate) {
    Mock::given(move |r: &Request| op(r).starts_with(operation))
        .respond_with(answer)
        .with_priority(1)
        .mount(server)
        .await;
}

/// The checks a failing operation must turn to `error` (control, check index, resources).
fn affected(operation: &str) -> Vec<(&'static str, usize, Vec<&'static str>)> {
    let lbs = vec!["/app/web/", "/app/api/"];
    let region = vec!["acme/us-east-1"];
    let endpoint = vec!["endpoint:https://app.example.test"];
    match operation {
        // The region is one scope error in every check.
        "DescribeLoadBalancers" => vec![
            (HA, 0, region.clone()),
            (TRANSIT, TRANSIT_LB_CHECK, region.clone()),
            (UPTIME, 0, region),
        ],
        // The listeners are unknown: zones are still checked, listeners are errors.
        "DescribeListeners" | "DescribeSSLPolicies" => vec![(TRANSIT, TRANSIT_LB_CHECK, lbs)],
        "DescribeRules" => vec![(TRANSIT, TRANSIT_LB_CHECK, lbs)],
        // The region's targets and the endpoint (its health check's alarm is in us-east-1).
        "DescribeAlarms" | "ListHealthChecks" => {
            let mut both = region;
            both.extend(endpoint);
            vec![(UPTIME, 0, both)]
        }
        _ => unreachable!(),
    }
}

const NEW_APIS: &[(&str, &str)] = &[
    (
        "DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancers",
    ),
    (
        "DescribeListeners",
        "elasticloadbalancing:DescribeListeners",
    ),
    (
        "DescribeSSLPolicies",
        "elasticloadbalancing:DescribeSSLPolicies",
    ),
    ("DescribeRules", "elasticloadbalancing:DescribeRules"),
    ("DescribeAlarms", "cloudwatch:DescribeAlarms"),
    ("ListHealthChecks", "route53:ListHealthChecks"),
];

fn refusal(operation: &str, permission: &str, status: u16, code: &str) -> ResponseTemplate {
    let message = format!(
        "User: arn:aws:iam::123456789012:user/trellis is not authorized to perform: {permission}"
    );
    match operation {
        "DescribeAlarms" => cloudwatch_error(status, code, &message),
        "ListHealthChecks" => route53_error(status, code, &message),
        _ => elb_error(status, code, &message),
    }
}

/// Runs the three controls with `operation` failing as `answer`, and checks that exactly the
/// affected resources are `error` with a message containing `needle`, and none of them pass.
async fn assert_fault(operation: &'static str, answer: ResponseTemplate, needle: &str) {
    let server = MockServer::start().await;
    fail(&server, operation, answer).await;
    healthy(&server).await;
    let dir = tempfile::tempdir().unwrap();
    // Encryption in transit with no endpoints (http.tls reads nothing), uptime with one.
    let without = config(dir.path(), Some(&server.uri()), &["us-east-1"], &[], QUICK);
    let report = run(&without, &[HA, TRANSIT]).await;
    let dir2 = tempfile::tempdir().unwrap();
    let with = config(
        dir2.path(),
        Some(&server.uri()),
        &["us-east-1"],
        &["https://app.example.test"],
        QUICK,
    );
    let uptime = run(&with, &[UPTIME]).await;
    for (control, check, resources) in affected(operation) {
        let report = if control == UPTIME { &uptime } else { &report };
        assert_check(report, control, check, Status::Error, &resources);
        for f in check_findings(report, control, check) {
            if resources.iter().any(|r| f.resource.contains(r)) {
                assert_eq!(f.status, Status::Error, "{operation}: {f:#?}");
                assert!(f.message.contains(needle), "{operation}: {}", f.message);
            }
        }
        assert_eq!(
            crate::common::aws::outcome(report, control).status,
            Status::Error,
            "{operation}: {control}"
        );
    }
    // The zones are still checked when only the listeners cannot be read.
    if matches!(
        operation,
        "DescribeListeners" | "DescribeSSLPolicies" | "DescribeRules"
    ) {
        assert_check(&report, HA, 0, Status::Pass, &["/app/web/"]);
        assert_check(&report, HA, 0, Status::Fail, &["/app/api/"]);
    }
}

#[tokio::test]
async fn access_denied_on_each_new_api_is_an_error_naming_the_permission() {
    for (operation, permission) in NEW_APIS {
        assert_fault(
            operation,
            refusal(operation, permission, 403, "AccessDenied"),
            &format!("the credentials lack `{permission}`"),
        )
        .await;
    }
}

#[tokio::test]
async fn server_errors_and_timeouts_are_errors_never_passes() {
    for (operation, permission) in NEW_APIS {
        assert_fault(
            operation,
            refusal(operation, permission, 503, "ServiceUnavailable"),
            "HTTP 503 after the configured retries",
        )
        .await;
    }
    for operation in ["DescribeListeners", "DescribeAlarms", "ListHealthChecks"] {
        let answer = match operation {
            "DescribeAlarms" => cbor(200, &json!({"MetricAlarms": []})),
            "ListHealthChecks" => xml(200, health_checks_page(&[], None)),
            _ => xml(200, elb_page("DescribeListeners", "Listeners", &[], None)),
        }
        .set_delay(std::time::Duration::from_secs(3));
        assert_fault(operation, answer, "timed out").await;
    }
}
