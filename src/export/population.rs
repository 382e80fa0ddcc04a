//! The populations: every selected control's results and findings of the period.
//!
//! Two phases, so that a year of data is neither held in memory nor read a control at a time
//! (a per-control read walks the results' index, a random read per row):
//!
//! 1. [`read`]: one pass over the results table in id order, a page at a time (several pages
//!    are read and formatted at once, on other connections and threads). Each page's rows are
//!    formatted as CSV and JSON by control and compressed there, each control's share of a
//!    page a separate piece of its files' deflate streams (`deflate.rs`); the pass hashes the
//!    rows in order and spools the compressed pieces, by control, to a temporary file;
//! 2. [`write`]: each control's two files are copied from the spool into the bundle, in path
//!    order, as they are (already compressed).
//!
//! Memory is a few pages plus a chunk of compressed bytes per control and file, whatever the
//! period; the spool holds the compressed populations (a tenth of their size).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Seek, Write};

use chrono::{DateTime, Utc};

use super::deflate::{self, Piece};
use super::{Bundle, COLUMNS, ControlFigures, ExportError};
use crate::catalog::Control;
use crate::store::{FindingRow, FindingsPage, PeriodResult, Store};

/// Results read per page.
const RESULTS_PER_PAGE: u64 = 2000;
/// Pages read and formatted ahead of the one being spooled.
const PAGES_AHEAD: usize = 4;

/// What the pass learned, by control (in the order of `controls`).
pub(super) struct Pass {
    pub figures: Vec<ControlFigures>,
    /// Whether each control was fresh and passing through the period, as far as seen.
    pub coverage: Vec<super::coverage::Coverage>,
    /// The definitions (SHA-256) each control was evaluated with.
    pub definitions: Vec<BTreeSet<String>>,
    /// Evidence read by any exported result.
    pub evidence_ids: BTreeSet<i64>,
    pub results: usize,
    pub rows: u64,
    spool: Option<Finished>,
}

/// The populations as they are made: by part (part `2i` is control `i`'s CSV, `2i + 1` its
/// JSON), each part a member of one spool.
struct Spool {
    spool: deflate::Spool,
    parts: Vec<deflate::Member>,
}

/// The spool once every part is finished.
pub(super) struct Finished {
    spool: deflate::Spool,
    parts: Vec<deflate::Done>,
}

/// One result as the pass needs it once its rows are formatted.
struct Seen {
    control: usize,
    status: crate::model::Status,
    evaluated_at: DateTime<Utc>,
    definition_sha256: String,
    evidence_ids: Vec<i64>,
    exceptions: Vec<crate::model::ExceptionUse>,
    rows: u64,
}

/// A resource's statuses within a page: whether it failed first and last, and how often it
/// went from not failing to failing and back in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Changes {
    first: bool,
    last: bool,
    failures: usize,
    fixes: usize,
}

/// Each resource's [`Changes`] within a page.
#[derive(Default)]
struct PageChanges<'a>(HashMap<&'a str, Changes>);

impl<'a> PageChanges<'a> {
    fn see(&mut self, resource: &'a str, failing: bool) {
        self.0
            .entry(resource)
            .and_modify(|c| {
                if failing && !c.last {
                    c.failures += 1;
                } else if !failing && c.last {
                    c.fixes += 1;
                }
                c.last = failing;
            })
            .or_insert(Changes {
                first: failing,
                last: failing,
                failures: 0,
                fixes: 0,
            });
    }

    fn finish(self) -> Vec<(String, Changes)> {
        let mut out: Vec<(String, Changes)> = self
            .0
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Adds a page's changes to a control's figures: the page's own, and each resource's change
/// from its status before the page (`states`, which then holds its status after).
fn carry(
    states: &mut HashMap<String, bool>,
    fig: &mut ControlFigures,
    changes: Vec<(String, Changes)>,
) {
    for (resource, c) in changes {
        fig.failures += c.failures;
        fig.fixes += c.fixes;
        // A resource not seen before was not failing.
        let before = match states.get_mut(&resource) {
            Some(v) => std::mem::replace(v, c.last),
            None => {
                states.insert(resource, c.last);
                false
            }
        };
        if c.first && !before {
            fig.failures += 1;
        } else if !c.first && before {
            fig.fixes += 1;
        }
    }
}

/// What a control's part of a page adds.
struct ControlPage {
    csv: Vec<u8>,
    /// Each row preceded by `,\n`.
    json: Vec<u8>,
    /// The two, compressed.
    csv_piece: Piece,
    json_piece: Piece,
    changes: Vec<(String, Changes)>,
}

/// A page of results, formatted: by control, then the results in id order.
struct Formatted {
    controls: Vec<(usize, ControlPage)>,
    seen: Vec<Seen>,
}

/// What every page's task shares.
struct Shared {
    store: Store,
    index: HashMap<String, usize>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Reads the results with ids in `(after, last]` and their findings (two queries at once),
/// then formats them on a blocking thread.
async fn page(
    shared: std::sync::Arc<Shared>,
    after: i64,
    last: i64,
) -> Result<Formatted, ExportError> {
    let store = &shared.store;
    let (results, findings) = tokio::try_join!(
        store.period_results_page(after, last, RESULTS_PER_PAGE),
        store.findings_of_result_range(after + 1, last),
    )?;
    tokio::task::spawn_blocking(move || format(&shared, results, &findings))
        .await
        .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))?
}

fn format(
    shared: &Shared,
    results: Vec<PeriodResult>,
    findings: &FindingsPage,
) -> Result<Formatted, ExportError> {
    struct Building<'a> {
        csv: Vec<u8>,
        json: Vec<u8>,
        changes: PageChanges<'a>,
    }
    let rows = findings.rows()?;
    let mut next = 0;
    let mut building: BTreeMap<usize, Building<'_>> = BTreeMap::new();
    let mut seen = Vec::with_capacity(results.len());
    let mut row = RowWriter::default();
    for PeriodResult {
        control_id,
        result: r,
    } in results
    {
        let Some(&i) = shared.index.get(control_id.as_str()) else {
            continue;
        };
        if r.evaluated_at < shared.start || r.evaluated_at >= shared.end {
            continue;
        }
        // Findings come by result, as results do.
        while rows.get(next).is_some_and(|f| f.result_id < r.id) {
            next += 1;
        }
        let begin = next;
        while rows.get(next).is_some_and(|f| f.result_id == r.id) {
            next += 1;
        }
        let found = &rows[begin..next];
        let b = building.entry(i).or_insert_with(|| Building {
            csv: Vec::with_capacity(16 * 1024),
            json: Vec::with_capacity(32 * 1024),
            changes: PageChanges::default(),
        });
        row.result(&r, &control_id);
        if found.is_empty() {
            // A result without findings (an error, nothing to check) is a row too.
            row.write(&mut b.csv, &mut b.json, None, &r);
        }
        for f in found {
            row.write(&mut b.csv, &mut b.json, Some(f), &r);
            b.changes.see(&f.resource, f.status == "fail");
        }
        seen.push(Seen {
            control: i,
            status: r.status,
            evaluated_at: r.evaluated_at,
            definition_sha256: r.definition_sha256,
            evidence_ids: r.evidence_ids,
            exceptions: r.exceptions,
            rows: found.len().max(1) as u64,
        });
    }
    let controls = building
        .into_iter()
        .map(|(i, b)| {
            Ok((
                i,
                ControlPage {
                    csv_piece: deflate::piece_here(&b.csv)?,
                    json_piece: deflate::piece_here(&b.json)?,
                    csv: b.csv,
                    json: b.json,
                    changes: b.changes.finish(),
                },
            ))
        })
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    Ok(Formatted { controls, seen })
}

/// Writes population rows as CSV ([`COLUMNS`]) and as JSON objects with the same fields, by
/// hand: a year is millions of rows, and the csv and serde_json writers' general machinery
/// (field state machines, an intermediate buffer, a serializer call per field) was a quarter
/// of the time spent formatting. The bytes are theirs (tests compare), and the result's own
/// fields are escaped once per result, not once per finding.
#[derive(Default)]
struct RowWriter {
    /// `run_id,evaluated_at,control_id,result_status,`
    csv_head: Vec<u8>,
    /// `,definition_sha256\n`
    csv_tail: Vec<u8>,
    /// `,\n{"run_id":…,"evaluated_at":…,"control_id":…,"result_status":…,`
    json_head: Vec<u8>,
    /// `,"definition_sha256":…}`
    json_tail: Vec<u8>,
}

impl RowWriter {
    /// Takes the result whose rows are written next.
    fn result(&mut self, r: &crate::store::ExportResult, control_id: &str) {
        let at = crate::integrity::time_text(r.evaluated_at);
        self.csv_head.clear();
        for field in [r.run_id.as_str(), &at, control_id, r.status.as_str()] {
            csv_field(&mut self.csv_head, field);
            self.csv_head.push(b',');
        }
        self.csv_tail.clear();
        self.csv_tail.push(b',');
        csv_field(&mut self.csv_tail, &r.definition_sha256);
        self.csv_tail.push(b'\n');
        self.json_head.clear();
        self.json_head.extend_from_slice(b",\n{\"run_id\":");
        json_str(&mut self.json_head, &r.run_id);
        self.json_head.extend_from_slice(b",\"evaluated_at\":");
        json_str(&mut self.json_head, &at);
        self.json_head.extend_from_slice(b",\"control_id\":");
        json_str(&mut self.json_head, control_id);
        self.json_head.extend_from_slice(b",\"result_status\":");
        json_str(&mut self.json_head, r.status.as_str());
        self.json_head.push(b',');
        self.json_tail.clear();
        self.json_tail.extend_from_slice(b",\"definition_sha256\":");
        json_str(&mut self.json_tail, &r.definition_sha256);
        self.json_tail.push(b'}');
    }

    /// Writes a row of the current result: a finding's, or the result's own if it has none.
    fn write(
        &self,
        csv: &mut Vec<u8>,
        json: &mut Vec<u8>,
        f: Option<&FindingRow<'_>>,
        r: &crate::store::ExportResult,
    ) {
        let mut check = itoa::Buffer::new();
        let check = f.map(|f| check.format(f.check));
        let status = f.map_or(r.status.as_str(), |f| &*f.status);
        let message = f.map_or(r.summary.as_str(), |f| &*f.message);
        let resource = f.map(|f| &*f.resource);
        let actual = f.map(|f| f.actual.get());

        csv.extend_from_slice(&self.csv_head);
        for (k, field) in [check, resource, Some(status), Some(message), actual]
            .into_iter()
            .enumerate()
        {
            if k > 0 {
                csv.push(b',');
            }
            csv_field(csv, field.unwrap_or(""));
        }
        csv.extend_from_slice(&self.csv_tail);

        json.extend_from_slice(&self.json_head);
        json.extend_from_slice(b"\"check\":");
        json.extend_from_slice(check.unwrap_or("null").as_bytes());
        json.extend_from_slice(b",\"resource\":");
        match resource {
            Some(v) => json_str(json, v),
            None => json.extend_from_slice(b"null"),
        }
        json.extend_from_slice(b",\"status\":");
        json_str(json, status);
        json.extend_from_slice(b",\"message\":");
        json_str(json, message);
        // The stored JSON, embedded as is (the database checked it is JSON).
        json.extend_from_slice(b",\"actual\":");
        json.extend_from_slice(actual.unwrap_or("null").as_bytes());
        json.extend_from_slice(&self.json_tail);
    }
}

/// Appends `s` as a CSV field: quoted when it holds a comma, a quote or a line break, its
/// quotes doubled (the csv crate's `QuoteStyle::Necessary`).
fn csv_field(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    let mut rest = bytes;
    while let Some(q) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..=q]);
        out.push(b'"');
        rest = &rest[q + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail, and a str always serializes.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Phase 1: reads the period's results of `controls` and spools their populations; each
/// control's evaluations go through its `coverage` as they come (in id order).
pub(super) async fn read(
    store: &Store,
    controls: &[&Control],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    coverage: Vec<super::coverage::Coverage>,
) -> Result<Pass, ExportError> {
    use futures::StreamExt as _;

    let shared = std::sync::Arc::new(Shared {
        store: store.clone(),
        index: controls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect(),
        start,
        end,
    });
    let mut header = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    header.write_record(COLUMNS)?;
    let header = header
        .into_inner()
        .map_err(|e| ExportError::Io(e.into_error()))?;
    let mut spool = Spool {
        spool: deflate::Spool::new()?,
        parts: Vec::with_capacity(controls.len() * 2),
    };
    for _ in controls {
        for head in [&header[..], b"["] {
            let mut part = deflate::Member::new();
            part.prefix(head);
            spool.parts.push(part);
        }
    }
    let mut pass = Pass {
        figures: vec![ControlFigures::default(); controls.len()],
        coverage,
        definitions: vec![BTreeSet::new(); controls.len()],
        evidence_ids: BTreeSet::new(),
        results: 0,
        rows: 0,
        spool: None,
    };
    // Each resource's last status, by control: failures and fixes are changes of it.
    let mut states: Vec<HashMap<String, bool>> = vec![HashMap::new(); controls.len()];
    let mut first = vec![true; controls.len()];

    if let Some((lo, hi)) = store.period_result_ids(start, end).await? {
        // Pages are ranges of ids, known in advance: several are read and formatted at
        // once (on other connections and threads) while this one is spooled, in order.
        let span = RESULTS_PER_PAGE as i64;
        let ranges = (0..)
            .map(move |k: i64| (lo - 1 + k * span, (lo - 1 + (k + 1) * span).min(hi)))
            .take_while(move |(after, _)| *after < hi);
        let mut pages = futures::stream::iter(ranges)
            .map(|(after, last)| tokio::spawn(page(shared.clone(), after, last)))
            .buffered(PAGES_AHEAD);
        while let Some(done) = pages.next().await {
            let formatted =
                done.map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))??;
            for (i, part) in formatted.controls {
                let Spool { spool, parts } = &mut spool;
                parts[2 * i].add(spool, &part.csv, Some(part.csv_piece))?;
                // Rows come as `,\n{…}`: the control's first row has no comma (and its
                // piece is made again without).
                if std::mem::take(&mut first[i]) && !part.json.is_empty() {
                    parts[2 * i + 1].add(spool, &part.json[2..], None)?;
                } else {
                    parts[2 * i + 1].add(spool, &part.json, Some(part.json_piece))?;
                }
                carry(&mut states[i], &mut pass.figures[i], part.changes);
            }
            for s in formatted.seen {
                let i = s.control;
                let fig = &mut pass.figures[i];
                fig.results += 1;
                *fig.by_status.entry(s.status.as_str()).or_default() += 1;
                for e in &s.exceptions {
                    *fig.exceptions
                        .entry(format!("{} ({})", e.id, e.status))
                        .or_default() += 1;
                }
                if !pass.definitions[i].contains(&s.definition_sha256) {
                    pass.definitions[i].insert(s.definition_sha256);
                }
                pass.evidence_ids.extend(s.evidence_ids.iter().copied());
                pass.coverage[i].see(s.evaluated_at, s.status);
                fig.latest_status = Some(s.status);
                fig.latest_at = Some(s.evaluated_at);
                fig.latest_evidence = s.evidence_ids;
                pass.rows += s.rows;
                pass.results += 1;
            }
        }
    }
    for (i, state) in states.iter().enumerate() {
        pass.figures[i].failing_at_end = state.values().filter(|failing| **failing).count();
    }
    let Spool { mut spool, parts } = spool;
    let parts = parts
        .into_iter()
        .enumerate()
        .map(|(k, part)| part.finish(&mut spool, if k % 2 == 0 { b"" } else { b"\n]\n" }))
        .collect::<Result<_, _>>()?;
    pass.spool = Some(Finished { spool, parts });
    Ok(pass)
}

/// Phase 2: writes each control's definitions (`definitions[i]`: SHA-256 and text) and
/// population into the bundle, in path order, copying the compressed populations from the
/// spool as they are (each through a zip of one entry, which the bundle copies raw).
pub(super) fn write<W: Write + Seek>(
    bundle: &mut Bundle<W>,
    controls: &[&Control],
    pass: &mut Pass,
    definitions: &[Vec<(String, String)>],
) -> Result<(), ExportError> {
    let Some(spool) = pass.spool.as_mut() else {
        return Err(ExportError::Io(std::io::Error::other(
            "the populations were not read",
        )));
    };
    for (i, control) in controls.iter().enumerate() {
        for (sha, text) in &definitions[i] {
            bundle.file(
                &format!("controls/{}/definitions/{sha}.yaml", control.id),
                text.as_bytes(),
            )?;
        }
        for (part, name) in [(2 * i, "population.csv"), (2 * i + 1, "population.json")] {
            let path = format!("controls/{}/{name}", control.id);
            bundle.deflated(&path, &mut spool.spool, &spool.parts[part])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written rows are byte for byte what the csv crate and serde_json write.
    #[test]
    fn rows_are_what_the_csv_and_json_writers_write() {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            run_id: &'a str,
            evaluated_at: &'a str,
            control_id: &'a str,
            result_status: &'a str,
            check: Option<i32>,
            resource: Option<&'a str>,
            status: &'a str,
            message: &'a str,
            actual: Option<&'a serde_json::value::RawValue>,
            definition_sha256: &'a str,
        }
        let tricky = [
            "",
            "plain",
            "a,b",
            "say \"hi\"",
            "\"",
            "line\nbreak",
            "cr\r",
            "tab\there",
            "back\\slash",
            "bell\u{7}",
            "del\u{7f}",
            "ünïcødé ✓",
            " lead and trail ",
            "#comment",
            "a,\"b\"\n",
        ];
        let result = |text: &str| crate::store::ExportResult {
            id: 1,
            run_id: format!("run {text}"),
            status: crate::model::Status::Fail,
            summary: text.to_string(),
            evaluated_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            definition_sha256: text.to_string(),
            evidence_ids: Vec::new(),
            exceptions: Vec::new(),
        };
        for text in tricky {
            let r = result(text);
            let control = format!("control{text}");
            let actual_text =
                serde_json::to_string(&serde_json::json!({ "v": text, "n": [1, 2.5] })).unwrap();
            let page = format!(
                "[[7, 1, 3, {0}, {0}, {0}, {1}]]",
                serde_json::to_string(text).unwrap(),
                actual_text
            );
            let page: Vec<FindingRow<'_>> = serde_json::from_str(&page).unwrap();
            let mut writer = RowWriter::default();
            writer.result(&r, &control);
            for f in [None, Some(&page[0])] {
                let (mut csv, mut json) = (Vec::new(), Vec::new());
                writer.write(&mut csv, &mut json, f, &r);

                let at = crate::integrity::time_text(r.evaluated_at);
                let check = f.map(|f| f.check.to_string());
                let mut expect = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::new());
                expect
                    .write_record([
                        r.run_id.as_str(),
                        &at,
                        &control,
                        r.status.as_str(),
                        check.as_deref().unwrap_or(""),
                        f.map_or("", |f| &f.resource),
                        f.map_or(r.status.as_str(), |f| &f.status),
                        f.map_or(r.summary.as_str(), |f| &f.message),
                        f.map_or("", |f| f.actual.get()),
                        &r.definition_sha256,
                    ])
                    .unwrap();
                let expect = expect.into_inner().unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&csv),
                    String::from_utf8_lossy(&expect),
                    "csv of {text:?}"
                );

                let mut expect = b",\n".to_vec();
                serde_json::to_writer(
                    &mut expect,
                    &Row {
                        run_id: &r.run_id,
                        evaluated_at: &at,
                        control_id: &control,
                        result_status: r.status.as_str(),
                        check: f.map(|f| f.check),
                        resource: f.map(|f| &*f.resource),
                        status: f.map_or(r.status.as_str(), |f| &*f.status),
                        message: f.map_or(r.summary.as_str(), |f| &*f.message),
                        actual: f.map(|f| f.actual),
                        definition_sha256: &r.definition_sha256,
                    },
                )
                .unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&json),
                    String::from_utf8_lossy(&expect),
                    "json of {text:?}"
                );
            }
        }
    }

    /// Failures and fixes counted a page at a time are those of the whole sequence, wherever
    /// the pages split it.
    #[test]
    fn failures_and_fixes_do_not_depend_on_pages() {
        fn check(seq: &[(&str, bool)], expect: (usize, usize, usize)) {
            for cut in 0..=seq.len() {
                for cut2 in cut..=seq.len() {
                    let mut states = HashMap::new();
                    let mut fig = ControlFigures::default();
                    for page in [&seq[..cut], &seq[cut..cut2], &seq[cut2..]] {
                        let mut changes = PageChanges::default();
                        for (resource, failing) in page {
                            changes.see(resource, *failing);
                        }
                        carry(&mut states, &mut fig, changes.finish());
                    }
                    let failing = states.values().filter(|f| **f).count();
                    assert_eq!(
                        (fig.failures, fig.fixes, failing),
                        expect,
                        "{seq:?} cut at {cut} and {cut2}"
                    );
                }
            }
        }
        check(&[], (0, 0, 0));
        check(&[("a", false), ("a", false)], (0, 0, 0));
        check(&[("a", true)], (1, 0, 1));
        check(&[("a", true), ("a", true), ("a", true)], (1, 0, 1));
        check(&[("a", true), ("a", false)], (1, 1, 0));
        check(
            &[
                ("a", false),
                ("a", true),
                ("b", true),
                ("a", false),
                ("a", true),
                ("b", false),
            ],
            (3, 2, 1),
        );
        check(
            &[("a", true), ("b", true), ("a", false), ("b", true)],
            (2, 1, 1),
        );
    }
}
