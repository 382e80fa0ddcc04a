//! Export benchmark: one year of hourly runs of 100 controls (generated), exported as an
//! evidence bundle. Measures the wall time of `trellis::export::export` and the process's
//! peak memory, and checks the bundle verifies.
//!
//! `cargo bench --bench export` (release). Under `cargo test` it runs a tiny data set, so the
//! benchmark code is exercised by the test suite without timing anything.
//!
//! Data: 8,760 runs × 100 controls = 876,000 results, each with 5 findings (4.38 M population
//! rows); 10 pieces of evidence per run (87,600), each read by 10 controls. Generated with SQL
//! straight into SQLite (the store's API would take hours for a year), then exported by the
//! same code as `trellis export`.

use std::time::Instant;

use trellis::export::{ExportRequest, export, verify_bundle};
use trellis::store::{Store, testing};

/// The binary's allocator (src/main.rs), counting what is allocated: the export's heap
/// high-water mark, what "memory bounded" is about.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Counting;

/// Counting is on for the memory runs only: its shared counters cost the timed run.
static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);
static PEAK: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        // SAFETY: forwarded as is.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            let size = layout.size() as isize;
            let live = LIVE.fetch_add(size, Relaxed) + size;
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        use std::sync::atomic::Ordering::Relaxed;
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: forwarded as is.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        // SAFETY: forwarded as is.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            let grown = new as isize - layout.size() as isize;
            let live = LIVE.fetch_add(grown, Relaxed) + grown;
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
}

/// Starts counting from zero (what was allocated before is not counted, and its release
/// is: the high-water mark is a bound on what the export itself holds).
fn start_counting() {
    use std::sync::atomic::Ordering::Relaxed;
    LIVE.store(0, Relaxed);
    PEAK.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
}

fn stop_counting() -> f64 {
    COUNTING.store(false, std::sync::atomic::Ordering::Relaxed);
    peak_mib()
}

fn peak_mib() -> f64 {
    PEAK.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1048576.0
}

struct Size {
    days: u32,
    controls: usize,
    findings: usize,
    evidence_per_run: usize,
}

/// CPU time the process has used in user and system mode (seconds), and its page faults.
fn cpu_split() -> (f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the command: minflt is field 10, utime 14 and stime 15 (clock ticks).
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(14) / 100.0, field(15) / 100.0, field(10))
}

/// The process's peak resident set since the last [`reset_peak_rss`], in MiB (`VmHWM`): the
/// heap, what the allocator kept, and the SQLite pages and files mapped in.
fn peak_rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The resident set now, in MiB: anonymous (heap, and what the allocator kept) and file-backed
/// (SQLite's mapped database pages, binaries).
fn rss_now() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("RssAnon:"), field("RssFile:"))
}

fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time the process has used (user + system, seconds).
fn cpu_seconds() -> f64 {
    let (user, system, _) = cpu_split();
    user + system
}

/// Stamps the export's phase events with the process's CPU time, so that a phase's CPU
/// seconds over its wall seconds shows how many cores it kept busy.
struct CpuTime;

impl tracing_subscriber::fmt::time::FormatTime for CpuTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "cpu {:.2} s", cpu_seconds())
    }
}

fn write_controls(dir: &std::path::Path, n: usize) -> trellis::catalog::Catalog {
    let folder = dir.join("controls/bench");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..n {
        let id = format!("bench-control-{i:03}");
        let yaml = format!(
            "id: {id}\ntitle: Bench Control {i:03}\ncategory: Bench\ndescription: Generated.\n\
             claim: procedure\npublic: true\nowner: bench\nseverity: medium\n\
             frameworks:\n  - {{framework: soc2, version: \"2017\", id: \"CC{}.{}\"}}\n\
             checks:\n  - probe: hr.people\n    assert: background_check_date != null\n",
            1 + i % 9,
            1 + i % 7
        );
        std::fs::write(folder.join(format!("{id}.yaml")), yaml).unwrap();
    }
    trellis::catalog::load(&dir.join("controls")).unwrap_or_else(|d| panic!("{d}"))
}

/// Generates the data with set-based SQL (recursive CTEs), in a few statements.
async fn generate(store: &Store, size: &Size) {
    let runs = size.days * 24;
    let sql = |s: String| async move {
        testing::execute_sql(store, &s)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{s}"));
    };
    // Runs: one an hour from 2025-01-01.
    sql(format!(
        "WITH RECURSIVE h(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n + 1 < {runs}) \
         INSERT INTO runs (id, trigger, state, started_at, finished_at, controls_total, controls_done) \
         SELECT printf('run-%06d', n), 'schedule', 'completed', \
                strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2025-01-01', printf('+%d hours', n)), \
                strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2025-01-01', printf('+%d hours', n), '+30 seconds'), \
                {c}, {c} FROM h",
        c = size.controls
    ))
    .await;
    // Evidence: `evidence_per_run` probes per run, ~500 bytes each.
    sql(format!(
        "WITH RECURSIVE h(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n + 1 < {runs}), \
         p(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM p WHERE k + 1 < {e}) \
         INSERT INTO evidence (id, run_id, probe, params, collected_at, sha256, content, error, row_hash, chain_hash) \
         SELECT 1 + n * {e} + k, printf('run-%06d', n), printf('probe.%d', k), '{{}}', \
                strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2025-01-01', printf('+%d hours', n)), \
                printf('%064d', n * {e} + k), \
                printf('[{{\"id\":\"r%d\",\"owner\":\"team-%d\",\"tags\":[\"a\",\"b\",\"c\"],\"note\":\"%s\"}}]', k, n % 7, hex(randomblob(180))), \
                NULL, '', '' FROM h, p",
        e = size.evidence_per_run
    ))
    .await;
    // Results: every control at every run; a failure every 50th evaluation.
    sql(format!(
        "WITH RECURSIVE h(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n + 1 < {runs}), \
         c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < {controls}) \
         INSERT INTO control_results (id, run_id, control_id, status, summary, evaluated_at, definition_sha256, checks, evidence_ids, finding_counts, exceptions, row_hash, chain_hash) \
         SELECT 1 + n * {controls} + i, printf('run-%06d', n), printf('bench-control-%03d', i), \
                CASE WHEN (n + i) % 50 = 0 THEN 'fail' ELSE 'pass' END, '5 resources', \
                strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2025-01-01', printf('+%d hours', n), '+10 seconds'), \
                'def', '[{{\"probe\":\"hr.people\",\"status\":\"pass\",\"summary\":\"5\",\"error\":null,\"evidence\":0}}]', \
                printf('[%d]', 1 + n * {e} + i % {e}), '{{\"pass\":5}}', '[]', '', '' FROM h, c",
        controls = size.controls,
        e = size.evidence_per_run
    ))
    .await;
    // Findings: `findings` resources per result.
    sql(format!(
        "WITH RECURSIVE f(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM f WHERE k + 1 < {}) \
         INSERT INTO findings (control_result_id, run_id, control_id, check_index, resource, status, message, actual) \
         SELECT cr.id, cr.run_id, cr.control_id, 0, printf('hr:E%04d', k), \
                CASE WHEN cr.status = 'fail' AND k = 0 THEN 'fail' ELSE 'pass' END, \
                printf('person E%04d: background check on file', k), '{{\"background_check_date\":\"2024-01-01\"}}' \
         FROM control_results cr, f",
        size.findings
    ))
    .await;
}

/// Signs every run's manifest, as the runner does when a run finishes: each lists its 100
/// results and 10 pieces of evidence with their hashes (~25 KiB), so a year's bundle carries
/// 8,760 of them and their signatures.
async fn seal(store: &Store, signer: &trellis::integrity::Signer, size: &Size) {
    use sha2::Digest as _;
    use trellis::integrity::{ChainHead, ManifestEvidence, ManifestResult, RunManifest};
    let hash = |what: String| hex::encode(sha2::Sha256::digest(what.as_bytes()));
    let (controls, e) = (size.controls as i64, size.evidence_per_run as i64);
    for n in 0..i64::from(size.days) * 24 {
        let at = chrono::DateTime::from_timestamp(1_735_689_600 + n * 3600, 0).unwrap();
        let manifest = RunManifest {
            version: 1,
            run_id: format!("run-{n:06}"),
            trigger: "schedule".into(),
            started_at: trellis::integrity::time_text(at),
            finished_at: trellis::integrity::time_text(at + chrono::Duration::seconds(30)),
            controls: (0..controls)
                .map(|i| ManifestResult {
                    result_id: 1 + n * controls + i,
                    control_id: format!("bench-control-{i:03}"),
                    definition_sha256: hash(format!("definition {i}")),
                    status: if (n + i) % 50 == 0 { "fail" } else { "pass" }.into(),
                    row_hash: hash(format!("result {n} {i}")),
                })
                .collect(),
            evidence: (0..e)
                .map(|k| ManifestEvidence {
                    evidence_id: 1 + n * e + k,
                    probe: format!("probe.{k}"),
                    sha256: hash(format!("content {n} {k}")),
                    row_hash: hash(format!("evidence {n} {k}")),
                })
                .collect(),
            evidence_chain: ChainHead {
                last_id: (n + 1) * e,
                chain_hash: hash(format!("evidence chain {n}")),
            },
            results_chain: ChainHead {
                last_id: (n + 1) * controls,
                chain_hash: hash(format!("results chain {n}")),
            },
            closed: None,
        };
        let signature = signer.sign(&manifest.to_bytes());
        testing::seal_run(store, &manifest, &signature, &signer.key_id())
            .await
            .unwrap();
    }
}

/// Everything of `days` from 2025-01-01.
fn request(days: u32) -> ExportRequest {
    ExportRequest {
        from: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        to: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
            + chrono::Duration::days(i64::from(days) - 1),
        controls: Vec::new(),
        framework: None,
        // Runs are hourly.
        default_freshness: chrono::Duration::hours(2),
    }
}

/// Exports `days` from 2025-01-01; prints and returns (seconds, bundle path).
async fn run_export(
    store: &Store,
    catalog: &trellis::catalog::Catalog,
    signer: &trellis::integrity::Signer,
    dir: &std::path::Path,
    days: u32,
    count: bool,
) -> (ExportRequest, std::path::PathBuf) {
    let request = request(days);
    let path = dir.join(format!("bundle-{days}.zip"));
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    if count {
        start_counting();
    }
    reset_peak_rss();
    let cpu = cpu_seconds();
    let split = cpu_split();
    let t = Instant::now();
    let (mut w, summary) = export(store, catalog, signer, &request, file)
        .await
        .unwrap();
    std::io::Write::flush(&mut w).unwrap();
    let took = t.elapsed().as_secs_f64();
    let rss = peak_rss();
    let (anon, file) = rss_now();
    let cpu = cpu_seconds() - cpu;
    let after = cpu_split();
    let (user, system, faults) = (after.0 - split.0, after.1 - split.1, after.2 - split.2);
    let heap = if count {
        format!("; heap high-water {:.0} MiB", stop_counting())
    } else {
        String::new()
    };
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "export of {days} days: {} controls, {} runs, {} results, {} population rows, \
         {} evidence files, {} files, {:.1} MiB zip in {took:.2} s ({cpu:.1} s of CPU: {user:.1} user, {system:.1} system; \
         {faults:.0} page faults); peak RSS {rss:.0} MiB, at the end {anon:.0} MiB anonymous + {file:.0} MiB mapped files{heap}",
        summary.controls,
        summary.runs,
        summary.results,
        summary.population_rows,
        summary.evidence_files,
        summary.files,
        bytes as f64 / 1048576.0,
    );
    (request, path)
}

/// The download of `days` from 2025-01-01 two ways: streamed as the dashboard and the API
/// make it now (`export::stream`, read as a client would, chunk by chunk), and as the
/// dashboard made it before issue 17 (the bundle written to a temporary file, read back
/// whole, then sent: its first byte goes out once all of it is in memory). Prints when the
/// first byte is ready, the total time, the peak resident set and the heap high-water mark of
/// each, and checks both are the bytes `trellis export` writes. `TRELLIS_BENCH_DOWNLOAD=
/// streamed` or `before` measures only that one, so each can have a process (and a resident
/// set) of its own.
async fn downloads(
    store: &Store,
    catalog: &trellis::catalog::Catalog,
    signer: &trellis::integrity::Signer,
    dir: &std::path::Path,
    days: u32,
) {
    use sha2::Digest as _;
    use std::io::{Read as _, Seek as _};
    let only = std::env::var("TRELLIS_BENCH_DOWNLOAD").unwrap_or_default();
    let mut streamed = None;
    if only != "before" {
        let (base, _) = rss_now();
        start_counting();
        reset_peak_rss();
        let t = Instant::now();
        let mut streaming = trellis::export::stream::start(
            store.clone(),
            std::sync::Arc::new(catalog.clone()),
            signer.clone(),
            request(days),
        );
        let mut first = None;
        let mut sha = sha2::Sha256::new();
        let (mut sent, mut chunks) = (0usize, 0usize);
        while let Some(chunk) = streaming.next().await {
            let chunk = chunk.unwrap();
            first.get_or_insert_with(|| t.elapsed().as_secs_f64());
            sha.update(&chunk);
            sent += chunk.len();
            chunks += 1;
        }
        let total = t.elapsed().as_secs_f64();
        println!(
            "download of {days} days, streamed: first byte after {:.3} s, {:.1} MiB in \
             {chunks} chunks in {total:.2} s; peak RSS {:.0} MiB ({base:.0} MiB anonymous \
             before); heap high-water {:.0} MiB",
            first.unwrap_or(total),
            sent as f64 / 1048576.0,
            peak_rss(),
            stop_counting()
        );
        streamed = Some((sent, sha.finalize()));
    }

    let (base, _) = rss_now();
    start_counting();
    reset_peak_rss();
    let t = Instant::now();
    let file = tempfile::tempfile_in(dir).unwrap();
    let (w, _) = export(
        store,
        catalog,
        signer,
        &request(days),
        std::io::BufWriter::new(file),
    )
    .await
    .unwrap();
    let mut file = w.into_inner().unwrap();
    let mut bytes = Vec::new();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.read_to_end(&mut bytes).unwrap();
    let first = t.elapsed().as_secs_f64();
    let rss = peak_rss();
    let heap = stop_counting();
    if only != "streamed" {
        println!(
            "download of {days} days, before (temporary file, read whole, then sent): first \
             byte after {first:.2} s, all {:.1} MiB held in memory at once; peak RSS {rss:.0} \
             MiB ({base:.0} MiB anonymous before); heap high-water {heap:.0} MiB",
            bytes.len() as f64 / 1048576.0,
        );
    }
    if let Some((sent, sha)) = streamed {
        assert_eq!(sent, bytes.len());
        assert!(
            sha == sha2::Sha256::digest(&bytes),
            "the streamed bundle is the written one"
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    // As `trellis export` does (`TRELLIS_BENCH_PURGE=1`: without, to compare).
    if std::env::var_os("TRELLIS_BENCH_PURGE").is_none() {
        trellis::allocator::keep_freed_memory();
    }
    let size = if bench {
        Size {
            days: 365,
            controls: 100,
            findings: 5,
            evidence_per_run: 10,
        }
    } else {
        Size {
            days: 2,
            controls: 3,
            findings: 2,
            evidence_per_run: 2,
        }
    };
    // The export's phases and their times (`debug` events of `trellis::export`).
    tracing_subscriber::fmt()
        .with_env_filter("trellis::export=debug")
        .with_timer(CpuTime)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        let store = Store::connect(&url).await.unwrap();
        let catalog = write_controls(dir.path(), size.controls);
        let t = Instant::now();
        generate(&store, &size).await;
        eprintln!(
            "generated {} runs × {} controls ({} findings each) in {:.1} s",
            size.days * 24,
            size.controls,
            size.findings,
            t.elapsed().as_secs_f64()
        );
        // As a long-running database would be: the write-ahead log checkpointed.
        testing::execute_sql(&store, "PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .ok();
        let signer = trellis::integrity::Signer::from_seed([7; 32]);
        let t = Instant::now();
        seal(&store, &signer, &size).await;
        eprintln!(
            "signed {} run manifests in {:.1} s",
            size.days * 24,
            t.elapsed().as_secs_f64()
        );
        testing::execute_sql(&store, "PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .ok();

        // The dashboard's and the API's download, as it was and as it is (issue 17).
        downloads(&store, &catalog, &signer, dir.path(), size.days).await;
        if std::env::var_os("TRELLIS_BENCH_DOWNLOADS_ONLY").is_some() {
            return;
        }

        // Memory: a twelfth of the period, then all of it, counting the heap (the year's
        // high-water mark grows with its files' list, not with its rows).
        let d = dir.path();
        run_export(&store, &catalog, &signer, d, size.days.div_ceil(12), true).await;
        run_export(&store, &catalog, &signer, d, size.days, true).await;
        // Time: the whole period again, not counting.
        let (request, path) = run_export(&store, &catalog, &signer, d, size.days, false).await;

        let t = Instant::now();
        let verified = verify_bundle(
            std::io::BufReader::new(std::fs::File::open(&path).unwrap()),
            Some(&signer.public_key()),
            &[],
        )
        .unwrap();
        println!(
            "verify-bundle: {} files in {:.2} s",
            verified.files,
            t.elapsed().as_secs_f64()
        );

        // Where the time goes: the same queries, nothing written.
        let (start, end) = (
            request.from.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            (request.to + chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
        );
        let (lo, hi) = store.period_result_ids(start, end).await.unwrap().unwrap();
        assert_eq!(
            hi - lo + 1,
            i64::from(size.days) * 24 * size.controls as i64
        );
        let t = Instant::now();
        let mut after = lo - 1;
        while after < hi {
            let last = (after + 2000).min(hi);
            store.period_results_page(after, last, 2000).await.unwrap();
            after = last;
        }
        let results = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut after = lo - 1;
        let mut n = 0;
        while after < hi {
            let last = (after + 2000).min(hi);
            n += store
                .findings_of_result_range(after + 1, last)
                .await
                .unwrap()
                .rows()
                .unwrap()
                .len();
            after = last;
        }
        let findings = t.elapsed().as_secs_f64();
        // Evidence: every piece of the period, 500 a page (as the export reads it).
        let ids: Vec<i64> =
            (1..=i64::from(size.days) * 24 * size.evidence_per_run as i64).collect();
        let t = Instant::now();
        let mut evidence = 0;
        for page in ids.chunks(500) {
            evidence += store.evidence_rows(page).await.unwrap().len();
        }
        println!(
            "reading alone, one page at a time: results {results:.2} s, {n} findings \
             {findings:.2} s, {evidence} evidence {:.2} s",
            t.elapsed().as_secs_f64()
        );
    });
}
