//! Planned probes: system probes that controls already name, but that this version of Trellis
//! cannot run yet.
//!
//! A control that claims a property of systems (`claim: system`) must be checked on those
//! systems. Where no probe reads the system yet (load balancers, monitoring), the control
//! names the probe that will, and until that probe ships its check is `error` ("not available
//! in this version"), so the control shows *not verified* — never green on the strength of a
//! document's wording.
//!
//! Each entry below documents the parameters and attributes the real probe provides, so the
//! controls naming them compile and are checked like any other (unknown attributes are
//! refused). Replacing an entry with its real implementation changes no control file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError};

/// Planned probes without parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Declares a planned probe: its contract (name, source, attributes, parameters, example),
/// and a collection that always reports that the probe is not available yet.
macro_rules! planned {
    (
        $(#[$doc:meta])*
        $ty:ident, $name:literal, $source:literal, $params:ty,
        summary: $summary:literal,
        example: $example:literal,
        attributes: [$($attr:expr),* $(,)?]
    ) => {
        $(#[$doc])*
        pub struct $ty;

        impl Probe for $ty {
            const NAME: &'static str = $name;
            const SOURCE: &'static str = $source;
            const KIND: EvidenceKind = EvidenceKind::System;
            const SUMMARY: &'static str = concat!("Planned, not available in this version: ", $summary);
            const ATTRIBUTES: &'static [Attribute] = &[$($attr),*];
            const EXAMPLE: &'static str = $example;

            type Params = $params;

            async fn collect(_: &ProbeContext, _: &$params) -> Result<Collected, ProbeError> {
                Err(ProbeError::NotAvailable($name))
            }
        }
    };
}

planned! {
    /// `aws.elbv2.load_balancers`: Elastic Load Balancing v2.
    LoadBalancers, "aws.elbv2.load_balancers", "aws", NoParams,
    summary: "each application or network load balancer: scheme, availability zones, and its listeners' protocols and TLS policies.",
    example: "probe: aws.elbv2.load_balancers\nwhere: scheme == \"internet-facing\"\nassert: size(availability_zones) >= 2\n",
    attributes: [
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("region", String, "AWS region"),
        attr!("arn", String, "the load balancer's ARN"),
        attr!("name", String, "the load balancer's name"),
        attr!("type", String, "`application`, `network` or `gateway`"),
        attr!("scheme", String, "`internet-facing` or `internal`"),
        attr!("availability_zones", List, "the zones it serves"),
        attr!("plain_http_listeners", Int, "listeners on plain HTTP that do not only redirect to HTTPS"),
        attr!("weakest_tls", String, "the oldest TLS version any of its listeners allows, null if none"),
    ]
}

planned! {
    /// `aws.monitoring.targets`: what watches the public services.
    MonitoringTargets, "aws.monitoring.targets", "aws", NoParams,
    summary: "each public load balancer and configured endpoint: the CloudWatch alarms and Route 53 health checks watching it, and whether they notify anyone.",
    example: "probe: aws.monitoring.targets\nassert: watched && alarms_with_actions > 0\n",
    attributes: [
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("target", String, "the load balancer's ARN or the endpoint's URL"),
        attr!("kind", String, "`load_balancer` or `endpoint`"),
        attr!("watched", Bool, "at least one alarm or health check covers it"),
        attr!("alarms", Int, "alarms and health checks covering it"),
        attr!("alarms_with_actions", Int, "of those, the ones with an action (notification)"),
    ]
}
