//! Auditor export bundles: a period's evidence, results and populations in one signed,
//! reproducible zip that can be checked offline (`trellis verify-bundle`).
//!
//! Layout (entries in this order, which is path order):
//!
//! ```text
//! attestations/<run>.json, <run>.sig   each run's signed manifest, as stored
//! controls/<id>/definitions/<sha>.yaml the control as it was at each run
//! controls/<id>/population.csv         every resource's status at every run (COLUMNS)
//! controls/<id>/population.json        the same, as JSON
//! evidence/<id>.json                   the raw evidence the results read
//! manifest.json                        every other file's SHA-256 and size, the runs, the key
//! manifest.sig                         ed25519 signature of manifest.json (hex)
//! oscal/assessment-results.json        OSCAL 1.2.1 assessment results
//! summary.html                         the period for humans
//! ```
//!
//! Streamed: each control's results are read and written a page at a time, the JSON
//! population and OSCAL observations go through temporary files, so memory stays bounded
//! whatever the period. Reproducible: fixed entry order, timestamps and permissions; UUIDs
//! derived from the content; the same data and arguments give the same bytes.

mod oscal;
mod verify;

pub use verify::{BundleProblem, verify_bundle};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Seek, Write};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Control};
use crate::integrity::Signer;
use crate::model::Status;
use crate::store::Store;

/// The population CSV's columns.
pub const COLUMNS: &[&str] = &[
    "run_id",
    "evaluated_at",
    "control_id",
    "result_status",
    "check",
    "resource",
    "status",
    "message",
    "actual",
    "definition_sha256",
];

/// Results read per page.
const RESULTS_PER_PAGE: usize = 200;
/// Evidence rows read per page.
const EVIDENCE_PER_PAGE: usize = 200;

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// First day (UTC), included.
    pub from: NaiveDate,
    /// Last day (UTC), included.
    pub to: NaiveDate,
    /// Only these controls (empty: all, or all of `framework`).
    pub controls: Vec<String>,
    /// Only controls mapped to this framework (`soc2`, `cis-aws`…).
    pub framework: Option<String>,
}

impl ExportRequest {
    fn start(&self) -> DateTime<Utc> {
        self.from.and_time(chrono::NaiveTime::MIN).and_utc()
    }
    fn end(&self) -> DateTime<Utc> {
        (self.to + chrono::Duration::days(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the period is empty: --from {from} is after --to {to}")]
    Period { from: NaiveDate, to: NaiveDate },
    #[error("unknown control `{0}`")]
    UnknownControl(String),
    #[error("no control maps to framework `{0}`")]
    NoControls(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot write the bundle: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the bundle: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("cannot serialize {what}: {error}")]
    Json {
        what: &'static str,
        error: serde_json::Error,
    },
    #[error("cannot write the csv: {0}")]
    Csv(#[from] csv::Error),
}

/// What was exported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub controls: usize,
    pub runs: usize,
    pub results: usize,
    pub population_rows: u64,
    pub evidence_files: usize,
    pub files: usize,
    pub key_id: String,
}

/// One file of the bundle, as listed in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BundleManifest {
    pub format: String,
    pub generator: String,
    pub period: Period,
    pub controls: Vec<String>,
    pub framework: Option<String>,
    pub runs: Vec<RunEntry>,
    /// The key that signed `manifest.json` (and, when `signed_by` of a run says so, the run).
    pub key_id: String,
    pub public_key: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunEntry {
    pub id: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub state: String,
    /// The key id of the run's own signature (`attestations/<run>.sig`), if it is signed.
    pub signed_by: Option<String>,
}

pub const FORMAT: &str = "trellis-evidence-bundle/1";

/// A writer that hashes and counts what goes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.size)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The zip being written, with the list of its files.
struct Bundle<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    options: zip::write::SimpleFileOptions,
    files: Vec<FileEntry>,
}

impl<W: Write + Seek> Bundle<W> {
    fn new(out: W, stamp: NaiveDate) -> Result<Self, ExportError> {
        use chrono::Datelike as _;
        // Every entry carries the same time: the day after the period (zip times are local
        // and in 2-second steps; a date alone keeps them exact).
        let year = u16::try_from(stamp.year())
            .unwrap_or(1980)
            .clamp(1980, 2107);
        let time = zip::DateTime::from_date_and_time(
            year,
            stamp.month() as u8,
            stamp.day() as u8,
            0,
            0,
            0,
        )
        .unwrap_or_default();
        Ok(Bundle {
            zip: zip::ZipWriter::new(out),
            options: zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                // Fast deflate: populations are large and repetitive; level 1 compresses them
                // nearly as well as 6 at several times the speed.
                .compression_level(Some(1))
                .last_modified_time(time)
                .unix_permissions(0o644)
                .large_file(false),
            files: Vec::new(),
        })
    }

    /// Writes a whole file.
    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.zip.start_file(path, self.options)?;
        self.zip.write_all(bytes)?;
        self.files.push(FileEntry {
            path: path.to_string(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        });
        Ok(())
    }

    /// Writes a file through `fill`, hashing as it goes.
    fn stream(
        &mut self,
        path: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        self.zip.start_file(path, self.options)?;
        let mut w = Hashing::new(&mut self.zip);
        fill(&mut w)?;
        let (_, sha256, size) = w.finish();
        self.files.push(FileEntry {
            path: path.to_string(),
            sha256,
            size,
        });
        Ok(())
    }

    /// Copies a temporary file in.
    fn copy(&mut self, path: &str, mut from: std::fs::File) -> Result<(), ExportError> {
        from.seek(std::io::SeekFrom::Start(0))?;
        self.stream(path, |w| {
            std::io::copy(&mut from, w)?;
            Ok(())
        })
    }
}

/// Per-control figures for the summary and OSCAL.
#[derive(Debug, Clone, Default)]
pub(crate) struct ControlFigures {
    pub results: usize,
    pub by_status: BTreeMap<&'static str, usize>,
    pub latest_status: Option<Status>,
    pub latest_at: Option<DateTime<Utc>>,
    /// Evidence ids read by the newest result of the period.
    pub latest_evidence: Vec<i64>,
    /// Resources failing at the end of the period.
    pub failing_at_end: usize,
    /// Times a resource went from not failing to failing, and back.
    pub failures: usize,
    pub fixes: usize,
    /// Exceptions used by the period's results (id → times).
    pub exceptions: BTreeMap<String, usize>,
}

fn json_err(what: &'static str) -> impl Fn(serde_json::Error) -> ExportError {
    move |error| ExportError::Json { what, error }
}

/// The controls an export covers, in id order.
pub fn select<'a>(
    catalog: &'a Catalog,
    request: &ExportRequest,
) -> Result<Vec<&'a Control>, ExportError> {
    let mut out: Vec<&Control> = if request.controls.is_empty() {
        catalog.controls().iter().collect()
    } else {
        request
            .controls
            .iter()
            .map(|id| {
                catalog
                    .get(id)
                    .ok_or_else(|| ExportError::UnknownControl(id.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    if let Some(f) = &request.framework {
        out.retain(|c| c.frameworks.iter().any(|m| &m.framework == f));
        if out.is_empty() {
            return Err(ExportError::NoControls(f.clone()));
        }
    }
    // In the order of their folders' paths (`a-b/` sorts before `a/`).
    out.sort_by(|a, b| format!("{}/", a.id).cmp(&format!("{}/", b.id)));
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

/// Writes the bundle of `request` to `out`.
pub async fn export<W: Write + Seek>(
    store: &Store,
    catalog: &Catalog,
    signer: &Signer,
    request: &ExportRequest,
    out: W,
) -> Result<(W, ExportSummary), ExportError> {
    if request.from > request.to {
        return Err(ExportError::Period {
            from: request.from,
            to: request.to,
        });
    }
    let controls = select(catalog, request)?;
    let (start, end) = (request.start(), request.end());
    let mut bundle = Bundle::new(out, request.to + chrono::Duration::days(1))?;
    let mut summary = ExportSummary {
        controls: controls.len(),
        key_id: signer.key_id(),
        ..ExportSummary::default()
    };

    // Runs of the period, and their signed manifests.
    let runs = store.runs_between(start, end).await?;
    summary.runs = runs.len();
    for r in &runs {
        if let Some((manifest, signature, _)) = &r.seal {
            bundle.file(
                &format!("attestations/{}.json", r.run.id),
                manifest.as_bytes(),
            )?;
            bundle.file(
                &format!("attestations/{}.sig", r.run.id),
                signature.as_bytes(),
            )?;
        }
    }

    // Controls: definitions as evaluated, then the population.
    let mut figures: BTreeMap<String, ControlFigures> = BTreeMap::new();
    let mut evidence_ids: BTreeSet<i64> = BTreeSet::new();
    for control in &controls {
        let results = store.export_results(&control.id, start, end).await?;
        let mut shas: Vec<&str> = results
            .iter()
            .map(|r| r.definition_sha256.as_str())
            .collect();
        shas.sort_unstable();
        shas.dedup();
        for sha in shas {
            // The text as evaluated; the current file when it matches (older stores).
            let text = match store.definition(sha).await? {
                Some(t) => t,
                None if sha == control.sha256 => control.source.to_string(),
                None => format!("# the definition with SHA-256 {sha} was not kept\n"),
            };
            bundle.file(
                &format!("controls/{}/definitions/{sha}.yaml", control.id),
                text.as_bytes(),
            )?;
        }
        let mut fig = ControlFigures {
            results: results.len(),
            ..ControlFigures::default()
        };
        let mut state: HashMap<String, bool> = HashMap::new();
        // The JSON population goes to a temporary file while the CSV streams into the zip.
        let mut json_tmp = tempfile::tempfile()?;
        let mut json_w = std::io::BufWriter::with_capacity(256 * 1024, &mut json_tmp);
        json_w.write_all(b"[")?;
        let mut first_json = true;
        let mut rows = 0u64;
        let csv_path = format!("controls/{}/population.csv", control.id);
        bundle.zip.start_file(csv_path.as_str(), bundle.options)?;
        let mut csv_out = Hashing::new(&mut bundle.zip);
        {
            let mut header = csv::Writer::from_writer(&mut csv_out);
            header.write_record(COLUMNS)?;
            header.flush()?;
        }
        // Reading and writing overlap: the next page's findings are fetched (on the
        // database's side) while this page is formatted and compressed.
        let pages: Vec<&[crate::store::ExportResult]> = results.chunks(RESULTS_PER_PAGE).collect();
        let fetch = |page: &[crate::store::ExportResult]| {
            let ids: Vec<i64> = page.iter().map(|r| r.id).collect();
            let store = store.clone();
            tokio::spawn(async move { store.export_findings(&ids).await })
        };
        let mut next = pages.first().map(|p| fetch(p));
        for (i, &page) in pages.iter().enumerate() {
            let Some(pending) = next.take() else { break };
            let mut findings = pending
                .await
                .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))??;
            next = pages.get(i + 1).map(|p| fetch(p));
            let mut buf = Vec::with_capacity(256 * 1024);
            {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut buf);
                for r in page {
                    *fig.by_status.entry(r.status.as_str()).or_default() += 1;
                    evidence_ids.extend(r.evidence_ids.iter().copied());
                    for e in &r.exceptions {
                        *fig.exceptions
                            .entry(format!("{} ({})", e.id, e.status))
                            .or_default() += 1;
                    }
                    let at = crate::integrity::time_text(r.evaluated_at);
                    let found = findings.remove(&r.id).unwrap_or_default();
                    if found.is_empty() {
                        // A result without findings (an error, nothing to check) is a row too.
                        csv.write_record([
                            r.run_id.as_str(),
                            &at,
                            &control.id,
                            r.status.as_str(),
                            "",
                            "",
                            r.status.as_str(),
                            &r.summary,
                            "",
                            &r.definition_sha256,
                        ])?;
                        write_json_row(&mut json_w, &mut first_json, r, &at, &control.id, None)?;
                        rows += 1;
                    }
                    for f in &found {
                        csv.write_record([
                            r.run_id.as_str(),
                            &at,
                            &control.id,
                            r.status.as_str(),
                            &f.check.to_string(),
                            &f.resource,
                            &f.status,
                            &f.message,
                            &f.actual,
                            &r.definition_sha256,
                        ])?;
                        write_json_row(&mut json_w, &mut first_json, r, &at, &control.id, Some(f))?;
                        rows += 1;
                        // Failures and fixes: a resource's status against its previous one.
                        let failing = f.status == "fail";
                        let was_failing = match state.get_mut(&f.resource) {
                            Some(v) => std::mem::replace(v, failing),
                            None => {
                                state.insert(f.resource.clone(), failing);
                                false
                            }
                        };
                        if failing && !was_failing {
                            fig.failures += 1;
                        } else if !failing && was_failing {
                            fig.fixes += 1;
                        }
                    }
                    fig.latest_status = Some(r.status);
                    fig.latest_at = Some(r.evaluated_at);
                    fig.latest_evidence = r.evidence_ids.clone();
                }
                csv.flush()?;
            }
            csv_out.write_all(&buf)?;
        }
        let (_, sha256, size) = csv_out.finish();
        bundle.files.push(FileEntry {
            path: csv_path,
            sha256,
            size,
        });
        json_w.write_all(b"\n]\n")?;
        json_w.flush()?;
        drop(json_w);
        bundle.copy(
            &format!("controls/{}/population.json", control.id),
            json_tmp,
        )?;
        fig.failing_at_end = state.values().filter(|failing| **failing).count();
        summary.results += fig.results;
        summary.population_rows += rows;
        figures.insert(control.id.clone(), fig);
    }

    // Raw evidence, and an OSCAL observation for each (written to a temporary file).
    let mut observations = tempfile::tempfile()?;
    let mut obs_w = std::io::BufWriter::new(&mut observations);
    let mut first_obs = true;
    let ids: Vec<i64> = evidence_ids.into_iter().collect();
    for page in ids.chunks(EVIDENCE_PER_PAGE) {
        for (id, e) in store.evidence_rows(page).await? {
            let bytes = serde_json::to_vec_pretty(&serde_json::json!({
                "id": id,
                "probe": e.probe,
                "params": e.params,
                "collected_at": crate::integrity::time_text(e.collected_at),
                "sha256": e.sha256,
                "error": e.error,
                "content": e.content,
            }))
            .map_err(json_err("evidence"))?;
            let path = evidence_path(id);
            bundle.file(&path, &bytes)?;
            oscal::write_observation(&mut obs_w, &mut first_obs, id, &e, &path)?;
            summary.evidence_files += 1;
        }
    }
    obs_w.flush()?;
    drop(obs_w);

    // OSCAL and the summary, then the manifest that lists every file.
    let oscal_doc = oscal::document(request, &controls, &figures, observations, &runs)?;
    let summary_html = summary_page(request, &controls, &figures, &runs)?;
    let mut listed = bundle.files.clone();
    listed.push(FileEntry {
        path: "oscal/assessment-results.json".into(),
        sha256: oscal_doc.1.clone(),
        size: oscal_doc.2,
    });
    listed.push(FileEntry {
        path: "summary.html".into(),
        sha256: hex::encode(Sha256::digest(summary_html.as_bytes())),
        size: summary_html.len() as u64,
    });
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = BundleManifest {
        format: FORMAT.into(),
        generator: format!("trellis {}", env!("CARGO_PKG_VERSION")),
        period: Period {
            from: request.from,
            to: request.to,
        },
        controls: controls.iter().map(|c| c.id.clone()).collect(),
        framework: request.framework.clone(),
        runs: runs
            .iter()
            .map(|r| RunEntry {
                id: r.run.id.clone(),
                trigger: r.run.trigger.as_str().to_string(),
                started_at: crate::integrity::time_text(r.run.started_at),
                finished_at: r.run.finished_at.map(crate::integrity::time_text),
                state: r.run.state.as_str().to_string(),
                signed_by: r.seal.as_ref().map(|(_, _, k)| k.clone()),
            })
            .collect(),
        key_id: signer.key_id(),
        public_key: signer.public_key().to_text(),
        files: listed,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(json_err("manifest"))?;
    let signature = signer.sign(&manifest_bytes);
    // These two are not listed in the manifest (it cannot list itself); the signature covers it.
    bundle.zip.start_file("manifest.json", bundle.options)?;
    bundle.zip.write_all(&manifest_bytes)?;
    bundle.zip.start_file("manifest.sig", bundle.options)?;
    bundle.zip.write_all(signature.as_bytes())?;
    bundle.copy("oscal/assessment-results.json", oscal_doc.0)?;
    bundle.file("summary.html", summary_html.as_bytes())?;
    summary.files = manifest.files.len() + 2;
    let out = bundle.zip.finish()?;
    Ok((out, summary))
}

/// `evidence/000000000042.json`: zero-padded, so path order is id order.
pub fn evidence_path(id: i64) -> String {
    format!("evidence/{id:012}.json")
}

fn write_json_row(
    w: &mut impl Write,
    first: &mut bool,
    r: &crate::store::ExportResult,
    at: &str,
    control_id: &str,
    f: Option<&crate::store::ExportFinding>,
) -> Result<(), ExportError> {
    #[derive(Serialize)]
    struct Row<'a> {
        run_id: &'a str,
        evaluated_at: &'a str,
        control_id: &'a str,
        result_status: &'a str,
        check: Option<i32>,
        resource: Option<&'a str>,
        status: &'a str,
        message: &'a str,
        /// The stored JSON, embedded as is.
        actual: Option<&'a serde_json::value::RawValue>,
        definition_sha256: &'a str,
    }
    let actual = match f {
        Some(f) => Some(
            serde_json::from_str::<&serde_json::value::RawValue>(&f.actual)
                .map_err(json_err("actual values"))?,
        ),
        None => None,
    };
    let row = Row {
        run_id: &r.run_id,
        evaluated_at: at,
        control_id,
        result_status: r.status.as_str(),
        check: f.map(|f| f.check),
        resource: f.map(|f| f.resource.as_str()),
        status: f.map_or(r.status.as_str(), |f| f.status.as_str()),
        message: f.map_or(r.summary.as_str(), |f| f.message.as_str()),
        actual,
        definition_sha256: &r.definition_sha256,
    };
    w.write_all(if *first { b"\n" } else { b",\n" })?;
    *first = false;
    serde_json::to_writer(w, &row).map_err(json_err("population"))
}

fn summary_page(
    request: &ExportRequest,
    controls: &[&Control],
    figures: &BTreeMap<String, ControlFigures>,
    runs: &[crate::store::SealedRun],
) -> Result<String, ExportError> {
    #[derive(Serialize)]
    struct Row {
        id: String,
        title: String,
        results: usize,
        pass_rate: String,
        latest: String,
        failing_at_end: usize,
        failures: usize,
        fixes: usize,
        exceptions: Vec<String>,
    }
    #[derive(Serialize)]
    struct Page {
        from: String,
        to: String,
        framework: String,
        runs: usize,
        signed_runs: usize,
        controls: usize,
        results: usize,
        overall_pass_rate: String,
        rows: Vec<Row>,
    }
    let rate = |pass: usize, total: usize| {
        if total == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", pass as f64 * 100.0 / total as f64)
        }
    };
    let mut total = 0;
    let mut passed = 0;
    let rows = controls
        .iter()
        .map(|c| {
            let f = figures.get(&c.id).cloned().unwrap_or_default();
            let pass = f.by_status.get("pass").copied().unwrap_or(0);
            total += f.results;
            passed += pass;
            Row {
                id: c.id.clone(),
                title: c.title.clone(),
                results: f.results,
                pass_rate: rate(pass, f.results),
                latest: f
                    .latest_status
                    .map_or("not evaluated".into(), |s| s.as_str().to_string()),
                failing_at_end: f.failing_at_end,
                failures: f.failures,
                fixes: f.fixes,
                exceptions: f
                    .exceptions
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect(),
            }
        })
        .collect();
    let page = Page {
        from: request.from.to_string(),
        to: request.to.to_string(),
        framework: request.framework.clone().unwrap_or_default(),
        runs: runs.len(),
        signed_runs: runs.iter().filter(|r| r.seal.is_some()).count(),
        controls: controls.len(),
        results: total,
        overall_pass_rate: rate(passed, total),
        rows,
    };
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::html_escape);
    hb.render_template(include_str!("../../templates/export_summary.hbs"), &page)
        .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))
}

/// Reads a whole bundle entry (for verification and tests).
pub fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    path: &str,
) -> std::io::Result<Vec<u8>> {
    let mut f = zip.by_name(path).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}
