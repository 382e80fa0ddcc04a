//! The control catalog: every control file parsed, validated and compiled once.
//!
//! Parse, don't validate: a raw [`ControlFile`] (serde, `deny_unknown_fields`, with source
//! positions) becomes a typed [`Control`] exactly once, here. Everything downstream works with
//! `Control` and can rely on it: the probe exists, its parameters are valid, every CEL
//! expression compiled and only names the probe's attributes, the schedule and freshness parse.

pub mod expr;
pub mod file;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use expr::Expr;
pub use file::{CheckFile, Claim, ControlFile, Expect, FrameworkRef, Severity};

use crate::diag::{self, Diagnostic, Diagnostics};
use crate::probes::{self, DynProbe, PlannedProbe};
use crate::schedule::CronSchedule;

/// A validated control, ready to schedule and evaluate.
#[derive(Debug, Clone)]
pub struct Control {
    pub id: String,
    pub title: String,
    pub category: String,
    /// Public wording, shown on the trust page.
    pub description: String,
    /// What the control claims; its checks are held to it (see [`check_claim`]).
    pub claim: Claim,
    pub public: bool,
    pub owner: String,
    pub severity: Severity,
    pub frameworks: Vec<FrameworkRef>,
    /// Own schedule, or `None` for the configured default.
    pub schedule: Option<CronSchedule>,
    /// Own freshness, or `None` for the configured default.
    pub freshness: Option<chrono::Duration>,
    pub remediation: Option<String>,
    /// Position within its category (`None`: after those that have one, by title).
    pub order: Option<u32>,
    /// The exceptions granted to this control (see [`crate::exceptions`]).
    pub exceptions: Vec<crate::exceptions::Exception>,
    pub checks: Vec<Check>,
    /// Where the control was read from.
    pub path: PathBuf,
    /// The file's text, as loaded (shown to the security team, hashed into results).
    pub source: Arc<str>,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
}

impl Control {
    /// The evidence kind of each check, in order.
    pub fn evidence_kinds(&self) -> impl Iterator<Item = crate::model::EvidenceKind> + '_ {
        self.checks.iter().map(|c| c.probe.kind())
    }
}

/// One check of a control: which evidence to collect and what must hold of it.
#[derive(Debug, Clone)]
pub struct Check {
    pub probe: &'static dyn DynProbe,
    pub planned: Arc<dyn PlannedProbe>,
    pub filter: Option<Expr>,
    pub assert: Expr,
    pub expect: Expect,
    pub require_resources: bool,
    pub description: Option<String>,
}

impl std::fmt::Debug for dyn DynProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "probe `{}`", self.name())
    }
}

/// Every control of a `controls/` folder.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    controls: Vec<Control>,
    by_id: HashMap<String, usize>,
}

impl Catalog {
    pub fn controls(&self) -> &[Control] {
        &self.controls
    }

    pub fn get(&self, id: &str) -> Option<&Control> {
        self.by_id.get(id).map(|&i| &self.controls[i])
    }

    pub fn len(&self) -> usize {
        self.controls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.controls.is_empty()
    }

    /// Categories in display order: those named in `order` first (in that order), then the
    /// rest alphabetically. Each with its controls by their `order`, then title.
    pub fn categories<'a>(&'a self, order: &'a [String]) -> Vec<(&'a str, Vec<&'a Control>)> {
        let mut groups: BTreeMap<&str, Vec<&Control>> = BTreeMap::new();
        for c in &self.controls {
            groups.entry(c.category.as_str()).or_default().push(c);
        }
        for controls in groups.values_mut() {
            controls.sort_by(|a, b| {
                (a.order.unwrap_or(u32::MAX), &a.title)
                    .cmp(&(b.order.unwrap_or(u32::MAX), &b.title))
            });
        }
        let mut out = Vec::new();
        for name in order {
            if let Some(cs) = groups.remove(name.as_str()) {
                out.push((name.as_str(), cs));
            }
        }
        out.extend(groups);
        out
    }
}

/// Loads the catalog of a configuration: every control, and the exceptions granted to them
/// (checked against the controls and `today`). Every problem of every file is reported.
pub fn from_config(
    loaded: &crate::config::Loaded,
    today: chrono::NaiveDate,
) -> Result<Catalog, Diagnostics> {
    let mut catalog = load(&loaded.controls_dir())?;
    let ids: std::collections::HashSet<String> =
        catalog.controls.iter().map(|c| c.id.clone()).collect();
    let exceptions =
        crate::exceptions::load(&loaded.exceptions_dir(), &ids, today).map_err(|mut d| {
            d.sort();
            Diagnostics(d)
        })?;
    for e in exceptions {
        if let Some(&i) = catalog.by_id.get(&e.control) {
            catalog.controls[i].exceptions.push(e);
        }
    }
    Ok(catalog)
}

/// Loads every `*.yaml` file below `dir` (except `schema.json` and dotfiles), reporting every
/// problem in every file rather than stopping at the first.
pub fn load(dir: &Path) -> Result<Catalog, Diagnostics> {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    collect_files(dir, &mut files, &mut diags);
    files.sort();
    if files.is_empty() && diags.is_empty() {
        diags.push(Diagnostic::file(dir, "no control files (*.yaml) found"));
    }
    let mut controls: Vec<Control> = Vec::new();
    let mut seen: HashMap<String, (PathBuf, u64, u64)> = HashMap::new();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::file(&path, format!("cannot read: {e}")));
                continue;
            }
        };
        match compile_file(&path, &text) {
            Ok((control, id_loc)) => {
                if let Some((first, l, c)) = seen.get(&control.id) {
                    diags.push(Diagnostic::new(
                        &path,
                        id_loc.0,
                        id_loc.1,
                        format!(
                            "id: duplicate control id `{}` (first defined at {}:{l}:{c})",
                            control.id,
                            first.display()
                        ),
                    ));
                } else {
                    seen.insert(control.id.clone(), (path.clone(), id_loc.0, id_loc.1));
                    controls.push(control);
                }
            }
            Err(mut ds) => diags.append(&mut ds),
        }
    }
    if !diags.is_empty() {
        diags.sort();
        return Err(Diagnostics(diags));
    }
    let by_id = controls
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    Ok(Catalog { controls, by_id })
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::file(
                dir,
                format!("cannot read controls folder: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, files, diags);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

/// Parses and compiles one control file. On success also returns the id's position.
pub fn compile_file(path: &Path, text: &str) -> Result<(Control, (u64, u64)), Vec<Diagnostic>> {
    let raw: ControlFile = diag::parse_yaml(path, text).map_err(|d| vec![d])?;
    let mut diags = Vec::new();
    let at = |loc: &serde_saphyr::Location, msg: String| Diagnostic::at(path, loc, msg);

    let id = raw.id.value.clone();
    if !is_kebab(&id) {
        diags.push(at(
            &raw.id.referenced,
            format!("id: `{id}` is not kebab-case (lowercase letters, digits and single dashes)"),
        ));
    }
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        && stem != id
    {
        diags.push(at(
            &raw.id.referenced,
            format!("id: `{id}` does not match the file name `{stem}` (expected `{stem}.yaml` to hold id `{stem}`)"),
        ));
    }
    for (field, value, loc) in [
        ("title", &raw.title.value, &raw.title.referenced),
        ("category", &raw.category.value, &raw.category.referenced),
        (
            "description",
            &raw.description.value,
            &raw.description.referenced,
        ),
        ("owner", &raw.owner.value, &raw.owner.referenced),
    ] {
        if value.trim().is_empty() {
            diags.push(at(loc, format!("{field}: must not be empty")));
        }
    }
    let schedule = match &raw.schedule {
        Some(s) => match CronSchedule::parse(&s.value) {
            Ok(c) => Some(c),
            Err(e) => {
                diags.push(at(&s.referenced, format!("schedule: {e}")));
                None
            }
        },
        None => None,
    };
    let freshness = match &raw.freshness {
        Some(s) => match crate::duration::parse(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                diags.push(at(&s.referenced, format!("freshness: {e}")));
                None
            }
        },
        None => None,
    };
    if raw.checks.is_empty() {
        diags.push(at(
            &raw.id.referenced,
            "checks: a control needs at least one check (no control is a constant pass)".into(),
        ));
    }
    let mut checks = Vec::new();
    for (i, check) in raw.checks.iter().enumerate() {
        match compile_check(path, i, check) {
            Ok(c) => checks.push(c),
            Err(mut ds) => diags.append(&mut ds),
        }
    }
    if checks.len() == raw.checks.len()
        && let Err(msg) = check_claim(raw.claim.value, &checks)
    {
        diags.push(at(&raw.claim.referenced, format!("claim: {msg}")));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let id_loc = (raw.id.referenced.line(), raw.id.referenced.column());
    let control = Control {
        id,
        title: raw.title.value.trim().to_string(),
        category: raw.category.value.trim().to_string(),
        description: raw.description.value.trim().to_string(),
        claim: raw.claim.value,
        public: raw.public,
        owner: raw.owner.value,
        severity: raw.severity,
        frameworks: raw.frameworks,
        schedule,
        freshness,
        remediation: raw.remediation,
        order: raw.order,
        exceptions: Vec::new(),
        checks,
        path: path.to_path_buf(),
        source: Arc::from(text),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
    };
    Ok((control, id_loc))
}

fn compile_check(path: &Path, index: usize, raw: &CheckFile) -> Result<Check, Vec<Diagnostic>> {
    let field = |name: &str| format!("checks[{index}].{name}");
    let mut diags = Vec::new();
    let Some(probe) = probes::find(&raw.probe.value) else {
        let known: Vec<&str> = probes::all().map(|p| p.name()).collect();
        return Err(vec![Diagnostic::at(
            path,
            &raw.probe.referenced,
            format!(
                "{}: unknown probe `{}` (known probes: {})",
                field("probe"),
                raw.probe.value,
                known.join(", ")
            ),
        )]);
    };
    let (with_value, with_loc) = match &raw.with {
        Some(w) => (w.value.clone(), w.referenced),
        None => (serde_json::Value::Null, raw.probe.referenced),
    };
    let planned = match probe.plan(&with_value) {
        Ok(p) => Some(p),
        Err(e) => {
            diags.push(Diagnostic::at(
                path,
                &with_loc,
                format!(
                    "{}: invalid parameters for probe `{}`: {e}",
                    field("with"),
                    probe.name()
                ),
            ));
            None
        }
    };
    let attributes: Vec<&str> = probe.attributes().iter().map(|a| a.name).collect();
    let mut compile = |name: &str, src: &serde_saphyr::Spanned<String>| match Expr::compile(
        &src.value,
        &attributes,
    ) {
        Ok(e) => Some(e),
        Err(e) => {
            diags.push(Diagnostic::new(
                path,
                src.referenced.line(),
                src.referenced.column(),
                format!("{}: {e}", field(name)),
            ));
            None
        }
    };
    let filter = raw.filter.as_ref().map(|w| compile("where", w));
    let assert = compile("assert", &raw.assert);
    let expect = raw.expect.as_ref().map(|e| e.value).unwrap_or_default();
    if let (Some(spanned), Expect::Percent(p)) = (&raw.expect, expect)
        && !(0.0..=100.0).contains(&p)
    {
        diags.push(Diagnostic::at(
            path,
            &spanned.referenced,
            format!(
                "{}: percent must be between 0 and 100, found {p}",
                field("expect")
            ),
        ));
    }
    match (planned, filter, assert) {
        (Some(planned), filter, Some(assert)) if diags.is_empty() => Ok(Check {
            probe,
            planned,
            filter: filter.flatten(),
            assert,
            expect,
            require_resources: raw.require_resources,
            description: raw.description.clone(),
        }),
        _ => Err(diags),
    }
}

/// Holds a control's checks to its claim: a `system` claim needs at least one check that reads
/// the system itself (a policy that mentions the right words is not evidence of a system); a
/// `document` claim needs a document check. A `procedure` may be backed by records, documents
/// or systems; the trust page says which.
pub fn check_claim(claim: Claim, checks: &[Check]) -> Result<(), String> {
    use crate::probes::EvidenceKind;
    let has = |kind: EvidenceKind| checks.iter().any(|c| c.probe.kind() == kind);
    let described = || {
        let mut probes: Vec<String> = checks
            .iter()
            .map(|c| format!("{} ({})", c.probe.name(), c.probe.kind()))
            .collect();
        probes.dedup();
        probes.join(", ")
    };
    match claim {
        Claim::System if !has(EvidenceKind::System) => Err(format!(
            "a `system` claim needs at least one check on a `system` probe, which reads the \
             system itself (aws.*, github.*, http.*, identity.accounts); these checks read only \
             {}. A document's wording or a record is not evidence that a system is configured: \
             add a system check, or declare the claim `procedure` or `document` if that is what \
             it is",
            described()
        )),
        Claim::Document if !has(EvidenceKind::Document) => Err(format!(
            "a `document` claim needs at least one check on a `document` probe \
             (documents.policies); these checks read {}",
            described()
        )),
        _ => Ok(()),
    }
}

/// `lower-case-words-123`: what control ids look like.
pub fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The kebab-case form of a title: `Removal of Access` → `removal-of-access`.
pub fn kebab(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// The JSON Schema of control files, as written by `trellis schema`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(ControlFile);
    serde_json::to_value(schema).unwrap_or_default()
}

/// `controls` with `extra` exceptions (approved in the dashboard) added to the controls they
/// name: what a run evaluates.
pub fn with_exceptions(
    controls: &[&Control],
    extra: &[crate::exceptions::Exception],
) -> Vec<Control> {
    controls
        .iter()
        .map(|c| {
            let mut c = (*c).clone();
            c.exceptions
                .extend(extra.iter().filter(|e| e.control == c.id).cloned());
            c
        })
        .collect()
}

/// The dashboard's approved exceptions in force on `today`, as exceptions to evaluate.
pub async fn managed_exceptions(
    store: &crate::store::Store,
    today: chrono::NaiveDate,
) -> Result<Vec<crate::exceptions::Exception>, crate::store::StoreError> {
    Ok(store
        .active_managed_exceptions(today)
        .await?
        .into_iter()
        .filter_map(|m| {
            let id = m.id.clone();
            m.proposal
                .into_exception(m.id, m.approved_by, "dashboard")
                .inspect_err(
                    |e| tracing::error!(exception = %id, error = %e, "managed exception ignored"),
                )
                .ok()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_of_seed_titles() {
        let check = |title: &str, expect: &str| assert_eq!(kebab(title), expect, "{title}");
        check("Removal of Access", "removal-of-access");
        check("Encryption-at-Rest", "encryption-at-rest");
        check(
            "Access to Product is Restricted",
            "access-to-product-is-restricted",
        );
        check(
            "Testing the Business Continuity and Disaster Recovery Plan",
            "testing-the-business-continuity-and-disaster-recovery-plan",
        );
        check(
            "Advisor Meetings on Security",
            "advisor-meetings-on-security",
        );
        for t in ["Removal of Access", "Encryption-at-Rest"] {
            assert!(is_kebab(&kebab(t)));
        }
        assert!(!is_kebab("Bad_Id"));
        assert!(!is_kebab("a--b"));
    }
}
