//! `aws.elbv2.*`: Elastic Load Balancing v2 (application, network and gateway load balancers).
//!
//! - `aws.elbv2.load_balancers` — every load balancer of each account and region: scheme,
//!   availability zones, and its listeners: protocol, SSL policy and the TLS versions that
//!   policy allows (read from `DescribeSSLPolicies`, not from the policy's name), and whether
//!   a plain HTTP listener does nothing but redirect to HTTPS (every one of its rules,
//!   default included, read with `DescribeRules`).
//!
//! Listings are cached per run by account and region (load balancers, SSL policies) and by
//! listener (rules), so every control reading them costs one request per page.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::fetch::{cached, paginate};
use super::{Op, RegionSelection, Scope, classify, object, time, ts};
use crate::probes::aws::ec2::{base, id, per_region};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The Elastic Load Balancing v2 calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[
    DESCRIBE_LOAD_BALANCERS,
    DESCRIBE_LISTENERS,
    DESCRIBE_SSL_POLICIES,
    DESCRIBE_RULES,
];

const DESCRIBE_LOAD_BALANCERS: Op = Op {
    name: "DescribeLoadBalancers",
    permission: "elasticloadbalancing:DescribeLoadBalancers",
};
const DESCRIBE_LISTENERS: Op = Op {
    name: "DescribeListeners",
    permission: "elasticloadbalancing:DescribeListeners",
};
const DESCRIBE_SSL_POLICIES: Op = Op {
    name: "DescribeSSLPolicies",
    permission: "elasticloadbalancing:DescribeSSLPolicies",
};
const DESCRIBE_RULES: Op = Op {
    name: "DescribeRules",
    permission: "elasticloadbalancing:DescribeRules",
};

/// The largest page the Elastic Load Balancing v2 listings accept.
const PAGE_SIZE: i32 = 400;

// ----------------------------------------------------------------------------------------
// Listings

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadBalancer {
    pub arn: String,
    pub name: String,
    /// `application`, `network` or `gateway`.
    pub kind: Option<String>,
    /// `internet-facing` or `internal`.
    pub scheme: Option<String>,
    pub dns_name: Option<String>,
    pub zones: Vec<String>,
    pub state: Option<String>,
    pub vpc_id: Option<String>,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl LoadBalancer {
    pub fn internet_facing(&self) -> bool {
        self.scheme.as_deref() == Some("internet-facing")
    }

    /// The `app/name/id` (or `net/…`, `gwy/…`) part of the ARN, as CloudWatch's
    /// `LoadBalancer` dimension names it.
    pub fn dimension(&self) -> Option<&str> {
        self.arn.split_once(":loadbalancer/").map(|(_, s)| s)
    }
}

/// Every load balancer of the account in the scope's region.
pub(crate) async fn load_balancers(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<LoadBalancer>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:elbv2:load-balancers",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.elbv2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_LOAD_BALANCERS,
            client
                .describe_load_balancers()
                .page_size(PAGE_SIZE)
                .into_paginator()
                .send(),
            |page| {
                for lb in page.load_balancers() {
                    let mut zones: Vec<String> = lb
                        .availability_zones()
                        .iter()
                        .filter_map(|z| z.zone_name().map(str::to_string))
                        .collect();
                    zones.sort();
                    zones.dedup();
                    out.push(LoadBalancer {
                        arn: lb.load_balancer_arn().unwrap_or("").to_string(),
                        name: lb.load_balancer_name().unwrap_or("").to_string(),
                        kind: lb.r#type().map(|t| t.as_str().to_string()),
                        scheme: lb.scheme().map(|s| s.as_str().to_string()),
                        dns_name: lb.dns_name().map(str::to_string),
                        zones,
                        state: lb
                            .state()
                            .and_then(|s| s.code())
                            .map(|c| c.as_str().to_string()),
                        vpc_id: lb.vpc_id().map(str::to_string),
                        created_at: lb.created_time().and_then(time),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

/// What one action of a listener or rule does, as far as transport security goes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ActionSummary {
    /// `forward`, `redirect`, `fixed-response`, `authenticate-oidc`…
    pub kind: String,
    /// The protocol a redirect sends the client to (`HTTPS`, or `#{protocol}`: unchanged).
    pub redirect_protocol: Option<String>,
}

fn actions(list: &[aws_sdk_elasticloadbalancingv2::types::Action]) -> Vec<ActionSummary> {
    list.iter()
        .map(|a| ActionSummary {
            kind: a
                .r#type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            redirect_protocol: a
                .redirect_config()
                .and_then(|r| r.protocol())
                .map(str::to_string),
        })
        .collect()
}

/// The actions only send the client to HTTPS: at least one redirect to `HTTPS`, and nothing
/// else but authentication steps (which precede the final action).
fn only_redirects_to_https(list: &[ActionSummary]) -> bool {
    let mut redirects = false;
    for a in list {
        match a.kind.as_str() {
            "redirect" if a.redirect_protocol.as_deref() == Some("HTTPS") => redirects = true,
            "authenticate-oidc" | "authenticate-cognito" => {}
            _ => return false,
        }
    }
    redirects
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Listener {
    pub arn: String,
    pub port: Option<i32>,
    /// `HTTP`, `HTTPS`, `TCP`, `TLS`, `UDP`, `TCP_UDP`, `GENEVE`.
    pub protocol: Option<String>,
    pub ssl_policy: Option<String>,
    pub default_actions: Vec<ActionSummary>,
}

/// The listeners of one load balancer.
pub(crate) async fn listeners(
    ctx: &ProbeContext,
    scope: &Scope,
    load_balancer_arn: &str,
) -> Result<Arc<Vec<Listener>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:elbv2:listeners:{load_balancer_arn}",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.elbv2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_LISTENERS,
            client
                .describe_listeners()
                .load_balancer_arn(load_balancer_arn)
                .page_size(PAGE_SIZE)
                .into_paginator()
                .send(),
            |page| {
                for l in page.listeners() {
                    out.push(Listener {
                        arn: l.listener_arn().unwrap_or("").to_string(),
                        port: l.port(),
                        protocol: l.protocol().map(|p| p.as_str().to_string()),
                        // Only a listener that terminates TLS has a policy that means
                        // anything (moto reports its default policy on HTTP listeners too).
                        ssl_policy: l
                            .ssl_policy()
                            .filter(|_| {
                                l.protocol()
                                    .is_some_and(|p| matches!(p.as_str(), "HTTPS" | "TLS"))
                            })
                            .map(str::to_string),
                        default_actions: actions(l.default_actions()),
                    });
                }
            }
        );
        out.sort_by_key(|l| (l.port, l.protocol.clone()));
        Ok(out)
    })
    .await
}

/// Every rule of one listener (the default rule included), as the actions each takes.
pub(crate) async fn rules(
    ctx: &ProbeContext,
    scope: &Scope,
    listener_arn: &str,
) -> Result<Arc<Vec<Vec<ActionSummary>>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:elbv2:rules:{listener_arn}",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.elbv2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_RULES,
            client
                .describe_rules()
                .listener_arn(listener_arn)
                .page_size(PAGE_SIZE)
                .into_paginator()
                .send(),
            |page| {
                for r in page.rules() {
                    out.push(actions(r.actions()));
                }
            }
        );
        Ok(out)
    })
    .await
}

/// Every SSL policy of the region, by name: the protocols each allows, as AWS lists them
/// (`TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`). Elastic Load Balancing v2 has only predefined
/// policies, so one listing per region answers every listener.
pub(crate) async fn ssl_policies(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<BTreeMap<String, Vec<String>>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:elbv2:ssl-policies",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let client = scope.account.elbv2(&scope.region);
        let permits = scope.account.permits(&scope.region);
        let label = scope.label();
        let mut out = BTreeMap::new();
        let mut marker: Option<String> = None;
        // No paginator in the SDK for this one: follow NextMarker by hand.
        loop {
            let page = {
                let _permit = permits.acquire().await;
                client
                    .describe_ssl_policies()
                    .page_size(PAGE_SIZE)
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE_SSL_POLICIES, &label, e))?
            };
            for p in page.ssl_policies() {
                if let Some(name) = p.name() {
                    out.insert(name.to_string(), p.ssl_protocols().to_vec());
                }
            }
            match page.next_marker() {
                Some(next) if !next.is_empty() && Some(next) != marker.as_deref() => {
                    marker = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(out)
    })
    .await
}

// ----------------------------------------------------------------------------------------
// TLS versions

/// A protocol name as Trellis reports it (`TLSv1` is `TLSv1.0`), and its rank (older first).
fn tls_version(protocol: &str) -> (String, u8) {
    match protocol.trim() {
        "SSLv3" => ("SSLv3".to_string(), 0),
        "TLSv1" | "TLSv1.0" => ("TLSv1.0".to_string(), 1),
        "TLSv1.1" => ("TLSv1.1".to_string(), 2),
        "TLSv1.2" => ("TLSv1.2".to_string(), 3),
        "TLSv1.3" => ("TLSv1.3".to_string(), 4),
        // An unknown name is kept as written and ranked oldest: never taken for modern.
        other => (other.to_string(), 0),
    }
}

/// Versions older than TLS 1.2 (rank below `TLSv1.2`).
const LEGACY_BELOW: u8 = 3;

// ----------------------------------------------------------------------------------------

/// `aws.elbv2.load_balancers`.
pub struct LoadBalancers;

/// One listener, evaluated: what the resource's `listeners` attribute lists.
struct ListenerView {
    port: Option<i32>,
    protocol: String,
    ssl_policy: Option<String>,
    /// `None`: the policy is not among those AWS listed.
    tls_versions: Option<Vec<(String, u8)>>,
    redirects_to_https: bool,
}

impl Probe for LoadBalancers {
    const NAME: &'static str = "aws.elbv2.load_balancers";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "Elastic Load Balancing v2 load balancers (application, network, gateway), one resource per load balancer, per account and region: scheme, availability zones, and its listeners' protocols, SSL policies and the TLS versions those allow, and plain HTTP listeners that do more than redirect to HTTPS.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("arn", String, "the load balancer's ARN"),
        attr!("name", String, "the load balancer's name"),
        attr!("type", String, "`application`, `network` or `gateway`"),
        attr!("scheme", String, "`internet-facing` or `internal`"),
        attr!("dns_name", String, "the load balancer's DNS name"),
        attr!(
            "state",
            String,
            "`active`, `provisioning`, `active_impaired` or `failed`"
        ),
        attr!("vpc_id", String, "the load balancer's VPC"),
        attr!(
            "availability_zones",
            List,
            "the zones it serves (names, sorted)"
        ),
        attr!("zone_count", Int, "how many availability zones it serves"),
        attr!(
            "listeners",
            List,
            "its listeners, each a map: `port`, `protocol` (HTTP, HTTPS, TCP, TLS, UDP…), `ssl_policy` (null without TLS), `tls_versions` (the versions the policy allows, `TLSv1.0`…`TLSv1.3`; null if the policy was not listed), `redirects_to_https` (an HTTP listener every rule of which redirects to HTTPS)"
        ),
        attr!(
            "plain_http_listeners",
            Int,
            "listeners on plain HTTP that do not only redirect to HTTPS"
        ),
        attr!("plain_http_ports", List, "the ports of those listeners"),
        attr!(
            "plain_tcp_listeners",
            Int,
            "TCP, UDP and TCP_UDP listeners: the load balancer does not encrypt them (the traffic may still be TLS end to end)"
        ),
        attr!(
            "weakest_tls",
            String,
            "the oldest TLS version any of its listeners allows (`TLSv1.0`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`), null if none terminates TLS"
        ),
        attr!(
            "allows_legacy_tls",
            Bool,
            "some listener's SSL policy allows a version older than TLS 1.2 (TLS 1.0 or 1.1)"
        ),
        attr!(
            "created_at",
            Timestamp,
            "when the load balancer was created"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.elbv2.load_balancers
where: scheme == "internet-facing"
assert: zone_count >= 2 && plain_http_listeners == 0 && !allows_legacy_tls
"#;

    type Params = RegionSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &RegionSelection,
    ) -> Result<Collected, ProbeError> {
        per_region(ctx, Self::NAME, params, |scope| async move {
            let lbs = load_balancers(ctx, &scope).await?;
            let mut out = Vec::new();
            for lb in lbs.iter() {
                out.push(load_balancer(ctx, &scope, lb).await);
            }
            Ok(out)
        })
        .await
    }
}

/// Listener-derived attributes: read when the listeners, their rules and policies could be.
const LISTENER_ATTRIBUTES: &[&str] = &[
    "listeners",
    "plain_http_listeners",
    "plain_http_ports",
    "plain_tcp_listeners",
    "weakest_tls",
    "allows_legacy_tls",
];

/// The listeners of a load balancer, each with its rules (HTTP) and its policy's versions.
async fn listener_views(
    ctx: &ProbeContext,
    scope: &Scope,
    lb: &LoadBalancer,
) -> Result<Vec<ListenerView>, ProbeError> {
    let listeners = listeners(ctx, scope, &lb.arn).await?;
    let needs_policies = listeners.iter().any(|l| l.ssl_policy.is_some());
    let policies = if needs_policies {
        ssl_policies(ctx, scope).await?
    } else {
        Arc::new(BTreeMap::new())
    };
    let mut views = Vec::new();
    for l in listeners.iter() {
        let protocol = l.protocol.clone().unwrap_or_default();
        let redirects_to_https = if protocol == "HTTP" {
            let rules = rules(ctx, scope, &l.arn).await?;
            // The listener's rules include its default rule; a listener AWS lists without
            // rules is judged on its default actions.
            if rules.is_empty() {
                only_redirects_to_https(&l.default_actions)
            } else {
                rules.iter().all(|r| only_redirects_to_https(r))
            }
        } else {
            false
        };
        let tls_versions = l.ssl_policy.as_ref().and_then(|p| {
            policies.get(p).map(|protocols| {
                let mut v: Vec<(String, u8)> = protocols.iter().map(|p| tls_version(p)).collect();
                v.sort_by_key(|(_, rank)| *rank);
                v.dedup();
                v
            })
        });
        views.push(ListenerView {
            port: l.port,
            protocol,
            ssl_policy: l.ssl_policy.clone(),
            tls_versions,
            redirects_to_https,
        });
    }
    Ok(views)
}

/// The listener-derived attributes, and those that could not be read with why.
fn listener_attributes(
    scope: &Scope,
    views: &[ListenerView],
) -> (crate::probes::Attributes, BTreeMap<String, String>) {
    let plain_http: Vec<Option<i32>> = views
        .iter()
        .filter(|l| l.protocol == "HTTP" && !l.redirects_to_https)
        .map(|l| l.port)
        .collect();
    let plain_tcp = views
        .iter()
        .filter(|l| matches!(l.protocol.as_str(), "TCP" | "UDP" | "TCP_UDP"))
        .count();
    let unlisted: Vec<&str> = views
        .iter()
        .filter(|l| l.ssl_policy.is_some() && l.tls_versions.is_none())
        .filter_map(|l| l.ssl_policy.as_deref())
        .collect();
    let weakest = views
        .iter()
        .filter_map(|l| l.tls_versions.as_ref())
        .flatten()
        .min_by_key(|(_, rank)| *rank);
    let mut unknown = BTreeMap::new();
    let (weakest_tls, allows_legacy_tls) = if unlisted.is_empty() {
        (
            weakest.map(|(name, _)| name.clone()),
            json!(weakest.is_some_and(|(_, rank)| *rank < LEGACY_BELOW)),
        )
    } else {
        let why = format!(
            "DescribeSSLPolicies in {} did not list the SSL policy {}",
            scope.label(),
            unlisted.join(", ")
        );
        unknown.insert("weakest_tls".to_string(), why.clone());
        unknown.insert("allows_legacy_tls".to_string(), why);
        (None, serde_json::Value::Null)
    };
    let listener_maps: Vec<serde_json::Value> = views
        .iter()
        .map(|l| {
            json!({
                "port": l.port,
                "protocol": l.protocol,
                "ssl_policy": l.ssl_policy,
                "tls_versions": l.tls_versions.as_ref().map(|v| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()),
                "redirects_to_https": l.redirects_to_https,
            })
        })
        .collect();
    let a = object(json!({
        "listeners": listener_maps,
        "plain_http_listeners": plain_http.len(),
        "plain_http_ports": plain_http,
        "plain_tcp_listeners": plain_tcp,
        "weakest_tls": weakest_tls,
        "allows_legacy_tls": allows_legacy_tls,
    }));
    (a, unknown)
}

/// One load balancer as a resource. Its listeners (or their rules or policies) failing to be
/// read leaves the listener attributes unknown, naming why: a check of its zones is still
/// made, a check of its listeners is `error`.
async fn load_balancer(ctx: &ProbeContext, scope: &Scope, lb: &LoadBalancer) -> Resource {
    let mut a = base(scope);
    a.extend(object(json!({
        "arn": lb.arn,
        "name": lb.name,
        "type": lb.kind,
        "scheme": lb.scheme,
        "dns_name": lb.dns_name,
        "state": lb.state,
        "vpc_id": lb.vpc_id,
        "availability_zones": lb.zones,
        "zone_count": lb.zones.len(),
        "created_at": ts(lb.created_at),
    })));
    let unknown = match listener_views(ctx, scope, lb).await {
        Ok(views) => {
            let (listener_attrs, unknown) = listener_attributes(scope, &views);
            a.extend(listener_attrs);
            unknown
        }
        Err(e) => {
            let why = e.to_string();
            LISTENER_ATTRIBUTES
                .iter()
                .map(|name| {
                    a.insert(name.to_string(), serde_json::Value::Null);
                    (name.to_string(), why.clone())
                })
                .collect()
        }
    };
    Resource {
        id: id(scope, &lb.arn),
        name: lb.arn.clone(),
        attributes: a,
        error: None,
        unknown,
        scope: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(kind: &str, protocol: Option<&str>) -> ActionSummary {
        ActionSummary {
            kind: kind.to_string(),
            redirect_protocol: protocol.map(str::to_string),
        }
    }

    #[test]
    fn only_https_redirects_count_as_redirecting() {
        assert!(only_redirects_to_https(&[action(
            "redirect",
            Some("HTTPS")
        )]));
        assert!(only_redirects_to_https(&[
            action("authenticate-oidc", None),
            action("redirect", Some("HTTPS"))
        ]));
        assert!(!only_redirects_to_https(&[action(
            "redirect",
            Some("#{protocol}")
        )]));
        assert!(!only_redirects_to_https(&[action("forward", None)]));
        assert!(!only_redirects_to_https(&[action("fixed-response", None)]));
        assert!(!only_redirects_to_https(&[]));
    }

    #[test]
    fn tls_versions_are_ranked_and_named() {
        assert_eq!(tls_version("TLSv1"), ("TLSv1.0".to_string(), 1));
        assert_eq!(tls_version("TLSv1.2").1, LEGACY_BELOW);
        assert!(tls_version("SSLv3").1 < LEGACY_BELOW);
        assert!(tls_version("something new").1 < LEGACY_BELOW);
    }

    #[test]
    fn the_cloudwatch_dimension_is_the_arn_suffix() {
        let lb = LoadBalancer {
            arn: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188".into(),
            name: "web".into(),
            kind: None,
            scheme: None,
            dns_name: None,
            zones: vec![],
            state: None,
            vpc_id: None,
            created_at: None,
        };
        assert_eq!(lb.dimension(), Some("app/web/50dc6c495c0c9188"));
    }
}
