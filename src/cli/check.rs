//! `trellis check`: one run of the selected controls, printed as a table or as JSON.
//!
//! Nothing is held for the whole run: the runner streams each control's outcome here as it is
//! evaluated. JSON is written to standard output control by control; the table keeps only
//! what it prints (each control's line, and the findings that are not passing).

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Format, load_catalog};
use crate::catalog::{self, Catalog, Control};
use crate::config::Loaded;
use crate::model::{ControlOutcome, Status, Trigger};
use crate::probes::ProbeContext;
use crate::runner::{self, NoSink, RunTotals, RunWatcher};
use crate::store::Store;

/// When `check` shows its progress (on standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// A progress bar when standard error is a terminal; nothing otherwise.
    Auto,
    /// A progress bar on a terminal; otherwise a line per source collected and one when the
    /// controls are evaluated (for logs).
    Always,
    Never,
}

/// How progress is shown.
enum Bar {
    Term(indicatif::ProgressBar),
    Lines,
}

pub(super) async fn check(
    loaded: &Loaded,
    ids: &[String],
    format: Format,
    no_store: bool,
    as_of: Option<DateTime<Utc>>,
    progress: Progress,
    baseline: Option<&std::path::Path>,
) -> u8 {
    let baseline = match baseline.map(read_baseline).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let today = as_of.unwrap_or_else(Utc::now).date_naive();
    let catalog = match load_catalog(loaded, today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut selected: Vec<&Control> = Vec::new();
    for id in ids {
        match catalog.get(id) {
            Some(c) => selected.push(c),
            None => {
                eprintln!("error: unknown control `{id}` (see `trellis validate` for the catalog)");
                return EXIT_USAGE;
            }
        }
    }
    if ids.is_empty() {
        selected = catalog.controls().iter().collect();
    }
    let ctx = ProbeContext::for_run(loaded, as_of.unwrap_or_else(Utc::now));
    let mut output = Output::new(
        &catalog,
        format,
        progress_bar(progress),
        ctx.now,
        selected.len(),
    );
    output.baseline = baseline;
    let concurrency = loaded.config.limits.concurrency;
    let totals = if no_store {
        runner::stream(&ctx, &selected, concurrency, &NoSink, &output).await
    } else {
        let store = match Store::connect(&loaded.config.database_url).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        };
        // Exceptions approved in the dashboard apply to stored runs as in the server.
        let managed = match catalog::managed_exceptions(&store, today).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        };
        let controls = catalog::with_exceptions(&selected, &managed);
        let selected: Vec<&Control> = controls.iter().collect();
        let signer = match crate::startup::signing(loaded) {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                return EXIT_USAGE;
            }
        };
        runner::run_and_store(
            &store,
            &ctx,
            &selected,
            concurrency,
            Trigger::Cli,
            &signer,
            &output,
        )
        .await
    };
    let failed = totals.as_ref().map_or(true, RunTotals::any_failing);
    let error = totals.as_ref().err().map(|e| format!("{e:#}"));
    let against_baseline = output.baseline.as_ref().map(|_| {
        std::mem::take(
            &mut *output
                .new_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    });
    if let Err(e) = output.finish(totals.as_ref().ok(), error.as_deref()) {
        eprintln!("error: cannot write output: {e}");
    }
    if let Some(e) = error {
        eprintln!("error: {e}");
        return EXIT_FAILED;
    }
    if let Some(new) = against_baseline {
        // Only what the baseline does not know fails the command.
        if new.is_empty() {
            eprintln!("baseline: no failure that the baseline does not have");
            return EXIT_OK;
        }
        eprintln!("baseline: {} failure(s) not in the baseline:", new.len());
        for line in new.iter().take(50) {
            eprintln!("  {line}");
        }
        if new.len() > 50 {
            eprintln!("  … and {} more", new.len() - 50);
        }
        return EXIT_FAILED;
    }
    if failed { EXIT_FAILED } else { EXIT_OK }
}

/// The fingerprints of what fails or errs in a `check --format json` document.
fn read_baseline(path: &std::path::Path) -> Result<std::collections::HashSet<String>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        controls: Vec<DocControl>,
    }
    #[derive(serde::Deserialize)]
    struct DocControl {
        id: String,
        #[serde(default)]
        findings: Vec<DocItem>,
        #[serde(default)]
        failing_checks: Vec<DocItem>,
    }
    #[derive(serde::Deserialize)]
    struct DocItem {
        status: Status,
        fingerprint: Option<String>,
    }
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the baseline {}: {e}", path.display()))?;
    let doc: Doc = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
        format!(
            "{}:{}:{}: not a `trellis check --format json` document: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let mut fingerprints = std::collections::HashSet::new();
    for control in doc.controls {
        for item in control.findings.into_iter().chain(control.failing_checks) {
            if !matches!(item.status, Status::Fail | Status::Error) {
                continue;
            }
            let Some(fp) = item.fingerprint else {
                return Err(format!(
                    "{}: control `{}` has findings without fingerprints (made by an older trellis): make the baseline again with this one",
                    path.display(),
                    control.id
                ));
            };
            fingerprints.insert(fp);
        }
    }
    Ok(fingerprints)
}

fn progress_bar(progress: Progress) -> Option<Bar> {
    let terminal = std::io::stderr().is_terminal();
    match progress {
        Progress::Never => return None,
        Progress::Auto if !terminal => return None,
        Progress::Always if !terminal => return Some(Bar::Lines),
        _ => {}
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_message("sources collected");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(Bar::Term(bar))
}

/// Follows the run: moves the progress bar, and writes or keeps each outcome.
struct Output<'a> {
    catalog: &'a Catalog,
    bar: Option<Bar>,
    state: Mutex<State>,
    /// Controls in the run, evaluated so far, and whether every source is in: controls are
    /// evaluated as their sources come in, but the bar counts sources until the last one.
    controls: usize,
    evaluated: std::sync::atomic::AtomicUsize,
    all_collected: std::sync::atomic::AtomicBool,
    /// With `--baseline`: the fingerprints of the failures it has, and the failures of this
    /// run it does not (`control resource (fingerprint)`).
    baseline: Option<std::collections::HashSet<String>>,
    new_failures: Mutex<Vec<String>>,
}

enum State {
    /// The JSON document, written as the run goes; the first write error is kept.
    Json {
        out: BufWriter<std::io::Stdout>,
        controls: usize,
        failed: Option<std::io::Error>,
    },
    /// What the table prints, kept until the end (it sorts failing controls first); the
    /// lines of the findings in a spool.
    Table { outcomes: Vec<Kept>, spool: Spool },
}

impl<'a> Output<'a> {
    fn new(
        catalog: &'a Catalog,
        format: Format,
        bar: Option<Bar>,
        started_at: DateTime<Utc>,
        controls: usize,
    ) -> Output<'a> {
        let state = match format {
            Format::Table => State::Table {
                outcomes: Vec::new(),
                spool: Spool::new(),
            },
            Format::Json => {
                let mut out = BufWriter::new(std::io::stdout());
                let failed = write!(
                    out,
                    "{{\n  \"started_at\": \"{}\",\n  \"controls\": [",
                    started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                )
                .err();
                State::Json {
                    out,
                    controls: 0,
                    failed,
                }
            }
        };
        Output {
            catalog,
            bar,
            state: Mutex::new(state),
            controls,
            evaluated: Default::default(),
            all_collected: Default::default(),
            baseline: None,
            new_failures: Mutex::new(Vec::new()),
        }
    }

    /// Ends the output: the JSON document is closed (with `finished_at`, or the `error` that
    /// cut the run short), the table printed.
    fn finish(self, totals: Option<&RunTotals>, error: Option<&str>) -> std::io::Result<()> {
        if let Some(Bar::Term(bar)) = &self.bar {
            bar.finish_and_clear();
        }
        match self.state.into_inner().unwrap_or_else(|p| p.into_inner()) {
            State::Json {
                mut out,
                controls,
                failed,
            } => {
                if let Some(e) = failed {
                    return Err(e);
                }
                out.write_all(if controls == 0 { b"]" } else { b"\n  ]" })?;
                if let Some(t) = totals {
                    write!(
                        out,
                        ",\n  \"finished_at\": \"{}\"",
                        t.finished_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                    )?;
                }
                if let Some(e) = error {
                    write!(out, ",\n  \"error\": {}", json!(e))?;
                }
                out.write_all(b"\n}\n")?;
                out.flush()
            }
            State::Table { outcomes, spool } => match totals {
                Some(t) => print_table(self.catalog, outcomes, spool, t),
                None => Ok(()),
            },
        }
    }
}

impl RunWatcher for Output<'_> {
    fn collected(&self, done: usize, total: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        match &self.bar {
            Some(Bar::Term(bar)) if done == total => {
                self.all_collected.store(true, SeqCst);
                bar.set_message("controls evaluated");
                bar.set_length(self.controls as u64);
                bar.set_position(self.evaluated.load(SeqCst) as u64);
            }
            Some(Bar::Term(bar)) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Some(Bar::Lines) => eprintln!("progress: {done}/{total} sources collected"),
            None => {}
        }
    }

    fn progress(&self, done: usize, total: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.evaluated.store(done, SeqCst);
        match &self.bar {
            Some(Bar::Term(bar)) if self.all_collected.load(SeqCst) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Some(Bar::Lines) if done == total => {
                eprintln!("progress: {done}/{total} controls evaluated");
            }
            _ => {}
        }
    }

    fn outcome(&self, outcome: &ControlOutcome) {
        if let Some(baseline) = &self.baseline {
            let mut new = self.new_failures.lock().unwrap_or_else(|p| p.into_inner());
            for (fp, check, resource) in outcome.failures() {
                if !baseline.contains(&fp) {
                    let what = if resource.is_empty() {
                        format!("check {check}")
                    } else {
                        resource.to_string()
                    };
                    new.push(format!("{} {what} ({fp})", outcome.control_id));
                }
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            State::Json {
                out,
                controls,
                failed,
            } => {
                if failed.is_some() {
                    return;
                }
                let value = control_json(self.catalog, outcome);
                let written = (|| -> std::io::Result<()> {
                    out.write_all(if *controls == 0 {
                        b"\n    "
                    } else {
                        b",\n    "
                    })?;
                    let mut ser = serde_json::Serializer::with_formatter(
                        Indented(&mut *out),
                        serde_json::ser::PrettyFormatter::new(),
                    );
                    serde::Serialize::serialize(&value, &mut ser).map_err(std::io::Error::other)
                })();
                *controls += 1;
                *failed = written.err();
            }
            State::Table { outcomes, spool } => outcomes.push(Kept::of(outcome, spool)),
        }
    }
}

/// What the table keeps of an outcome until the run ends: the outcome without its checks and
/// findings, and where the lines of its findings that are not passing are in the spool.
struct Kept {
    outcome: ControlOutcome,
    findings: Spooled,
}

impl Kept {
    fn of(outcome: &ControlOutcome, spool: &mut Spool) -> Kept {
        let mut lines = String::new();
        for f in &outcome.findings {
            if matches!(f.status, Status::Fail | Status::Error | Status::Waived) {
                lines.push_str(&format!(
                    "  {:<6} {}  actual: {}\n",
                    f.status.as_str(),
                    f.message,
                    f.actual.as_str()
                ));
            }
        }
        let findings = spool.push(lines.as_bytes());
        Kept {
            outcome: ControlOutcome {
                control_id: outcome.control_id.clone(),
                status: outcome.status,
                summary: outcome.summary.clone(),
                evaluated_at: outcome.evaluated_at,
                definition_sha256: outcome.definition_sha256.clone(),
                checks: Vec::new(),
                findings: Vec::new(),
                exceptions: outcome.exceptions.clone(),
            },
            findings,
        }
    }
}

/// Indents every line after the first by four spaces (a control inside `"controls": [...]`).
struct Indented<W>(W);

impl<W: Write> Write for Indented<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.0.write_all(&rest[..=nl])?;
            self.0.write_all(b"    ")?;
            rest = &rest[nl + 1..];
        }
        self.0.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// One control of the documented JSON shape of `check --format json`, borrowing the outcome
/// (a control over thousands of resources is serialized without a copy of its findings).
#[derive(serde::Serialize)]
struct ControlJson<'a> {
    id: &'a str,
    title: &'a str,
    category: &'a str,
    status: Status,
    summary: &'a str,
    findings: Vec<FindingJson<'a>>,
    /// Checks that fail or err with no finding of their own (their probe could not collect,
    /// or no resource was found where one is required).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failing_checks: Vec<FailingCheckJson<'a>>,
    exceptions: &'a [crate::model::ExceptionUse],
}

#[derive(serde::Serialize)]
struct FindingJson<'a> {
    resource: &'a str,
    status: Status,
    message: &'a str,
    actual: &'a crate::model::RawJson,
    /// Stable across runs: control, check and resource (`--baseline` compares these).
    fingerprint: String,
}

#[derive(serde::Serialize)]
struct FailingCheckJson<'a> {
    check: usize,
    probe: &'a str,
    status: Status,
    summary: &'a str,
    fingerprint: String,
}

fn control_json<'a>(catalog: &'a Catalog, o: &'a ControlOutcome) -> ControlJson<'a> {
    let c = catalog.get(&o.control_id);
    ControlJson {
        id: &o.control_id,
        title: c.map(|c| c.title.as_str()).unwrap_or(""),
        category: c.map(|c| c.category.as_str()).unwrap_or(""),
        status: o.status,
        summary: &o.summary,
        findings: o
            .findings
            .iter()
            .map(|f| FindingJson {
                resource: &f.resource,
                status: f.status,
                message: &f.message,
                actual: &f.actual,
                fingerprint: f.fingerprint(&o.control_id),
            })
            .collect(),
        failing_checks: o
            .failures()
            .into_iter()
            .filter(|(_, _, resource)| resource.is_empty())
            .filter_map(|(fingerprint, k, _)| {
                o.checks.get(k).map(|c| FailingCheckJson {
                    check: k,
                    probe: &c.probe,
                    status: c.status,
                    summary: &c.summary,
                    fingerprint,
                })
            })
            .collect(),
        exceptions: &o.exceptions,
    }
}

fn print_table(
    catalog: &Catalog,
    mut outcomes: Vec<Kept>,
    spool: Spool,
    totals: &RunTotals,
) -> std::io::Result<()> {
    let mut spool = spool.into_reader()?;
    use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
    let tty = std::io::stdout().is_terminal();
    let colour = |s: Status| match s {
        Status::Pass => Color::Green,
        Status::Fail => Color::Red,
        Status::Error => Color::Magenta,
        Status::NotApplicable | Status::Waived => Color::Grey,
    };
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["status", "control", "category", "summary"]);
    if !tty {
        table.force_no_tty();
    }
    outcomes.sort_by(|a, b| {
        let (a, b) = (&a.outcome, &b.outcome);
        let key = |o: &ControlOutcome| (o.status != Status::Fail, o.status != Status::Error);
        key(a)
            .cmp(&key(b))
            .then_with(|| a.control_id.cmp(&b.control_id))
    });
    for Kept { outcome: o, .. } in &outcomes {
        let category = catalog
            .get(&o.control_id)
            .map(|c| c.category.as_str())
            .unwrap_or("");
        let mut status = Cell::new(o.status.as_str());
        if tty {
            status = status.fg(colour(o.status));
        }
        table.add_row(vec![
            status,
            Cell::new(&o.control_id),
            Cell::new(category),
            Cell::new(&o.summary),
        ]);
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{table}")?;
    for Kept {
        outcome: o,
        findings,
    } in &outcomes
    {
        // Only the findings that are not passing were kept.
        if findings.is_empty() && o.exceptions.is_empty() {
            continue;
        }
        writeln!(out, "\n{} ({}):", o.control_id, o.status)?;
        spool.copy(*findings, &mut out)?;
        for e in &o.exceptions {
            let what = match e.status.as_str() {
                "applied" => format!(
                    "waives {} resource(s) until {}",
                    e.resources.len(),
                    e.expires_on
                ),
                "unused" => format!(
                    "waives nothing (nothing it covers fails): remove it, or let it lapse on {}",
                    e.expires_on
                ),
                _ => format!(
                    "EXPIRED on {}: no longer waives {} failing resource(s)",
                    e.expires_on,
                    e.resources.len()
                ),
            };
            writeln!(
                out,
                "  exception {} ({}, owner {}) {what}",
                e.id, e.ticket, e.owner
            )?;
        }
    }
    writeln!(
        out,
        "\n{} controls: {} pass, {} fail, {} error, {} waived, {} not applicable",
        totals.controls,
        totals.count(Status::Pass),
        totals.count(Status::Fail),
        totals.count(Status::Error),
        totals.count(Status::Waived),
        totals.count(Status::NotApplicable)
    )?;
    out.flush()
}

/// Where a control's lines are in the [`Spool`].
#[derive(Debug, Clone, Copy)]
struct Spooled {
    at: u64,
    len: u64,
}

impl Spooled {
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The lines of the findings that are not passing, for the table's end: written to an unnamed
/// temporary file as each control is evaluated (a large run fails tens of thousands of
/// findings, which a run would otherwise hold to its end) and read back in the table's order.
/// In memory when no temporary file can be made; a write that fails is reported at the end.
struct Spool {
    file: Option<BufWriter<std::fs::File>>,
    memory: Vec<u8>,
    len: u64,
    failed: Option<std::io::Error>,
}

impl Spool {
    fn new() -> Spool {
        let mut spool = Spool::in_memory();
        match tempfile::tempfile() {
            Ok(f) => spool.file = Some(BufWriter::new(f)),
            Err(e) => {
                tracing::debug!(error = %e, "no temporary file for the findings: kept in memory");
            }
        }
        spool
    }

    fn in_memory() -> Spool {
        Spool {
            file: None,
            memory: Vec::new(),
            len: 0,
            failed: None,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Spooled {
        let at = self.len;
        match &mut self.file {
            Some(file) => {
                if let Err(e) = file.write_all(bytes)
                    && self.failed.is_none()
                {
                    self.failed = Some(e);
                }
            }
            None => self.memory.extend_from_slice(bytes),
        }
        self.len += bytes.len() as u64;
        Spooled {
            at,
            len: bytes.len() as u64,
        }
    }

    fn into_reader(self) -> std::io::Result<SpoolReader> {
        if let Some(e) = self.failed {
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot keep the failing findings in a temporary file: {e}"),
            ));
        }
        Ok(match self.file {
            Some(file) => SpoolReader::File(file.into_inner().map_err(|e| e.into_error())?),
            None => SpoolReader::Memory(self.memory),
        })
    }
}

enum SpoolReader {
    File(std::fs::File),
    Memory(Vec<u8>),
}

impl SpoolReader {
    fn copy(&mut self, part: Spooled, out: &mut impl Write) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        match self {
            SpoolReader::File(file) => {
                file.seek(SeekFrom::Start(part.at))?;
                let copied = std::io::copy(&mut (&*file).take(part.len), out)?;
                if copied != part.len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the temporary file of failing findings was cut short",
                    ));
                }
                Ok(())
            }
            SpoolReader::Memory(bytes) => {
                let range = usize::try_from(part.at).unwrap_or(usize::MAX)
                    ..usize::try_from(part.at + part.len).unwrap_or(usize::MAX);
                match bytes.get(range) {
                    Some(b) => out.write_all(b),
                    None => Err(std::io::Error::other(
                        "internal: spooled lines out of range",
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;

    /// Parts come back as written, in any order, from the file and from memory alike.
    #[test]
    fn parts_come_back_as_written_in_any_order() {
        let mut file = Spool::new();
        assert!(file.file.is_some(), "a temporary file can be made here");
        let mut memory = Spool::in_memory();
        for spool in [&mut file, &mut memory] {
            let parts: Vec<(Spooled, String)> = ["first\n", "", "second line\n", "third\n"]
                .iter()
                .map(|t| (spool.push(t.as_bytes()), t.to_string()))
                .collect();
            assert!(parts[1].0.is_empty());
            let taken = std::mem::replace(spool, Spool::in_memory());
            let mut reader = taken.into_reader().expect("reader");
            for (part, text) in parts.iter().rev() {
                let mut out = Vec::new();
                reader.copy(*part, &mut out).expect("copy");
                assert_eq!(String::from_utf8(out).expect("utf-8"), *text);
            }
        }
    }
}
