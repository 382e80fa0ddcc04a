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
//! Streamed: results, findings and evidence are read a page at a time (several pages at once,
//! formatted and compressed on other threads, taken in order: `population.rs`, `evidence.rs`);
//! populations and OSCAL observations go through temporary files, so memory is a few pages
//! plus the list of files (the zip's directory and the manifest), whatever the period.
//! Reproducible: fixed entry order, timestamps and permissions; UUIDs derived from the
//! content; the same data and arguments give the same bytes.

mod attestations;
pub mod coverage;
mod deflate;
mod evidence;
mod oscal;
mod population;
pub mod stream;
mod verify;

pub use verify::{BundleProblem, verify_bundle};

use std::collections::BTreeMap;
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
    /// The freshness of controls without their own (`default_freshness`): OSCAL's
    /// *satisfied* needs every control fresh through the period.
    pub default_freshness: chrono::Duration,
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
    /// Evidence the period's results name that the store no longer holds (listed in the
    /// manifest and the summary, so the gap is visible to the auditor).
    pub missing_evidence: usize,
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
    /// Ids of evidence the period's results read that the store no longer held at export time
    /// (`trellis verify` names how it went missing). Empty in a complete bundle.
    #[serde(default)]
    pub missing_evidence: Vec<i64>,
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

/// Smaller files are stored as they are: setting up deflate for a file (zlib-rs zeroes 256 KiB
/// of tables and window) costs more than compressing a few hundred bytes saves, and a year
/// holds tens of thousands of them (evidence, run signatures).
const STORE_BELOW: usize = 4096;

/// The options for a file of `len` bytes: the bundle's, or stored if it is small.
fn options_for(
    options: zip::write::SimpleFileOptions,
    len: usize,
) -> zip::write::SimpleFileOptions {
    if len < STORE_BELOW {
        options
            .compression_method(zip::CompressionMethod::Stored)
            .compression_level(None)
    } else {
        options
    }
}

/// The zip being written, with the list of its files.
struct Bundle<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    options: zip::write::SimpleFileOptions,
    /// Every entry's modification time.
    time: zip::DateTime,
    files: Vec<FileEntry>,
    /// A streamed bundle's: told which entries the zip writer patches (`stream.rs`).
    hold: Option<stream::Hold>,
}

impl<W: Write + Seek> Bundle<W> {
    fn new(out: W, stamp: NaiveDate, hold: Option<stream::Hold>) -> Result<Self, ExportError> {
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
                .compression_level(Some(i64::from(deflate::LEVEL)))
                .last_modified_time(time)
                .unix_permissions(0o644)
                .large_file(false),
            time,
            files: Vec::new(),
            hold,
        })
    }

    /// Starts an entry the zip writer compresses, and patches (its header's CRC-32 and
    /// sizes) once it is finished: a streamed bundle holds its bytes until then.
    fn start_patched(
        &mut self,
        path: &str,
        options: zip::write::SimpleFileOptions,
    ) -> Result<(), ExportError> {
        if let Some(h) = &self.hold {
            h.set(true);
        }
        self.zip.start_file(path, options)?;
        Ok(())
    }

    /// The zip, to copy finished entries into (`raw_copy_file`, `merge_archive`): their
    /// headers are complete as written, so a streamed bundle sends them as they come.
    fn raw(&mut self) -> &mut zip::ZipWriter<W> {
        if let Some(h) = &self.hold {
            h.set(false);
        }
        &mut self.zip
    }

    /// Writes a whole file.
    fn file(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.start_patched(path, self.options)?;
        self.zip.write_all(bytes)?;
        self.files.push(FileEntry {
            path: path.to_string(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        });
        Ok(())
    }

    /// Writes a file compressed piece by piece (`deflate.rs`) from its spool.
    fn deflated(
        &mut self,
        path: &str,
        spool: &mut deflate::Spool,
        done: &deflate::Done,
    ) -> Result<(), ExportError> {
        let time = self.time;
        spool.write_entry(self.raw(), path, time, done)?;
        self.files.push(FileEntry {
            path: path.to_string(),
            sha256: done.sha256.clone(),
            size: done.size,
        });
        Ok(())
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
    /// Whether the control was freshly evaluated and passing through the period, and its
    /// freshness.
    pub coverage: Option<coverage::Verdict>,
    pub freshness: chrono::Duration,
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

/// Whether `request` can be exported (a period, controls that exist): what an export
/// refuses before it writes anything.
pub fn check(catalog: &Catalog, request: &ExportRequest) -> Result<(), ExportError> {
    checked(catalog, request).map(|_| ())
}

/// The controls of a request that can be exported.
fn checked<'a>(
    catalog: &'a Catalog,
    request: &ExportRequest,
) -> Result<Vec<&'a Control>, ExportError> {
    if request.from > request.to {
        return Err(ExportError::Period {
            from: request.from,
            to: request.to,
        });
    }
    select(catalog, request)
}

/// Writes the bundle of `request` to `out`.
pub async fn export<W: Write + Seek>(
    store: &Store,
    catalog: &Catalog,
    signer: &Signer,
    request: &ExportRequest,
    out: W,
) -> Result<(W, ExportSummary), ExportError> {
    export_to(store, catalog, signer, request, out, None).await
}

/// [`export`], told which entries the zip writer patches when `out` is a stream.
async fn export_to<W: Write + Seek>(
    store: &Store,
    catalog: &Catalog,
    signer: &Signer,
    request: &ExportRequest,
    out: W,
    hold: Option<stream::Hold>,
) -> Result<(W, ExportSummary), ExportError> {
    let controls = checked(catalog, request)?;
    let (start, end) = (request.start(), request.end());
    let mut bundle = Bundle::new(out, request.to + chrono::Duration::days(1), hold)?;
    let abort_unless_done = stream::AbortUnlessDone::new(bundle.hold.as_ref());
    let mut summary = ExportSummary {
        controls: controls.len(),
        key_id: signer.key_id(),
        ..ExportSummary::default()
    };

    // Runs of the period. Their signed manifests are compressed while the populations are
    // read, and go first into the bundle.
    let runs = store.runs_between(start, end).await?;
    summary.runs = runs.len();
    let signed: Vec<String> = runs
        .iter()
        .filter(|r| r.signed_by.is_some())
        .map(|r| r.run.id.clone())
        .collect();
    // What was known at the period's start, for each control's coverage of the period.
    let ids: Vec<String> = controls.iter().map(|c| c.id.clone()).collect();
    let before = store.evaluations_before(&ids, start).await?;
    let freshness: Vec<chrono::Duration> = controls
        .iter()
        .map(|c| c.freshness.unwrap_or(request.default_freshness))
        .collect();
    let coverage = controls
        .iter()
        .zip(&freshness)
        .map(|(c, f)| {
            let known = before.get(&c.id).map(|&(t, _, s)| (t, s));
            coverage::Coverage::new(start, end, *f, known)
        })
        .collect();
    let timer = std::time::Instant::now();
    let (pass, attested) = tokio::join!(
        population::read(store, &controls, start, end, coverage),
        attestations::write(&mut bundle, store, &signed),
    );
    let mut pass = pass?;
    attested?;
    // Results stored out of time order (a run `--as-of` an earlier time) are read again for
    // their control, in time order.
    for (i, control) in controls.iter().enumerate() {
        let mut c = pass.coverage[i].clone();
        if c.unordered() {
            c = c.restart(before.get(&control.id).map(|&(t, _, s)| (t, s)));
            let mut after = None;
            loop {
                let page = store
                    .control_evaluations(&control.id, start, end, after, 5000)
                    .await?;
                let Some(&(t, id, _)) = page.last() else {
                    break;
                };
                after = Some((t, id));
                for (t, _, s) in page {
                    c.see(t, s);
                }
            }
        }
        pass.figures[i].coverage = Some(c.finish());
        pass.figures[i].freshness = freshness[i];
    }
    tracing::debug!(
        seconds = timer.elapsed().as_secs_f64(),
        rows = pass.rows,
        attestations = signed.len(),
        "export: populations read, attestations written"
    );

    // Controls: definitions as evaluated, then the population.
    let mut definitions = Vec::with_capacity(controls.len());
    for (control, shas) in controls.iter().zip(&pass.definitions) {
        let mut texts = Vec::with_capacity(shas.len());
        for sha in shas {
            // The text as evaluated; the current file when it matches (older stores).
            let text = match store.definition(sha).await? {
                Some(t) => t,
                None if *sha == control.sha256 => control.source.to_string(),
                None => format!("# the definition with SHA-256 {sha} was not kept\n"),
            };
            texts.push((sha.clone(), text));
        }
        definitions.push(texts);
    }
    let timer = std::time::Instant::now();
    population::write(&mut bundle, &controls, &mut pass, &definitions)?;
    tracing::debug!(
        seconds = timer.elapsed().as_secs_f64(),
        "export: populations written"
    );
    summary.results = pass.results;
    summary.population_rows = pass.rows;
    let figures: BTreeMap<String, ControlFigures> = controls
        .iter()
        .zip(pass.figures.iter().cloned())
        .map(|(c, f)| (c.id.clone(), f))
        .collect();
    let evidence_ids = std::mem::take(&mut pass.evidence_ids);
    drop(pass);

    // Raw evidence, and an OSCAL observation for each (compressed as they are made).
    let timer = std::time::Instant::now();
    let ids: Vec<i64> = evidence_ids.into_iter().collect();
    let mut spool = deflate::Spool::new()?;
    let mut oscal_doc = oscal::document(request, &controls, &figures, &runs)?;
    let evidence::Written { files, missing } =
        evidence::write(&mut bundle, store, &ids, &mut oscal_doc, &mut spool).await?;
    summary.evidence_files = files;
    summary.missing_evidence = missing.len();
    if !missing.is_empty() {
        tracing::warn!(
            missing = missing.len(),
            first = missing[0],
            "export: evidence named by results is no longer stored; the bundle lists it as missing"
        );
    }
    tracing::debug!(
        seconds = timer.elapsed().as_secs_f64(),
        files,
        "export: evidence written"
    );

    // OSCAL and the summary, then the manifest that lists every file.
    let timer = std::time::Instant::now();
    let oscal_doc = oscal_doc.finish(&mut spool)?;
    let summary_html = summary_page(request, &controls, &figures, &runs, &missing)?;
    let mut listed = bundle.files.clone();
    listed.push(FileEntry {
        path: "oscal/assessment-results.json".into(),
        sha256: oscal_doc.sha256.clone(),
        size: oscal_doc.size,
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
                signed_by: r.signed_by.clone(),
            })
            .collect(),
        key_id: signer.key_id(),
        public_key: signer.public_key().to_text(),
        files: listed,
        missing_evidence: missing,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(json_err("manifest"))?;
    let signature = signer.sign(&manifest_bytes);
    // These two are not listed in the manifest (it cannot list itself); the signature covers it.
    bundle.start_patched("manifest.json", bundle.options)?;
    bundle.zip.write_all(&manifest_bytes)?;
    bundle.start_patched("manifest.sig", bundle.options)?;
    bundle.zip.write_all(signature.as_bytes())?;
    bundle.deflated("oscal/assessment-results.json", &mut spool, &oscal_doc)?;
    bundle.file("summary.html", summary_html.as_bytes())?;
    summary.files = manifest.files.len() + 2;
    abort_unless_done.done();
    let out = bundle.zip.finish()?;
    tracing::debug!(
        seconds = timer.elapsed().as_secs_f64(),
        "export: oscal, summary and manifest written"
    );
    Ok((out, summary))
}

/// `evidence/000000000042.json`: zero-padded, so path order is id order.
pub fn evidence_path(id: i64) -> String {
    format!("evidence/{id:012}.json")
}

fn summary_page(
    request: &ExportRequest,
    controls: &[&Control],
    figures: &BTreeMap<String, ControlFigures>,
    runs: &[crate::store::SealedRun],
    missing_evidence: &[i64],
) -> Result<String, ExportError> {
    #[derive(Serialize)]
    struct Row {
        id: String,
        title: String,
        /// `system claim; evidence: system, document`: what the control claims and the
        /// evidence kinds of its checks.
        basis: String,
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
        missing_evidence: usize,
        /// The first few missing ids (all are in the manifest).
        missing_ids: String,
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
            let mut kinds: Vec<&str> = c.evidence_kinds().map(|k| k.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            Row {
                id: c.id.clone(),
                title: c.title.clone(),
                basis: format!("{} claim; evidence: {}", c.claim.as_str(), kinds.join(", ")),
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
        signed_runs: runs.iter().filter(|r| r.signed_by.is_some()).count(),
        controls: controls.len(),
        results: total,
        overall_pass_rate: rate(passed, total),
        rows,
        missing_evidence: missing_evidence.len(),
        missing_ids: {
            let shown = missing_evidence.iter().take(20).map(i64::to_string);
            let mut text = shown.collect::<Vec<_>>().join(", ");
            if missing_evidence.len() > 20 {
                text.push_str(", …");
            }
            text
        },
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
