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

struct Size {
    days: u32,
    controls: usize,
    findings: usize,
    evidence_per_run: usize,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `RssAnon` and `RssFile` now (MiB): heap vs. mapped database pages.
fn rss_parts() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (get("RssAnon:"), get("RssFile:"))
}

fn write_controls(dir: &std::path::Path, n: usize) -> trellis::catalog::Catalog {
    let folder = dir.join("controls/bench");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..n {
        let id = format!("bench-control-{i:03}");
        let yaml = format!(
            "id: {id}\ntitle: Bench Control {i:03}\ncategory: Bench\ndescription: Generated.\n\
             public: true\nowner: bench\nseverity: medium\n\
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

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let size = if bench {
        Size {
            days: 365,
            controls: 100,
            findings: 5,
            evidence_per_run: 10,
        }
    } else {
        Size {
            days: 1,
            controls: 3,
            findings: 2,
            evidence_per_run: 2,
        }
    };
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
        let rss_before = peak_rss_mib();
        let signer = trellis::integrity::Signer::from_seed([7; 32]);
        let request = ExportRequest {
            from: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            to: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
                + chrono::Duration::days(i64::from(size.days) - 1),
            controls: Vec::new(),
            framework: None,
        };
        let path = dir.path().join("bundle.zip");
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let t = Instant::now();
        let (mut w, summary) = export(&store, &catalog, &signer, &request, file)
            .await
            .unwrap();
        std::io::Write::flush(&mut w).unwrap();
        let took = t.elapsed().as_secs_f64();
        let rss_after = peak_rss_mib();
        let (anon, file) = rss_parts();
        println!(
            "after export: heap (RssAnon) {anon:.0} MiB, mapped files (RssFile) {file:.0} MiB"
        );
        let bytes = std::fs::metadata(&path).unwrap().len();
        println!(
            "export: {} controls, {} runs, {} results, {} population rows, {} evidence files, \
             {} files, {:.1} MiB zip in {took:.2} s; peak RSS {rss_before:.0} MiB before, \
             {rss_after:.0} MiB after",
            summary.controls,
            summary.runs,
            summary.results,
            summary.population_rows,
            summary.evidence_files,
            summary.files,
            bytes as f64 / 1048576.0
        );
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
        assert_eq!(summary.results, size.days as usize * 24 * size.controls);
        // Where the time goes: reading alone (the same queries, nothing written).
        let t = Instant::now();
        let (start, end) = (
            request.from.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            (request.to + chrono::Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
        );
        let mut n = 0usize;
        for c in catalog.controls() {
            let results = store.export_results(&c.id, start, end).await.unwrap();
            for page in results.chunks(200) {
                let ids: Vec<i64> = page.iter().map(|r| r.id).collect();
                n += store
                    .export_findings(&ids)
                    .await
                    .unwrap()
                    .values()
                    .map(Vec::len)
                    .sum::<usize>();
            }
        }
        println!(
            "reading results and findings alone: {n} findings in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    });
}
