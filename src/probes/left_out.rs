//! Probes a slim build leaves out.
//!
//! The AWS SDK crates are most of Trellis's build (time and memory), so the AWS probes sit
//! behind the default-on cargo feature `aws`; `cargo build --no-default-features` builds
//! Trellis without them. Controls naming an AWS probe must still load, validate and show
//! *not verified* in such a build, never fail to start and never pass. So each left-out
//! probe's contract — name, source, evidence kind, summary, attributes, parameter schema and
//! example — is kept in `contracts/aws.json`, written from the full build's registry and
//! compared with it by a test (it cannot drift). In a slim build a left-out probe plans like
//! any other (unknown parameters and attributes are refused), and collecting it is always
//! [`ProbeError::NotAvailable`](super::ProbeError::NotAvailable).

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::{
    AttrKind, Attribute, BoxFuture, Collected, DynProbe, EvidenceKind, PlannedProbe, ProbeContext,
    ProbeError,
};

/// The contracts of the AWS probes, as the full build declares them.
pub(crate) const AWS_CONTRACTS: &str = include_str!("contracts/aws.json");

/// A probe's contract, as written to `contracts/*.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Contract {
    pub name: String,
    pub source: String,
    pub kind: EvidenceKind,
    pub summary: String,
    pub attributes: Vec<AttributeContract>,
    pub params_schema: serde_json::Value,
    pub example: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttributeContract {
    pub name: String,
    pub kind: AttrKind,
    pub doc: String,
}

impl Contract {
    /// The contract of a probe of this build.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn of(p: &dyn DynProbe) -> Contract {
        Contract {
            name: p.name().to_string(),
            source: p.source().to_string(),
            kind: p.kind(),
            summary: p.summary().to_string(),
            attributes: p
                .attributes()
                .iter()
                .map(|a| AttributeContract {
                    name: a.name.to_string(),
                    kind: a.kind,
                    doc: a.doc.to_string(),
                })
                .collect(),
            params_schema: serde_json::to_value(p.params_schema()).unwrap_or_default(),
            example: p.example().to_string(),
        }
    }
}

/// A probe this build does not contain, known by its contract.
struct LeftOut {
    name: &'static str,
    source: &'static str,
    kind: EvidenceKind,
    summary: &'static str,
    attributes: &'static [Attribute],
    params_schema: serde_json::Value,
    example: &'static str,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl From<Contract> for LeftOut {
    fn from(c: Contract) -> LeftOut {
        let attributes: Vec<Attribute> = c
            .attributes
            .into_iter()
            .map(|a| Attribute {
                name: leak(a.name),
                kind: a.kind,
                doc: leak(a.doc),
            })
            .collect();
        LeftOut {
            name: leak(c.name),
            source: leak(c.source),
            kind: c.kind,
            summary: leak(format!(
                "Not in this build (built without the `aws` feature): {}",
                c.summary
            )),
            attributes: Box::leak(attributes.into_boxed_slice()),
            params_schema: c.params_schema,
            example: leak(c.example),
        }
    }
}

/// The probes this build leaves out: empty in a full build.
static LEFT_OUT: LazyLock<Vec<LeftOut>> = LazyLock::new(|| {
    if cfg!(feature = "aws") {
        return Vec::new();
    }
    // The file is tested to parse (and to match the full build) in CI, so a failure here is
    // a build that skipped its tests; it leaves the probes unknown rather than panicking.
    serde_json::from_str::<Vec<Contract>>(AWS_CONTRACTS)
        .map(|cs| cs.into_iter().map(LeftOut::from).collect())
        .unwrap_or_default()
});

/// Every probe this build leaves out.
pub fn all() -> impl Iterator<Item = &'static dyn DynProbe> {
    LEFT_OUT.iter().map(|p| p as &dyn DynProbe)
}

#[derive(Debug)]
struct NotInThisBuild {
    name: &'static str,
    key: String,
}

impl PlannedProbe for NotInThisBuild {
    fn probe(&self) -> &'static str {
        self.name
    }

    fn params_key(&self) -> &str {
        &self.key
    }

    /// Reads nothing: the collection fails at once.
    fn sources(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn collect<'a>(&'a self, _: &'a ProbeContext) -> BoxFuture<'a, Result<Collected, ProbeError>> {
        Box::pin(std::future::ready(Err(ProbeError::NotAvailable(self.name))))
    }
}

impl DynProbe for LeftOut {
    fn name(&self) -> &'static str {
        self.name
    }
    fn source(&self) -> &'static str {
        self.source
    }
    fn kind(&self) -> EvidenceKind {
        self.kind
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn attributes(&self) -> &'static [Attribute] {
        self.attributes
    }
    fn example(&self) -> &'static str {
        self.example
    }
    fn reads_previous(&self) -> bool {
        false
    }
    fn params_schema(&self) -> schemars::Schema {
        schemars::Schema::try_from(self.params_schema.clone()).unwrap_or_default()
    }

    /// The parameters are checked against the contract's property names (the full build's
    /// parameters refuse unknown fields); their values are not, since nothing runs them.
    fn plan(&self, with: &serde_json::Value) -> Result<Arc<dyn PlannedProbe>, String> {
        let empty = serde_json::Map::new();
        let given = match with {
            serde_json::Value::Null => &empty,
            serde_json::Value::Object(m) => m,
            other => return Err(format!("invalid type: {other}, expected a mapping")),
        };
        let known = self.params_schema["properties"].as_object();
        for field in given.keys() {
            if !known.is_some_and(|k| k.contains_key(field)) {
                let expected: Vec<String> = known
                    .map(|k| k.keys().map(|k| format!("`{k}`")).collect())
                    .unwrap_or_default();
                return Err(format!(
                    "unknown field `{field}`, expected one of {}",
                    expected.join(", ")
                ));
            }
        }
        Ok(Arc::new(NotInThisBuild {
            name: self.name,
            key: serde_json::Value::Object(given.clone()).to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed contracts are the full build's AWS probes, exactly. Set
    /// `TRELLIS_WRITE_CONTRACTS=1` to rewrite the file after changing an AWS probe.
    #[cfg(feature = "aws")]
    #[test]
    fn aws_contracts_match_the_full_build() {
        let live: Vec<Contract> = super::super::REGISTRY
            .iter()
            .filter(|p| p.name().starts_with("aws."))
            .map(|p| Contract::of(*p))
            .collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probes/contracts/aws.json");
        if std::env::var_os("TRELLIS_WRITE_CONTRACTS").is_some() {
            let text = serde_json::to_string_pretty(&live).unwrap() + "\n";
            std::fs::write(path, text).unwrap();
            return;
        }
        let committed: Vec<Contract> = serde_json::from_str(AWS_CONTRACTS).unwrap();
        assert!(
            committed == live,
            "src/probes/contracts/aws.json is out of date: run \
             `TRELLIS_WRITE_CONTRACTS=1 cargo test --lib aws_contracts`"
        );
    }

    /// Without the `aws` feature, the bundled controls still load: their AWS checks name
    /// left-out probes, known by their contracts.
    #[cfg(not(feature = "aws"))]
    #[test]
    fn the_bundled_controls_load_in_a_slim_build() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("controls");
        let catalog = crate::catalog::load(&dir).unwrap_or_else(|d| panic!("{d:?}"));
        let aws_checks = catalog
            .controls()
            .iter()
            .flat_map(|c| &c.checks)
            .filter(|c| c.probe.name().starts_with("aws."))
            .count();
        assert!(aws_checks > 10, "{aws_checks}");
        assert!(
            super::super::REGISTRY
                .iter()
                .all(|p| !p.name().starts_with("aws."))
        );
    }

    /// A left-out probe plans like the real one (unknown parameters refused) and collects
    /// `NotAvailable`, never a verdict.
    #[test]
    fn a_left_out_probe_is_not_available() {
        let contracts: Vec<Contract> = serde_json::from_str(AWS_CONTRACTS).unwrap();
        assert!(contracts.len() > 10, "{}", contracts.len());
        let c = contracts
            .into_iter()
            .find(|c| c.name == "aws.ec2.security_groups")
            .unwrap();
        let probe = LeftOut::from(c);
        assert!(probe.attributes().iter().any(|a| a.name == "attached"));
        let err = probe
            .plan(&serde_json::json!({"regionz": ["eu-west-1"]}))
            .err()
            .unwrap();
        assert!(err.contains("unknown field `regionz`"), "{err}");
        let planned = probe
            .plan(&serde_json::json!({"regions": ["eu-west-1"]}))
            .unwrap();
        let ctx = ProbeContext {
            sources: Default::default(),
            base_dir: ".".into(),
            now: chrono::Utc::now(),
            timeout: std::time::Duration::from_secs(1),
            cache: Default::default(),
            previous: Default::default(),
            validators: Default::default(),
        };
        let result = futures::executor::block_on(planned.collect(&ctx));
        assert_eq!(
            result.unwrap_err(),
            ProbeError::NotAvailable("aws.ec2.security_groups")
        );
    }
}
