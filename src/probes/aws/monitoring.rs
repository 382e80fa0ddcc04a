//! `aws.monitoring.*`: CloudWatch alarms and Route 53 health checks.
//!
//! - `aws.monitoring.targets` — every public (internet-facing) load balancer of the selected
//!   accounts and regions, and every endpoint of `sources.http.endpoints`, with what watches
//!   it and whether that notifies anyone:
//!   - a CloudWatch alarm (`DescribeAlarms`, once per account and region) watches a load
//!     balancer when one of its metric's dimensions is `LoadBalancer` = the ARN's
//!     `app/name/id` (or `net/…`) suffix; it notifies when its actions are enabled and it has
//!     an alarm action;
//!   - a Route 53 health check (`ListHealthChecks`, once per account: Route 53 is global)
//!     watches a load balancer whose DNS name is its domain name, and an endpoint whose host
//!     (and port, and path when the URL has one) it checks; it notifies when a CloudWatch
//!     alarm with actions watches its `HealthCheckStatus` metric (in `us-east-1`, where
//!     Route 53 publishes its metrics). Disabled health checks watch nothing.
//!
//! Endpoints are matched against the health checks of every selected account. When AWS is
//! not configured but endpoints are, each endpoint is `error`: nothing could say what watches
//! it.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::Region;
use serde::Serialize;
use serde_json::{Value, json};

use super::elbv2::{LoadBalancer, load_balancers};
use super::fetch::{cached, paginate};
use super::{Account, Op, RegionSelection, Scope, object};
use crate::config::WebUrl;
use crate::probes::aws::ec2::{base, id, per_region};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The CloudWatch alarms and Route 53 health checks calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[DESCRIBE_ALARMS, LIST_HEALTH_CHECKS];

const DESCRIBE_ALARMS: Op = Op {
    name: "DescribeAlarms",
    permission: "cloudwatch:DescribeAlarms",
};
const LIST_HEALTH_CHECKS: Op = Op {
    name: "ListHealthChecks",
    permission: "route53:ListHealthChecks",
};

/// Route 53 publishes its health checks' metrics (and so their alarms) in this region only.
const ROUTE53_METRICS_REGION: &str = "us-east-1";

impl Account {
    pub fn route53(&self) -> aws_sdk_route53::Client {
        let conf = aws_sdk_route53::config::Builder::from(&self.sdk)
            .interceptor(super::CountCalls)
            .region(Region::new(ROUTE53_METRICS_REGION))
            .build();
        aws_sdk_route53::Client::from_conf(conf)
    }
}

// ----------------------------------------------------------------------------------------
// Listings

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Alarm {
    pub name: String,
    pub arn: Option<String>,
    pub actions_enabled: bool,
    pub alarm_actions: Vec<String>,
    pub namespace: Option<String>,
    pub metric: Option<String>,
    /// The metric's dimensions, and those of every metric a metric-math alarm reads.
    pub dimensions: Vec<(String, String)>,
}

impl Alarm {
    /// The alarm notifies (or acts) when it fires.
    pub fn has_actions(&self) -> bool {
        self.actions_enabled && !self.alarm_actions.is_empty()
    }

    fn has_dimension(&self, name: &str, value: &str) -> bool {
        self.dimensions.iter().any(|(n, v)| n == name && v == value)
    }

    fn describe(&self, scope: &Scope) -> String {
        format!(
            "CloudWatch alarm {} in {} ({})",
            self.name,
            scope.label(),
            if self.has_actions() {
                format!("actions: {}", self.alarm_actions.join(", "))
            } else if self.alarm_actions.is_empty() {
                "no alarm action".to_string()
            } else {
                "actions disabled".to_string()
            }
        )
    }
}

/// The metric alarms of the account in the scope's region.
pub(crate) async fn alarms(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<Alarm>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:cloudwatch:alarms",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.cloudwatch(&scope.region);
        paginate!(
            scope,
            DESCRIBE_ALARMS,
            client
                .describe_alarms()
                .into_paginator()
                .page_size(100)
                .send(),
            |page| {
                for a in page.metric_alarms() {
                    let mut dimensions: Vec<(String, String)> = a
                        .dimensions()
                        .iter()
                        .chain(
                            a.metrics()
                                .iter()
                                .filter_map(|m| m.metric_stat().and_then(|s| s.metric()))
                                .flat_map(|m| m.dimensions()),
                        )
                        .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
                        .collect();
                    dimensions.sort();
                    dimensions.dedup();
                    out.push(Alarm {
                        name: a.alarm_name().unwrap_or("").to_string(),
                        arn: a.alarm_arn().map(str::to_string),
                        actions_enabled: a.actions_enabled().unwrap_or(false),
                        alarm_actions: a.alarm_actions().to_vec(),
                        namespace: a.namespace().map(str::to_string),
                        metric: a.metric_name().map(str::to_string),
                        dimensions,
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HealthCheck {
    pub id: String,
    /// `HTTP`, `HTTPS`, `HTTP_STR_MATCH`, `HTTPS_STR_MATCH`, `TCP`, `CALCULATED`…
    pub kind: String,
    pub fqdn: Option<String>,
    pub ip_address: Option<String>,
    pub port: Option<i32>,
    pub resource_path: Option<String>,
    pub disabled: bool,
}

impl HealthCheck {
    /// The port it checks: the configured one, else its type's default.
    fn effective_port(&self) -> Option<u16> {
        match self.port {
            Some(p) => u16::try_from(p).ok(),
            None => match self.kind.as_str() {
                "HTTP" | "HTTP_STR_MATCH" => Some(80),
                "HTTPS" | "HTTPS_STR_MATCH" => Some(443),
                _ => None,
            },
        }
    }

    fn host(&self) -> Option<String> {
        self.fqdn.as_deref().map(normalize_host)
    }

    /// It checks the load balancer whose DNS name is `dns_name`.
    fn covers_host(&self, dns_name: &str) -> bool {
        !self.disabled && self.host().is_some_and(|h| h == normalize_host(dns_name))
    }

    /// It checks the endpoint's host and port, and its path when the URL names one.
    fn covers_endpoint(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        if !self.covers_host(host) || self.effective_port() != url.port_or_known_default() {
            return false;
        }
        let wanted = url.path().trim_end_matches('/');
        if wanted.is_empty() {
            return true;
        }
        let checked = self
            .resource_path
            .as_deref()
            .unwrap_or("/")
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        checked == wanted || checked.starts_with(&format!("{wanted}/"))
    }

    fn describe(&self, account: &Account) -> String {
        let port = self
            .effective_port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "Route 53 health check {} of account {} ({} {}{port}{})",
            self.id,
            account.name,
            self.kind,
            self.fqdn
                .as_deref()
                .or(self.ip_address.as_deref())
                .unwrap_or("?"),
            self.resource_path.as_deref().unwrap_or(""),
        )
    }
}

/// `Example.com.` and `dualstack.x.elb.amazonaws.com` compare as `example.com` and
/// `x.elb.amazonaws.com`.
fn normalize_host(host: &str) -> String {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    match h.strip_prefix("dualstack.") {
        Some(rest) => rest.to_string(),
        None => h,
    }
}

/// The account's Route 53 health checks (a global service: once per account per run).
pub(crate) async fn health_checks(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<Vec<HealthCheck>>, ProbeError> {
    let key = format!("aws:{}:route53:health-checks", account.name);
    cached(ctx, key, async {
        let scope = Scope {
            account: account.clone(),
            region: ROUTE53_METRICS_REGION.to_string(),
        };
        let client = account.route53();
        let mut out = Vec::new();
        paginate!(
            scope,
            LIST_HEALTH_CHECKS,
            client
                .list_health_checks()
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for hc in page.health_checks() {
                    let config = hc.health_check_config();
                    out.push(HealthCheck {
                        id: hc.id().to_string(),
                        kind: config
                            .map(|c| c.r#type().as_str().to_string())
                            .unwrap_or_default(),
                        fqdn: config
                            .and_then(|c| c.fully_qualified_domain_name())
                            .map(str::to_string),
                        ip_address: config.and_then(|c| c.ip_address()).map(str::to_string),
                        port: config.and_then(|c| c.port()),
                        resource_path: config.and_then(|c| c.resource_path()).map(str::to_string),
                        disabled: config.and_then(|c| c.disabled()).unwrap_or(false),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

// ----------------------------------------------------------------------------------------

/// What watches one target.
#[derive(Debug, Default)]
struct Watch {
    watchers: Vec<String>,
    cloudwatch_alarms: usize,
    health_checks: usize,
    with_actions: usize,
}

impl Watch {
    fn total(&self) -> usize {
        self.cloudwatch_alarms + self.health_checks
    }

    fn attributes(&self) -> crate::probes::Attributes {
        object(json!({
            "watched": self.total() > 0,
            "alarms": self.total(),
            "alarms_with_actions": self.with_actions,
            "cloudwatch_alarms": self.cloudwatch_alarms,
            "health_checks": self.health_checks,
            "watchers": self.watchers,
        }))
    }

    /// Adds the health checks, each with the alarms (with actions) on its status metric.
    async fn add_health_checks(
        &mut self,
        ctx: &ProbeContext,
        account: &Arc<Account>,
        checks: Vec<&HealthCheck>,
    ) -> Result<(), ProbeError> {
        if checks.is_empty() {
            return Ok(());
        }
        let scope = Scope {
            account: account.clone(),
            region: ROUTE53_METRICS_REGION.to_string(),
        };
        let alarms = alarms(ctx, &scope).await?;
        for hc in checks {
            let notifying: Vec<&str> = alarms
                .iter()
                .filter(|a| {
                    a.namespace.as_deref() == Some("AWS/Route53")
                        && a.metric.as_deref() == Some("HealthCheckStatus")
                        && a.has_dimension("HealthCheckId", &hc.id)
                        && a.has_actions()
                })
                .map(|a| a.name.as_str())
                .collect();
            self.health_checks += 1;
            if !notifying.is_empty() {
                self.with_actions += 1;
            }
            self.watchers.push(format!(
                "{} ({})",
                hc.describe(account),
                if notifying.is_empty() {
                    format!("no alarm with actions on its status in {ROUTE53_METRICS_REGION}")
                } else {
                    format!("alarmed by {}", notifying.join(", "))
                }
            ));
        }
        Ok(())
    }
}

/// `aws.monitoring.targets`.
pub struct MonitoringTargets;

impl Probe for MonitoringTargets {
    const NAME: &'static str = "aws.monitoring.targets";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "Each internet-facing load balancer of the selected accounts and regions and each endpoint in sources.http.endpoints: the CloudWatch alarms and Route 53 health checks watching it, and whether they notify anyone.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!(
            "account",
            String,
            "account name from sources.aws.accounts (the load balancer's; null for an endpoint)"
        ),
        attr!(
            "region",
            String,
            "AWS region of the load balancer; null for an endpoint"
        ),
        attr!(
            "target",
            String,
            "the load balancer's ARN or the endpoint's URL"
        ),
        attr!("kind", String, "`load_balancer` or `endpoint`"),
        attr!(
            "host",
            String,
            "the load balancer's DNS name or the endpoint's host"
        ),
        attr!(
            "watched",
            Bool,
            "at least one alarm or health check covers it"
        ),
        attr!(
            "alarms",
            Int,
            "alarms and health checks covering it (cloudwatch_alarms + health_checks)"
        ),
        attr!(
            "alarms_with_actions",
            Int,
            "of those, the ones with an action (notification): a CloudWatch alarm with actions enabled and an alarm action, or a health check whose HealthCheckStatus has such an alarm"
        ),
        attr!(
            "cloudwatch_alarms",
            Int,
            "CloudWatch alarms on its metrics (dimension LoadBalancer = app/…/… or net/…/…)"
        ),
        attr!(
            "health_checks",
            Int,
            "enabled Route 53 health checks of its host (and port and path)"
        ),
        attr!(
            "watchers",
            List,
            "the alarms and health checks covering it, named"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.monitoring.targets
assert: watched && alarms_with_actions > 0
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        let endpoints: Vec<WebUrl> = ctx
            .sources
            .http
            .as_ref()
            .map(|h| h.endpoints.clone())
            .unwrap_or_default();
        let accounts = match super::accounts(ctx, &params.accounts).await {
            Ok(a) => a,
            Err(e @ ProbeError::NotConfigured(_)) if !endpoints.is_empty() => {
                // Endpoints are configured, but nothing can say what watches them.
                let why = format!(
                    "{e}: no CloudWatch alarm or Route 53 health check can be read for this endpoint (configure sources.aws)"
                );
                let resources: Vec<Resource> = endpoints
                    .iter()
                    .map(|u| endpoint_resource(u, Watch::default(), Some(why.clone())))
                    .collect();
                return Ok(Collected {
                    raw: json!({
                        "source": "aws",
                        "probe": Self::NAME,
                        "endpoints": resources.iter().map(|r| json!({"target": r.name, "error": r.error})).collect::<Vec<_>>(),
                    })
                    .into(),
                    resources,
                });
            }
            Err(e) => return Err(e),
        };

        let mut collected = per_region(ctx, Self::NAME, params, |scope| async move {
            let lbs = load_balancers(ctx, &scope).await?;
            let public: Vec<&LoadBalancer> = lbs.iter().filter(|l| l.internet_facing()).collect();
            if public.is_empty() {
                return Ok(Vec::new());
            }
            let alarms = alarms(ctx, &scope).await?;
            let checks = health_checks(ctx, &scope.account).await?;
            let mut out = Vec::new();
            for lb in public {
                let mut watch = Watch::default();
                if let Some(dimension) = lb.dimension() {
                    for a in alarms
                        .iter()
                        .filter(|a| a.has_dimension("LoadBalancer", dimension))
                    {
                        watch.cloudwatch_alarms += 1;
                        if a.has_actions() {
                            watch.with_actions += 1;
                        }
                        watch.watchers.push(a.describe(&scope));
                    }
                }
                let covering: Vec<&HealthCheck> = match &lb.dns_name {
                    Some(dns) => checks.iter().filter(|h| h.covers_host(dns)).collect(),
                    None => Vec::new(),
                };
                watch
                    .add_health_checks(ctx, &scope.account, covering)
                    .await?;
                let mut a = base(&scope);
                a.extend(object(json!({
                    "target": lb.arn,
                    "kind": "load_balancer",
                    "host": lb.dns_name,
                })));
                a.extend(watch.attributes());
                out.push(Resource {
                    id: id(&scope, &lb.arn),
                    name: lb.arn.clone(),
                    attributes: a,
                    error: None,
                    unknown: Default::default(),
                    scope: false,
                });
            }
            Ok(out)
        })
        .await?;

        let mut raw_endpoints = Vec::new();
        for url in &endpoints {
            let (watch, error) = match endpoint_watch(ctx, &accounts, &url.0).await {
                Ok(w) => (w, None),
                Err(e) => (Watch::default(), Some(e)),
            };
            let resource = endpoint_resource(url, watch, error);
            raw_endpoints.push(json!({
                "target": resource.name,
                "attributes": resource.attributes,
                "error": resource.error,
            }));
            collected.resources.push(resource);
        }
        // A handful of load balancers and endpoints: the evidence is small enough to edit.
        let mut raw = collected.raw.to_value();
        if let Value::Object(map) = &mut raw {
            map.insert("endpoints".to_string(), Value::Array(raw_endpoints));
        }
        collected.raw = raw.into();
        Ok(collected)
    }
}

/// The health checks of every selected account covering the endpoint. Any account that
/// cannot be read makes the endpoint `error`: what watches it is then not known.
async fn endpoint_watch(
    ctx: &ProbeContext,
    accounts: &[super::AccountResult],
    url: &url::Url,
) -> Result<Watch, String> {
    let mut watch = Watch::default();
    for account in accounts {
        let account = account
            .as_ref()
            .map_err(|(name, e)| format!("aws account {name}: {e}"))?;
        let checks = health_checks(ctx, account)
            .await
            .map_err(|e| e.to_string())?;
        let covering: Vec<&HealthCheck> =
            checks.iter().filter(|h| h.covers_endpoint(url)).collect();
        watch
            .add_health_checks(ctx, account, covering)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(watch)
}

fn endpoint_resource(url: &WebUrl, watch: Watch, error: Option<String>) -> Resource {
    let mut a = object(json!({
        "account": null,
        "region": null,
        "target": url.as_str(),
        "kind": "endpoint",
        "host": url.0.host_str(),
    }));
    if error.is_none() {
        a.extend(watch.attributes());
    }
    Resource {
        id: format!("endpoint:{}", url.as_str()),
        name: url.as_str().to_string(),
        attributes: a,
        error,
        unknown: BTreeMap::new(),
        scope: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: &str, fqdn: &str, port: Option<i32>, path: Option<&str>) -> HealthCheck {
        HealthCheck {
            id: "hc-1".into(),
            kind: kind.into(),
            fqdn: Some(fqdn.into()),
            ip_address: None,
            port,
            resource_path: path.map(str::to_string),
            disabled: false,
        }
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn a_health_check_covers_its_host_port_and_path() {
        let hc = check("HTTPS", "App.Example.com.", None, Some("/health"));
        assert!(hc.covers_endpoint(&url("https://app.example.com")));
        assert!(!hc.covers_endpoint(&url("https://api.example.com")));
        assert!(!hc.covers_endpoint(&url("https://app.example.com:8443")));
        assert!(!hc.covers_endpoint(&url("https://app.example.com/admin")));
        let api = check(
            "HTTPS_STR_MATCH",
            "app.example.com",
            Some(443),
            Some("/api/v1/ping?x=1"),
        );
        assert!(api.covers_endpoint(&url("https://app.example.com/api/")));
        assert!(!api.covers_endpoint(&url("https://app.example.com/ap")));
        assert!(
            !check("HTTP", "app.example.com", None, None)
                .covers_endpoint(&url("https://app.example.com"))
        );
        assert!(
            check("TCP", "app.example.com", Some(443), None)
                .covers_endpoint(&url("https://app.example.com"))
        );
        let mut off = check("HTTPS", "app.example.com", None, None);
        off.disabled = true;
        assert!(!off.covers_endpoint(&url("https://app.example.com")));
    }

    #[test]
    fn a_health_check_covers_a_load_balancer_by_dns_name() {
        let hc = check(
            "HTTPS",
            "dualstack.web-1.eu-west-1.elb.amazonaws.com",
            None,
            None,
        );
        assert!(hc.covers_host("web-1.eu-west-1.elb.amazonaws.com"));
        assert!(!hc.covers_host("web-2.eu-west-1.elb.amazonaws.com"));
    }
}
