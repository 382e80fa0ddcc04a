//! `oscal/assessment-results.json`: the period as OSCAL 1.2.1 assessment results — one result
//! for the period, an observation per piece of evidence, and a finding per control objective
//! (each framework criterion a control maps to) that is satisfied only if every control mapped
//! to it was freshly evaluated and passing through the whole period (`coverage.rs`); otherwise
//! it is not satisfied, with the reason: a gap, a failure, no data or a late start, and when.
//!
//! Control and objective ids are `<framework>_<version>_<criterion>` (`soc2_2017_CC6.1`,
//! `cis-aws_3.0.0_1.12`): OSCAL tokens cannot start with a digit or hold a colon. UUIDs are
//! version 5, derived from the bundle's period and content, so the document is reproducible.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::coverage::{Problem, Verdict};
use super::deflate::{self, Piece};
use super::{ControlFigures, ExportError, ExportRequest, json_err};
use crate::catalog::Control;
use crate::model::{Evidence, Status};

const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1f_0e2c_9a4d_4c1e_8f37_51a0_d2c4_9e10);

fn uuid_of(what: &str) -> String {
    uuid::Uuid::new_v5(&NAMESPACE, what.as_bytes()).to_string()
}

/// An OSCAL token for a framework criterion.
pub fn objective_id(framework: &str, version: &str, id: &str) -> String {
    let raw = format!("{framework}_{version}_{id}");
    raw.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn observation_uuid(evidence_id: i64) -> String {
    uuid_of(&format!("observation/evidence/{evidence_id}"))
}

/// Writes one observation (an array element) for a piece of evidence.
pub(super) fn write_observation(
    w: &mut impl Write,
    first: &mut bool,
    id: i64,
    e: &Evidence,
    path: &str,
) -> Result<(), ExportError> {
    #[derive(Serialize)]
    struct Prop {
        name: &'static str,
        ns: &'static str,
        value: String,
    }
    #[derive(Serialize)]
    struct RelevantEvidence<'a> {
        href: &'a str,
        description: String,
    }
    #[derive(Serialize)]
    struct Observation<'a> {
        uuid: String,
        title: String,
        description: String,
        props: Vec<Prop>,
        methods: [&'static str; 1],
        types: [&'static str; 1],
        #[serde(rename = "relevant-evidence")]
        relevant_evidence: [RelevantEvidence<'a>; 1],
        collected: String,
    }
    let description = match &e.error {
        Some(err) => format!("Trellis probe `{}` could not collect: {err}", e.probe),
        None => format!(
            "Trellis probe `{}` collected this evidence automatically.",
            e.probe
        ),
    };
    let o = Observation {
        uuid: observation_uuid(id),
        title: format!("Evidence {id}: {}", e.probe),
        description,
        props: vec![
            Prop {
                name: "evidence-sha256",
                ns: "https://trellis.dev/ns/oscal",
                value: e.sha256.clone(),
            },
            Prop {
                name: "probe-parameters",
                ns: "https://trellis.dev/ns/oscal",
                value: if e.params.is_empty() {
                    "{}".into()
                } else {
                    e.params.clone()
                },
            },
        ],
        methods: ["TEST"],
        types: ["control-objective"],
        relevant_evidence: [RelevantEvidence {
            href: path,
            description: "The raw evidence, in this bundle.".into(),
        }],
        collected: crate::integrity::time_text(e.collected_at),
    };
    w.write_all(if *first { b"\n" } else { b",\n" })?;
    *first = false;
    serde_json::to_writer(w, &o).map_err(json_err("oscal observation"))
}

#[derive(Serialize)]
struct Target {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "target-id")]
    target_id: String,
    /// `not-satisfied-reason`: one per reason a mapped control was not satisfied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    props: Vec<TargetProp>,
    status: TargetStatus,
}

#[derive(Serialize)]
struct TargetProp {
    name: &'static str,
    ns: &'static str,
    value: &'static str,
}

#[derive(Serialize)]
struct TargetStatus {
    state: &'static str,
    /// `pass`; `fail` when a control failed; `other` for a gap, a late start or no data.
    reason: &'static str,
    remarks: String,
}

#[derive(Serialize)]
struct RelatedObservation {
    #[serde(rename = "observation-uuid")]
    observation_uuid: String,
}

#[derive(Serialize)]
struct Finding {
    uuid: String,
    title: String,
    description: String,
    target: Target,
    #[serde(rename = "related-observations", skip_serializing_if = "Vec::is_empty")]
    related_observations: Vec<RelatedObservation>,
    remarks: String,
}

/// The document as it is written: everything but the observations is known before the
/// evidence is read; the observations (made and compressed with each page of evidence) go in
/// between, in order.
pub(super) struct Document {
    member: deflate::Member,
    /// Everything after the observations.
    tail: Vec<u8>,
    observations: bool,
}

impl Document {
    /// Adds a page's observations (`raw`, each preceded by `,\n`; `piece`, them compressed).
    pub fn observations(
        &mut self,
        spool: &mut deflate::Spool,
        raw: &[u8],
        piece: Piece,
    ) -> Result<(), ExportError> {
        if raw.is_empty() {
            return Ok(());
        }
        if self.observations {
            self.member.add(spool, raw, Some(piece))?;
        } else {
            // The array, opened only if there is an observation; its first has no comma.
            self.observations = true;
            self.member.prefix(b",\"observations\":[");
            self.member.add(spool, &raw[2..], None)?;
        }
        Ok(())
    }

    pub fn finish(mut self, spool: &mut deflate::Spool) -> Result<deflate::Done, ExportError> {
        if self.observations {
            self.member.prefix(b"\n]");
        }
        Ok(self.member.finish(spool, &self.tail)?)
    }
}

/// Begins the document: all of it but the observations.
pub(super) fn document(
    request: &ExportRequest,
    controls: &[&Control],
    figures: &BTreeMap<String, ControlFigures>,
    runs: &[crate::store::SealedRun],
) -> Result<Document, ExportError> {
    let key = format!(
        "{}|{}|{}|{}",
        request.from,
        request.to,
        controls
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(","),
        request.framework.as_deref().unwrap_or("")
    );
    let start = format!("{}T00:00:00Z", request.from);
    let end = format!("{}T00:00:00Z", request.to + chrono::Duration::days(1));
    // The newest run's end, else the period's end: when the results last changed.
    let last_modified = runs
        .iter()
        .filter_map(|r| r.run.finished_at.or(Some(r.run.started_at)))
        .max()
        .map_or(end.clone(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());

    let mut objectives: BTreeMap<String, Vec<&Control>> = BTreeMap::new();
    for c in controls {
        for f in &c.frameworks {
            objectives
                .entry(objective_id(&f.framework, &f.version, &f.id))
                .or_default()
                .push(c);
        }
    }
    let findings: Vec<Finding> = objectives
        .iter()
        .map(|(objective, cs)| {
            let mut satisfied = true;
            let mut failed = false;
            let mut lines = Vec::new();
            let mut reasons = Vec::new();
            let mut tokens: Vec<&'static str> = Vec::new();
            let mut related = Vec::new();
            for c in cs {
                let f = figures.get(&c.id).cloned().unwrap_or_default();
                let pass = f.by_status.get("pass").copied().unwrap_or(0);
                let verdict = f.coverage.clone().unwrap_or(Verdict::NotSatisfied {
                    first: Problem::NoData,
                    failures: 0,
                    gaps: 0,
                    evaluations: 0,
                });
                let covered = verdict.describe(f.freshness);
                if let Verdict::NotSatisfied { first, .. } = &verdict {
                    satisfied = false;
                    failed |= matches!(first, Problem::Failure { .. });
                    if !tokens.contains(&first.token()) {
                        tokens.push(first.token());
                    }
                    reasons.push(format!("{}: {covered}.", c.id));
                }
                lines.push(format!(
                    "{} ({}): {}; {} of {} evaluations passed; latest {}; {} failures, {} fixes.",
                    c.title,
                    c.id,
                    covered,
                    pass,
                    f.results,
                    f.latest_status.map_or("none", Status::as_str),
                    f.failures,
                    f.fixes
                ));
                related.extend(f.latest_evidence.iter().map(|id| RelatedObservation {
                    observation_uuid: observation_uuid(*id),
                }));
            }
            related.sort_by(|a, b| a.observation_uuid.cmp(&b.observation_uuid));
            related.dedup_by(|a, b| a.observation_uuid == b.observation_uuid);
            Finding {
                uuid: uuid_of(&format!("finding|{key}|{objective}")),
                title: format!("Objective {objective}"),
                description: lines.join(" "),
                target: Target {
                    kind: "objective-id",
                    target_id: objective.clone(),
                    props: tokens
                        .into_iter()
                        .map(|value| TargetProp {
                            name: "not-satisfied-reason",
                            ns: "https://trellis.dev/ns/oscal",
                            value,
                        })
                        .collect(),
                    status: TargetStatus {
                        state: if satisfied {
                            "satisfied"
                        } else {
                            "not-satisfied"
                        },
                        reason: match (satisfied, failed) {
                            (true, _) => "pass",
                            (false, true) => "fail",
                            (false, false) => "other",
                        },
                        remarks: if satisfied {
                            "Every control mapped to the objective was evaluated, fresh and \
                             passing, throughout the period."
                                .into()
                        } else {
                            reasons.join(" ")
                        },
                    },
                },
                related_observations: related,
                remarks: "Satisfied only if every control mapped to the objective was freshly \
                          evaluated and passing through the whole period: evaluated at or \
                          before its start (a passing evaluation before it counts while still \
                          fresh), never longer than the control's freshness between \
                          evaluations or before the period's end, and every evaluation passed. \
                          Related observations are the evidence of each control's latest \
                          evaluation."
                    .into(),
            }
        })
        .collect();

    let mut member = deflate::Member::new();
    let head = serde_json::json!({
        "uuid": uuid_of(&format!("assessment-results|{key}")),
        "metadata": {
            "title": format!("Trellis continuous monitoring: assessment results {} – {}", request.from, request.to),
            "last-modified": last_modified,
            "version": "1",
            "oscal-version": "1.2.1",
        },
        "import-ap": {
            "href": "#continuous-monitoring",
            "remarks": "Trellis evaluates every control on its schedule; the plan is the control catalog itself (controls/<id>/definitions in this bundle).",
        },
    });
    let head_text = serde_json::to_string(&head).map_err(json_err("oscal"))?;
    // `{"assessment-results": {...head, "results": [{... "observations": [` … `]}]}}`
    member.prefix(b"{\"assessment-results\":");
    member.prefix(&head_text.as_bytes()[..head_text.len() - 1]);
    let include: Vec<serde_json::Value> = objectives
        .keys()
        .map(|id| serde_json::json!({"control-id": id}))
        .collect();
    let result_head = serde_json::json!({
        "uuid": uuid_of(&format!("result|{key}")),
        "title": format!("Continuous monitoring, {} – {}", request.from, request.to),
        "description": format!("{} controls evaluated by Trellis over {} runs.", controls.len(), runs.len()),
        "start": start,
        "end": end,
        "reviewed-controls": {"control-selections": [
            if include.is_empty() { serde_json::json!({"include-all": {}}) } else { serde_json::json!({"include-controls": include}) }
        ]},
    });
    let result_text = serde_json::to_string(&result_head).map_err(json_err("oscal"))?;
    member.prefix(b",\"results\":[");
    member.prefix(&result_text.as_bytes()[..result_text.len() - 1]);
    let mut tail = Vec::new();
    if !findings.is_empty() {
        tail.extend_from_slice(b",\"findings\":");
        serde_json::to_writer(&mut tail, &findings).map_err(json_err("oscal findings"))?;
    }
    tail.extend_from_slice(b"}]}}\n");
    Ok(Document {
        member,
        tail,
        observations: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objective_ids_are_oscal_tokens() {
        assert_eq!(objective_id("soc2", "2017", "CC6.1"), "soc2_2017_CC6.1");
        assert_eq!(
            objective_id("cis-aws", "3.0.0", "1.12"),
            "cis-aws_3.0.0_1.12"
        );
        assert_eq!(objective_id("cis", "8", "5.3 (a)"), "cis_8_5.3__a_");
        assert_ne!(uuid_of("a"), uuid_of("b"));
        assert_eq!(uuid_of("a"), uuid_of("a"));
    }
}
