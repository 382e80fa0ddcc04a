//! Probe plugins: collectors of evidence.
//!
//! A probe reads one kind of evidence (the HR roster, a folder of policies, IAM users…) and
//! returns it as a population of [`Resource`]s whose attributes the control's CEL expressions
//! read. Probes receive a [`ProbeContext`] and never touch the store; a failed collection is a
//! [`ProbeError`], which the evaluator turns into an `error` verdict naming the cause.
//!
//! Every probe is listed once in [`REGISTRY`]; tests loop over it.

/// `attr!("name", Kind, "doc")`: an [`Attribute`] entry in a probe's attribute list.
macro_rules! attr {
    ($name:literal, $kind:ident, $doc:literal) => {
        $crate::probes::Attribute {
            name: $name,
            kind: $crate::probes::AttrKind::$kind,
            doc: $doc,
        }
    };
}

pub mod attributes;
#[cfg(feature = "aws")]
pub mod aws;
pub mod cache;
pub mod conditional;
pub mod dates;
pub mod github;
pub mod hr;
pub mod http;
pub mod identity;
pub mod left_out;
pub mod policies;
pub mod registers;

use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::model::RawJson;
pub use attributes::{AttrValue, Attributes};
pub use cache::FetchCache;

use crate::config::SourcesConfig;

/// One thing a probe reports on: a person, a policy document, an IAM user…
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// Stable identifier, unique within the probe's population (e.g. `hr:E1007`).
    pub id: String,
    /// Human name used in finding sentences (e.g. `Dana Reyes <dana@example.com>`).
    pub name: String,
    /// Attribute values, keyed by the names declared in the probe's [`Attribute`] list.
    pub attributes: Attributes,
    /// Set when this one resource could not be read completely: its finding is `error`
    /// naming the cause, while the rest of the population is still evaluated.
    pub error: Option<String>,
    /// Attributes left null because they could not be read, with why (e.g. "not visible
    /// without admin access"). A check that needs one is `error` naming that cause; checks
    /// that do not are evaluated as usual.
    pub unknown: std::collections::BTreeMap<String, String>,
    /// Set on an `error` resource that stands for a whole account, region, organisation or
    /// repository that could not be read, and so for any number of resources: a check whose
    /// `expect` counts resources (`percent`, `at_most_failing`…) is never satisfied by its
    /// absence (see `evaluate`). Unset on a resource that is one resource, readable or not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub scope: bool,
}

/// What a successful collection returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collected {
    pub resources: Vec<Resource>,
    /// The raw evidence as collected, as JSON text (kept in the store with its SHA-256).
    pub raw: RawJson,
}

/// Why a probe could not collect. Every variant ends as an `error` verdict, never pass or fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("source `{0}` is not configured")]
    NotConfigured(&'static str),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("malformed data: {0}")]
    BadBody(String),
    #[error("source unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Io(String),
    /// A probe this build leaves out (see [`left_out`]): built without its cargo feature.
    #[error(
        "probe `{0}` is not in this build of Trellis (built without its cargo feature, e.g. `aws`), so the check is not verified"
    )]
    NotAvailable(&'static str),
}

impl ProbeError {
    /// True when the source was simply not set up: shown publicly as "not verified".
    pub fn is_not_configured(&self) -> bool {
        matches!(self, ProbeError::NotConfigured(_))
    }

    /// The kind of failure, one word for metrics: `not_configured`, `auth`, `throttled`,
    /// `timeout`, `bad_body`, `unavailable`, `io` (a file missing or unreadable, and other
    /// failures to read) or `not_available` (not in this build).
    pub fn cause(&self) -> &'static str {
        match self {
            ProbeError::NotConfigured(_) => "not_configured",
            ProbeError::Auth(_) => "auth",
            ProbeError::Throttled(_) => "throttled",
            ProbeError::Timeout(_) => "timeout",
            ProbeError::BadBody(_) => "bad_body",
            ProbeError::Unavailable(_) => "unavailable",
            ProbeError::Io(_) => "io",
            ProbeError::NotAvailable(_) => "not_available",
        }
    }
}

pub use crate::model::EvidenceKind;

/// The type of an attribute, used to convert values for CEL (dates become timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrKind {
    String,
    Bool,
    Int,
    /// `YYYY-MM-DD`, bound in CEL as a timestamp at midnight UTC; `null` when absent.
    Date,
    /// RFC 3339, bound in CEL as a timestamp; `null` when absent.
    Timestamp,
    List,
    Map,
}

/// A documented attribute of the resources a probe returns.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: AttrKind,
    pub doc: &'static str,
}

/// Everything a probe may use while collecting. Shared by all probes of one run.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    pub sources: Arc<SourcesConfig>,
    /// Relative paths in source configuration resolve against this directory (the config
    /// file's directory).
    pub base_dir: PathBuf,
    /// The run's clock: every evaluation of the run sees the same "now".
    pub now: DateTime<Utc>,
    /// Upper bound for one probe collection.
    pub timeout: Duration,
    pub cache: FetchCache,
    /// Read-only: the evidence earlier runs stored for the probes that declare
    /// [`Probe::READS_PREVIOUS`] (filled by the runner from the store before collection; empty
    /// when nothing is stored, e.g. `check --no-store`).
    pub previous: Arc<PreviousEvidence>,
    /// Conditional requests across runs: the answers earlier runs kept (read-only, loaded by
    /// the runner from the store) and the run's collector of those it used (saved by the
    /// runner afterwards). Empty when nothing is stored (`check --no-store`).
    pub validators: Arc<conditional::Validators>,
}

/// The newest evidence stored for some probes by earlier runs: for each probe, its newest
/// successful collection per parameter set. A probe reads it to carry a value across runs
/// (e.g. when a page last changed); it never writes it.
#[derive(Debug, Clone, Default)]
pub struct PreviousEvidence {
    by_probe: std::collections::HashMap<String, Vec<crate::model::Evidence>>,
}

impl PreviousEvidence {
    /// From stored evidence (any probes, any order).
    pub fn new(evidence: impl IntoIterator<Item = crate::model::Evidence>) -> PreviousEvidence {
        let mut by_probe: std::collections::HashMap<String, Vec<crate::model::Evidence>> =
            Default::default();
        for e in evidence {
            by_probe.entry(e.probe.clone()).or_default().push(e);
        }
        for list in by_probe.values_mut() {
            // Newest first.
            list.sort_by_key(|e| std::cmp::Reverse(e.collected_at));
        }
        PreviousEvidence { by_probe }
    }

    /// The stored evidence of `probe`, newest first.
    pub fn of(&self, probe: &str) -> &[crate::model::Evidence] {
        self.by_probe.get(probe).map_or(&[], Vec::as_slice)
    }
}

impl ProbeContext {
    /// The context of a run whose clock reads `now`, with a fresh fetch cache.
    pub fn for_run(loaded: &crate::config::Loaded, now: DateTime<Utc>) -> ProbeContext {
        ProbeContext {
            sources: Arc::new(loaded.config.sources.clone()),
            base_dir: loaded.base_dir.clone(),
            now,
            timeout: loaded.config.limits.probe_timeout.to_std(),
            cache: FetchCache::new(),
            previous: Arc::new(PreviousEvidence::default()),
            validators: Arc::default(),
        }
    }

    /// The longest one collection of `probe` may take: its source's own budget where the
    /// configuration sets one (`sources.github.collection_timeout`, by default
    /// `limits.probe_timeout` plus `sources.github.rate_limit_wait`), else [`Self::timeout`].
    pub fn timeout_for(&self, probe: &str) -> Duration {
        match find(probe).map(|p| p.source()) {
            Some("github") => self
                .sources
                .github
                .as_ref()
                .map_or(self.timeout, |g| g.collection_timeout(self.timeout)),
            _ => self.timeout,
        }
    }

    pub fn resolve_path(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// A probe implementation. Implement this, then add `&Registered::<YourProbe>::NEW` to
/// [`REGISTRY`].
pub trait Probe: Send + Sync + 'static {
    /// Unique dotted name, e.g. `hr.people`.
    const NAME: &'static str;
    /// The configuration source the probe reads (`hr`, `policies`, `aws`, `github`).
    const SOURCE: &'static str;
    /// What kind of evidence the probe collects (see [`EvidenceKind`]).
    const KIND: EvidenceKind;
    const SUMMARY: &'static str;
    const ATTRIBUTES: &'static [Attribute];
    /// A complete, working `checks:` entry using this probe (YAML), shown in docs and tested.
    const EXAMPLE: &'static str;
    /// Whether the probe reads [`ProbeContext::previous`] (the runner then loads it).
    const READS_PREVIOUS: bool = false;
    /// Other sources whose fetches the probe reads through the fetch cache (besides its own
    /// [`Probe::SOURCE`]); the cache refuses any other during its collection, and the runner
    /// lets go of a source's fetches once no collection that may read them is left.
    const ALSO_READS: &'static [&'static str] = &[];

    /// Typed parameters: the check's `with:` mapping.
    type Params: DeserializeOwned + Serialize + schemars::JsonSchema + Debug + Send + Sync + 'static;

    /// Checks that go beyond the parameter types; run at load by `trellis validate`.
    fn validate(_params: &Self::Params) -> Result<(), String> {
        Ok(())
    }

    fn collect(
        ctx: &ProbeContext,
        params: &Self::Params,
    ) -> impl Future<Output = Result<Collected, ProbeError>> + Send;
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of a [`Probe`], as stored in the registry.
pub trait DynProbe: Send + Sync {
    fn name(&self) -> &'static str;
    fn source(&self) -> &'static str;
    fn kind(&self) -> EvidenceKind;
    fn summary(&self) -> &'static str;
    fn attributes(&self) -> &'static [Attribute];
    fn example(&self) -> &'static str;
    /// See [`Probe::READS_PREVIOUS`].
    fn reads_previous(&self) -> bool;
    fn params_schema(&self) -> schemars::Schema;
    /// Parses and validates a check's `with:` value into a ready-to-run plan.
    fn plan(&self, with: &serde_json::Value) -> Result<Arc<dyn PlannedProbe>, String>;
}

/// A probe with validated parameters, ready to collect.
pub trait PlannedProbe: Send + Sync + Debug {
    fn probe(&self) -> &'static str;
    /// Canonical JSON of the parameters; with the probe name, the fetch-cache key.
    fn params_key(&self) -> &str;
    /// The sources whose fetches the collection may read: the probe's own first.
    fn sources(&self) -> Vec<&'static str>;
    fn collect<'a>(&'a self, ctx: &'a ProbeContext)
    -> BoxFuture<'a, Result<Collected, ProbeError>>;
}

/// Adapter from a [`Probe`] type to a registry entry.
pub struct Registered<P>(PhantomData<fn() -> P>);

impl<P> Registered<P> {
    pub const NEW: Registered<P> = Registered(PhantomData);
}

struct Planned<P: Probe> {
    params: P::Params,
    key: String,
}

impl<P: Probe> Debug for Planned<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", P::NAME, self.key)
    }
}

impl<P: Probe> PlannedProbe for Planned<P> {
    fn probe(&self) -> &'static str {
        P::NAME
    }

    fn params_key(&self) -> &str {
        &self.key
    }

    fn sources(&self) -> Vec<&'static str> {
        std::iter::once(P::SOURCE)
            .chain(P::ALSO_READS.iter().copied())
            .collect()
    }

    fn collect<'a>(
        &'a self,
        ctx: &'a ProbeContext,
    ) -> BoxFuture<'a, Result<Collected, ProbeError>> {
        Box::pin(async move {
            let ctx = ProbeContext {
                cache: ctx.cache.for_probe(P::SOURCE, P::ALSO_READS),
                ..ctx.clone()
            };
            P::collect(&ctx, &self.params).await
        })
    }
}

impl<P: Probe> DynProbe for Registered<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn source(&self) -> &'static str {
        P::SOURCE
    }
    fn kind(&self) -> EvidenceKind {
        P::KIND
    }
    fn summary(&self) -> &'static str {
        P::SUMMARY
    }
    fn attributes(&self) -> &'static [Attribute] {
        P::ATTRIBUTES
    }
    fn example(&self) -> &'static str {
        P::EXAMPLE
    }
    fn reads_previous(&self) -> bool {
        P::READS_PREVIOUS
    }
    fn params_schema(&self) -> schemars::Schema {
        schemars::schema_for!(P::Params)
    }

    fn plan(&self, with: &serde_json::Value) -> Result<Arc<dyn PlannedProbe>, String> {
        let with = if with.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            with.clone()
        };
        let params: P::Params = serde_path_to_error::deserialize(with).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner().to_string();
            if field.is_empty() || field == "." {
                inner
            } else {
                format!("{field}: {inner}")
            }
        })?;
        P::validate(&params)?;
        // serde_json maps are sorted, so this is canonical for equal parameters.
        let key = serde_json::to_value(&params)
            .map(|v| v.to_string())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Planned::<P> { params, key }))
    }
}

/// Every probe Trellis knows. Names are unique (tested).
pub static REGISTRY: &[&dyn DynProbe] = &[
    &Registered::<hr::People>::NEW,
    &Registered::<policies::Policies>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::iam::Credentials>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::iam::Users>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::iam::Policies>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::iam::PasswordPolicy>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::iam::AccountSummary>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::SecurityGroupRules>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::SecurityGroups>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::EbsEncryption>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::Volumes>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::Snapshots>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::Vpcs>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::ec2::Instances>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::accounts::Accounts>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::rds::Instances>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::rds::Clusters>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::rds::Snapshots>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::s3::Buckets>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::s3::AccountPublicAccess>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::cloudtrail::Trails>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::guardduty::Detectors>::NEW,
    &Registered::<github::probes::Org>::NEW,
    &Registered::<github::probes::Members>::NEW,
    &Registered::<github::probes::BranchProtection>::NEW,
    &Registered::<github::probes::RepoSecurity>::NEW,
    &Registered::<github::probes::DependabotAlerts>::NEW,
    &Registered::<registers::Vendors>::NEW,
    &Registered::<registers::Risks>::NEW,
    &Registered::<registers::Incidents>::NEW,
    &Registered::<registers::Exercises>::NEW,
    &Registered::<registers::Meetings>::NEW,
    &Registered::<registers::InsurancePolicies>::NEW,
    &Registered::<registers::AccessReviews>::NEW,
    &Registered::<registers::Devices>::NEW,
    &Registered::<identity::Accounts>::NEW,
    &Registered::<http::tls::Tls>::NEW,
    &Registered::<http::pages::Pages>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::elbv2::LoadBalancers>::NEW,
    #[cfg(feature = "aws")]
    &Registered::<aws::monitoring::MonitoringTargets>::NEW,
];

/// A `Timestamp` attribute: RFC 3339 (seconds), or null.
pub(crate) fn ts(t: Option<DateTime<Utc>>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
}

/// Raw evidence serialized where it is collected; an error (never expected: evidence is plain
/// data) is the collection's `error`.
pub(crate) fn raw<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, ProbeError> {
    RawJson::of_sized(value)
        .map_err(|e| ProbeError::Io(format!("internal: cannot serialize the evidence: {e}")))
}

/// The raw evidence of a collection made of scopes (accounts, regions, organisations…):
/// `{"<key>": {"<scope>": <its evidence> | {"error": "<why>"}, …}, "probe": …, "source": …}`.
/// Each scope's evidence is already text, so the whole is never a tree.
pub(crate) fn scoped_raw(
    source: &str,
    probe: &str,
    key: &str,
    scopes: &std::collections::BTreeMap<String, RawJson>,
) -> Result<RawJson, ProbeError> {
    struct Scoped<'a> {
        source: &'a str,
        probe: &'a str,
        key: &'a str,
        scopes: &'a std::collections::BTreeMap<String, RawJson>,
    }
    impl Serialize for Scoped<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(3))?;
            map.serialize_entry(self.key, self.scopes)?;
            map.serialize_entry("probe", self.probe)?;
            map.serialize_entry("source", self.source)?;
            map.end()
        }
    }
    raw(&Scoped {
        source,
        probe,
        key,
        scopes,
    })
}

/// A resource as raw evidence, `{"attributes": {…}, "id": "…"}`, borrowed from it.
#[cfg(feature = "aws")]
#[derive(Serialize)]
pub(crate) struct IdAndAttributes<'a> {
    attributes: &'a Attributes,
    id: &'a str,
}

#[cfg(feature = "aws")]
impl<'a> IdAndAttributes<'a> {
    pub(crate) fn of(r: &'a Resource) -> IdAndAttributes<'a> {
        IdAndAttributes {
            attributes: &r.attributes,
            id: &r.id,
        }
    }
}

/// The evidence of a scope that could not be read: `{"error": "<why>"}`.
pub(crate) fn scope_error_raw(e: &ProbeError) -> RawJson {
    serde_json::json!({ "error": e.to_string() }).into()
}

/// The attributes of a `json!({...})` object.
pub(crate) fn object(v: serde_json::Value) -> Attributes {
    match v {
        serde_json::Value::Object(m) => m.into(),
        _ => Attributes::new(),
    }
}

/// Every probe a control may name: those of this build ([`REGISTRY`]) and those a slim build
/// leaves out ([`left_out`]), known by their contracts.
pub fn all() -> impl Iterator<Item = &'static dyn DynProbe> {
    REGISTRY.iter().copied().chain(left_out::all())
}

/// Looks a probe up by name.
pub fn find(name: &str) -> Option<&'static dyn DynProbe> {
    all().find(|p| p.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn probe_names_are_unique_and_dotted() {
        let mut seen = HashSet::new();
        for p in REGISTRY {
            assert!(seen.insert(p.name()), "duplicate probe name {}", p.name());
            assert!(p.name().contains('.'), "{} should be source.kind", p.name());
            assert!(!p.summary().is_empty());
        }
    }

    #[test]
    fn attribute_names_are_unique_and_documented() {
        for p in REGISTRY {
            let mut seen = HashSet::new();
            for a in p.attributes() {
                assert!(
                    seen.insert(a.name),
                    "{}: duplicate attribute {}",
                    p.name(),
                    a.name
                );
                assert!(!a.doc.is_empty(), "{}.{} has no doc", p.name(), a.name);
                assert!(!crate::catalog::expr::BUILTIN_VARIABLES.contains(&a.name));
            }
        }
    }

    /// Every probe's documented example is a complete check that compiles in a control.
    #[test]
    fn every_documented_example_plans_cleanly() {
        for p in REGISTRY {
            let indented: String = p
                .example()
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        format!("  - {l}\n")
                    } else {
                        format!("    {l}\n")
                    }
                })
                .collect();
            let text = format!(
                "id: example\ntitle: Example\ncategory: Examples\ndescription: d\nclaim: procedure\nowner: o\nseverity: low\nchecks:\n{indented}"
            );
            let compiled =
                crate::catalog::compile_file(std::path::Path::new("example.yaml"), &text);
            let (control, _) = compiled.unwrap_or_else(|d| panic!("{}: {d:?}", p.name()));
            assert_eq!(control.checks[0].probe.name(), p.name());
            let _ = p.params_schema();
        }
    }

    #[test]
    fn unknown_parameters_are_rejected() {
        for p in REGISTRY {
            let err = p
                .plan(&serde_json::json!({"surely_not_a_param": 1}))
                .unwrap_err();
            assert!(err.contains("surely_not_a_param"), "{}: {err}", p.name());
        }
    }
}
