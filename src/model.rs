//! The result model shared by every layer: statuses, findings and control results.
//!
//! These are plain data. The evaluator produces them, the store persists them, the web and the
//! CLI render them. Nothing here does I/O.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The verdict for one resource, one check or one control.
///
/// Ordered by precedence when results are combined: a control fails if any check failed (a
/// known failure is definite), else is `error` if any check could not be evaluated, and so on
/// (see [`Status::combine`]). Nothing that errored is ever reported as passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Error,
    NotApplicable,
    Waived,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pass,
        Status::Fail,
        Status::Error,
        Status::NotApplicable,
        Status::Waived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::NotApplicable => "not_applicable",
            Status::Waived => "waived",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Precedence when combining: fail > error > waived > pass > not_applicable.
    fn rank(self) -> u8 {
        match self {
            Status::Fail => 4,
            Status::Error => 3,
            Status::Waived => 2,
            Status::Pass => 1,
            Status::NotApplicable => 0,
        }
    }

    /// Combines the statuses of the parts of a whole (checks of a control).
    ///
    /// An empty set is `not_applicable`; `error` outranks `pass`, so a control that could not
    /// be fully evaluated is never reported as passing.
    pub fn combine(parts: impl IntoIterator<Item = Status>) -> Status {
        parts
            .into_iter()
            .max_by_key(|s| s.rank())
            .unwrap_or(Status::NotApplicable)
    }

    /// True when this status, on its own, means the evaluation completed (any status but
    /// `error`). Staleness is measured from the newest successful evaluation.
    pub fn is_successful_evaluation(self) -> bool {
        self != Status::Error
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A control's evaluations, oldest first: when, and the verdict.
pub type Evaluations = Vec<(DateTime<Utc>, Status)>;

/// A control id with its evaluations.
pub type ControlHistory = (String, Evaluations);

/// One control's evaluations on one UTC day, summed up: everything a day of its history
/// needs (`web::history::daily_from`), whatever its freshness. The store keeps one per control
/// and day it was evaluated (the history roll-up), so a 90-day strip reads 90 of these instead
/// of every result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySummary {
    pub day: NaiveDate,
    /// The day's first and last evaluations, in time order (ties: in the order stored).
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The status of the last one: the control's status when the next day begins.
    pub last_status: Status,
    /// The longest time between two consecutive evaluations of the day (zero with one).
    pub longest_gap: TimeDelta,
    /// How many evaluations had each status, in [`Status::ALL`] order.
    pub counts: [u32; 5],
}

impl DaySummary {
    /// The day of one evaluation, with that evaluation.
    pub fn new(at: DateTime<Utc>, status: Status) -> DaySummary {
        let mut counts = [0; 5];
        counts[status_index(status)] = 1;
        DaySummary {
            day: at.date_naive(),
            first_at: at,
            last_at: at,
            last_status: status,
            longest_gap: TimeDelta::zero(),
            counts,
        }
    }

    /// Adds the next evaluation of the same day (at or after [`DaySummary::last_at`]). Returns
    /// false, changing nothing, for one of another day or earlier than the last: the day must
    /// then be summed up again from its evaluations in order.
    pub fn push(&mut self, at: DateTime<Utc>, status: Status) -> bool {
        if at.date_naive() != self.day || at < self.last_at {
            return false;
        }
        self.longest_gap = self.longest_gap.max(at - self.last_at);
        self.last_at = at;
        self.last_status = status;
        self.counts[status_index(status)] += 1;
        true
    }

    /// How many evaluations of the day had `status`.
    pub fn count(&self, status: Status) -> u32 {
        self.counts[status_index(status)]
    }

    /// Evaluations in time order, summed up per UTC day (oldest first).
    pub fn of_evaluations(points: &[(DateTime<Utc>, Status)]) -> Vec<DaySummary> {
        let mut days: Vec<DaySummary> = Vec::new();
        for &(at, status) in points {
            let added = days.last_mut().is_some_and(|day| day.push(at, status));
            if !added {
                days.push(DaySummary::new(at, status));
            }
        }
        days
    }
}

fn status_index(status: Status) -> usize {
    Status::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or_default()
}

/// One verdict about one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Index of the check (within its control) that produced this finding.
    pub check: usize,
    /// Stable resource identifier, e.g. `hr:E1007` or an ARN. Internal only: never public.
    pub resource: String,
    pub status: Status,
    /// A sentence naming the resource and what was found.
    pub message: String,
    /// The actual values the assertion saw (a JSON object: attribute name to value), kept as
    /// its JSON text (a large control has tens of thousands of findings).
    pub actual: RawJson,
}

/// A failure's stable name across runs: the control, the check's place in it and the
/// resource (empty for a check that fails or errs as a whole: its probe could not collect, or
/// it found no resource where one is required): the first 32 hex digits of the SHA-256 of
/// `<control id's length>:<control id>\n<check>\n<resource>` (the length keeps the parts
/// apart whatever they hold). Reordering a control's checks changes its fingerprints.
pub fn fingerprint(control_id: &str, check: usize, resource: &str) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{}:{control_id}\n{check}\n{resource}", control_id.len());
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

impl ControlOutcome {
    /// What fails or errs in this outcome, by [`fingerprint`]: each finding that fails or errs,
    /// and each check that fails or errs with no such finding of its own (its probe could not
    /// collect, or it required resources and found none). As `(fingerprint, check, resource)`.
    pub fn failures(&self) -> Vec<(String, usize, &str)> {
        let failing = |s: Status| matches!(s, Status::Fail | Status::Error);
        let mut out: Vec<(String, usize, &str)> = self
            .findings
            .iter()
            .filter(|f| failing(f.status))
            .map(|f| {
                (
                    f.fingerprint(&self.control_id),
                    f.check,
                    f.resource.as_str(),
                )
            })
            .collect();
        for (k, check) in self.checks.iter().enumerate() {
            if failing(check.status) && !out.iter().any(|(_, c, _)| *c == k) {
                out.push((fingerprint(&self.control_id, k, ""), k, ""));
            }
        }
        out
    }
}

impl Finding {
    /// This finding's [`fingerprint`] within `control_id`.
    pub fn fingerprint(&self, control_id: &str) -> String {
        fingerprint(control_id, self.check, &self.resource)
    }
}

/// What a probe's evidence is, and so what a green result built on it can honestly claim.
///
/// - `system`: read from the system the claim is about (AWS, GitHub, public endpoints, the
///   identity join of those accounts with the roster). A pass means the system was checked.
/// - `record`: what people recorded (the HR roster, the registers). A pass means the records
///   say it was done.
/// - `document`: what a document says (policies). A pass means the document exists, is
///   approved and current — never that a system behaves as it says.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    System,
    Record,
    Document,
}

impl EvidenceKind {
    pub const ALL: [EvidenceKind; 3] = [
        EvidenceKind::System,
        EvidenceKind::Record,
        EvidenceKind::Document,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::System => "system",
            EvidenceKind::Record => "record",
            EvidenceKind::Document => "document",
        }
    }
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What backed one check's verdict, kept with the result so pages can say it without
/// reading evidence: the kind of evidence, and for records and documents the dates that tell
/// how current it is. Dates after the run are never counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckBasis {
    pub kind: EvidenceKind,
    /// The newest date among those the check read (records: the latest entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<chrono::NaiveDate>,
    /// The oldest date among those the check read (documents: the oldest approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<chrono::NaiveDate>,
    /// The shortest review interval of the documents read, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_days: Option<i64>,
}

impl CheckBasis {
    /// The basis of a check of this kind, before any date is known.
    pub fn of(kind: EvidenceKind) -> CheckBasis {
        CheckBasis {
            kind,
            newest: None,
            oldest: None,
            review_days: None,
        }
    }
}

/// The outcome of one check of a control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub probe: String,
    pub status: Status,
    pub summary: String,
    /// Why the check could not be evaluated, when `status` is `error`.
    pub error: Option<String>,
    /// Index into the run's evidence list of the evidence this check read.
    pub evidence: Option<usize>,
    /// What backed the verdict (absent in results stored before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<CheckBasis>,
}

/// How a control's evaluation used an exception (kept with the result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionUse {
    pub id: String,
    pub ticket: String,
    pub owner: String,
    pub expires_on: chrono::NaiveDate,
    /// `applied` (it waived failing findings), `expired` (it no longer applies; `resources`
    /// lists the failing findings it would have covered) or `unused` (in force, but nothing
    /// it covers fails: it may be removed).
    pub status: String,
    /// The resources it waived (applied) or would have waived (expired).
    pub resources: Vec<String>,
}

/// The outcome of evaluating one control in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlOutcome {
    pub control_id: String,
    pub status: Status,
    pub summary: String,
    pub evaluated_at: DateTime<Utc>,
    /// SHA-256 of the control definition file as evaluated.
    pub definition_sha256: String,
    pub checks: Vec<CheckOutcome>,
    pub findings: Vec<Finding>,
    /// Exceptions that waived findings, or that matched failing findings after expiring.
    #[serde(default)]
    pub exceptions: Vec<ExceptionUse>,
}

/// JSON text, kept as written. Raw evidence is serialized once, where it is collected, and
/// is hashed and stored as that text: a large collection is never held as a tree of values
/// on its way to the store.
#[derive(Clone)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    /// `null`: the content of a collection that failed.
    pub fn null() -> RawJson {
        RawJson(serde_json::value::RawValue::NULL.to_owned())
    }

    /// `value` serialized (compact).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(RawJson)
    }

    /// `value` serialized (compact) into a buffer of exactly its length, measured first: for a
    /// collection's evidence (megabytes at a large estate), which written straight into a
    /// growing buffer would double it (the old and the new buffer held at once) and then copy
    /// it once more to shrink it. Twice the serializing, none of the copies.
    pub fn of_sized<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, serde_json::Error> {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        serde_json::to_writer(&mut count, value)?;
        let mut text = Vec::with_capacity(count.0);
        serde_json::to_writer(&mut text, value)?;
        let text = String::from_utf8(text).map_err(serde::ser::Error::custom)?;
        RawJson::from_string(text)
    }

    /// JSON text written elsewhere (e.g. streamed by a probe), checked to be one JSON value.
    pub fn from_string(text: String) -> Result<RawJson, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(RawJson)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn is_null(&self) -> bool {
        self.as_str() == "null"
    }

    /// The text itself, without a copy (a collection's evidence can be tens of MB).
    pub fn into_string(self) -> String {
        String::from(Box::<str>::from(self.0))
    }

    /// The text parsed into a tree (for small documents and tests).
    pub fn to_value(&self) -> serde_json::Value {
        // The text was checked (or written by serde_json) when this was made.
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }
}

impl From<&serde_json::Value> for RawJson {
    fn from(value: &serde_json::Value) -> RawJson {
        // Never fails: a `Value`'s map keys are strings.
        RawJson::of(value).unwrap_or_else(|_| RawJson::null())
    }
}

impl From<serde_json::Value> for RawJson {
    fn from(value: serde_json::Value) -> RawJson {
        RawJson::from(&value)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(deserializer).map(RawJson)
    }
}

/// A collection's evidence on its way to the store: its content as the text that is hashed
/// and stored ([`Evidence`] is what is read back).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvidence {
    pub probe: String,
    /// Canonical JSON of the probe's parameters (the fetch-cache key).
    pub params: String,
    pub collected_at: DateTime<Utc>,
    /// The collected data, or `null` when collection failed.
    pub content: RawJson,
    /// Hex SHA-256 of `content`'s text.
    pub sha256: String,
    /// Why collection failed, when it did.
    pub error: Option<String>,
}

impl From<&Evidence> for NewEvidence {
    fn from(e: &Evidence) -> NewEvidence {
        NewEvidence {
            probe: e.probe.clone(),
            params: e.params.clone(),
            collected_at: e.collected_at,
            content: e.content.clone().into(),
            sha256: e.sha256.clone(),
            error: e.error.clone(),
        }
    }
}

impl From<Evidence> for NewEvidence {
    fn from(e: Evidence) -> NewEvidence {
        NewEvidence::from(&e)
    }
}

impl From<&NewEvidence> for Evidence {
    fn from(e: &NewEvidence) -> Evidence {
        Evidence {
            probe: e.probe.clone(),
            params: e.params.clone(),
            collected_at: e.collected_at,
            content: e.content.to_value(),
            sha256: e.sha256.clone(),
            error: e.error.clone(),
        }
    }
}

/// Raw probe output kept as evidence, as read from the store: the JSON the probe collected
/// and its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub probe: String,
    /// Canonical JSON of the probe's parameters (the fetch-cache key).
    pub params: String,
    pub collected_at: DateTime<Utc>,
    /// The collected data, or `null` when collection failed.
    pub content: serde_json::Value,
    /// Hex SHA-256 of the serialized `content`.
    pub sha256: String,
    /// Why collection failed, when it did.
    pub error: Option<String>,
}

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Startup,
    Manual,
    Cli,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Startup => "startup",
            Trigger::Manual => "manual",
            Trigger::Cli => "cli",
        }
    }
}

/// Lifecycle of a run row in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Completed,
    /// The run's work could not complete (its process crashed or was killed and no instance
    /// could finish it, a unit failed too often); the run's `error` says why.
    Interrupted,
    /// Stopped between collections at someone's request (`trellis runs cancel`, the
    /// dashboard); audited.
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Interrupted => "interrupted",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Running,
            RunState::Completed,
            RunState::Interrupted,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The newest stored result of one control, as read back for pages and staleness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestResult {
    pub control_id: String,
    pub status: Status,
    pub summary: String,
    pub evaluated_at: DateTime<Utc>,
    /// When the control was last evaluated with a status other than `error`.
    pub last_success_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_the_sha256_of_control_check_and_resource() {
        // `printf '17:background-checks\n0\nhr:E1021' | sha256sum | cut -c1-32`
        assert_eq!(
            fingerprint("background-checks", 0, "hr:E1021"),
            "3f2e7ca2c2229842580f5b5340814e09"
        );
        assert_ne!(
            fingerprint("background-checks", 1, "hr:E1021"),
            fingerprint("background-checks", 0, "hr:E1021")
        );
        assert_ne!(
            fingerprint("a", 0, "b\n0\nc"),
            fingerprint("a\n0\nb", 0, "c")
        );
    }

    use super::*;

    #[test]
    fn raw_json_written_at_its_size_is_the_same_text() {
        let value = serde_json::json!({"b": [1, "two", null], "a": {"nested": true}, "s": "é\"\n"});
        let sized = RawJson::of_sized(&value).expect("serializes");
        let plain = RawJson::of(&value).expect("serializes");
        assert_eq!(sized.as_str(), plain.as_str());
        assert_eq!(sized.to_value(), value);
    }

    #[test]
    fn combine_follows_precedence() {
        use Status::*;
        let check = |parts: &[Status], expect: Status| {
            assert_eq!(Status::combine(parts.iter().copied()), expect, "{parts:?}");
        };
        check(&[], NotApplicable);
        check(&[Pass, Pass], Pass);
        check(&[Pass, NotApplicable], Pass);
        check(&[Pass, Fail], Fail);
        check(&[Fail, Error], Fail);
        check(&[Pass, Error], Error);
        check(&[Waived, Pass], Waived);
        check(&[Waived, Fail], Fail);
    }

    #[test]
    fn status_strings_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
