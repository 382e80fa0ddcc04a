//! The `trellis` command line.

mod check;
mod notify;
mod runs;
mod site;
mod subscribers;
mod users;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::catalog::{self, Catalog};
use crate::config::{self, Loaded};
use crate::probes;
use crate::store::Store;

/// Exit code: nothing failed or errored.
pub const EXIT_OK: u8 = 0;
/// Exit code: some control failed or errored.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage, configuration or catalog error.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = "Continuous compliance monitoring: controls as code, honest verdicts, a live trust page."
)]
pub struct Cli {
    /// Configuration file (default: ./trellis.yaml, else ./config.example.yaml).
    #[arg(long, global = true, env = "TRELLIS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler and serve the trust page.
    Serve,
    /// Run controls now and print their verdicts.
    Check {
        /// Only this control (repeatable).
        #[arg(long = "control", value_name = "ID")]
        controls: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Don't write results to the database.
        #[arg(long)]
        no_store: bool,
        /// Evaluate as if the time were TIME (RFC 3339, or a date meaning its midnight UTC),
        /// e.g. to reproduce a report against fixed example data. Needs --no-store: results
        /// evaluated at another time are never stored as current.
        #[arg(long, value_name = "TIME", requires = "no_store", value_parser = parse_as_of)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        /// Show a progress bar on standard error (sources collected, then controls
        /// evaluated): `auto` when standard error is a terminal.
        #[arg(long, value_enum, default_value_t = check::Progress::Auto)]
        progress: check::Progress,
        /// A previous `check --format json` output: exit 1 only for failures it does not have
        /// (by fingerprint: control, check and resource), for pipelines that must not break on
        /// known issues.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
    },
    /// Check every control file and report every problem as path:line:col: message.
    Validate,
    /// Print the JSON Schema of control files.
    Schema {
        /// Which file format: `control` (default), `exceptions`, or a register
        /// (`vendors`, `risks`, `incidents`, `exercises`, `meetings`, `insurance`,
        /// `access_reviews`, `devices`, `service_accounts`).
        #[arg(long = "of", value_name = "FORMAT", default_value = "control")]
        of: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List the probes, their parameters and attributes.
    Probes,
    /// Write the public trust page as a static site (HTML, CSS, JSON, Atom feed,
    /// security.txt), the same bytes the live server serves.
    Render {
        /// Folder to write into (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Render as of TIME (RFC 3339, or a date meaning its midnight UTC) instead of now.
        #[arg(long, value_name = "TIME", value_parser = parse_as_of)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Review requests for the trust page's gated documents.
    #[command(subcommand)]
    Access(site::AccessCommand),
    /// Manage the staff who sign in to the dashboards and the API.
    #[command(subcommand)]
    User(users::UserCommand),
    /// List runs, or cancel a running one (whichever instance works on it).
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Notifications: send a test message to a channel, show the outbox's state.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// The trust page's email subscribers (personal data): export or delete one; audited.
    #[command(subcommand)]
    Subscribers(subscribers::SubscribersCommand),
    /// Export a period's evidence for auditors: a signed, reproducible zip (populations as CSV
    /// and JSON, control definitions, raw evidence, run attestations, OSCAL, a summary).
    Export {
        /// First day, included (YYYY-MM-DD, UTC).
        #[arg(long, value_name = "DATE")]
        from: chrono::NaiveDate,
        /// Last day, included.
        #[arg(long, value_name = "DATE")]
        to: chrono::NaiveDate,
        /// Only this control (repeatable).
        #[arg(long = "control", value_name = "ID")]
        controls: Vec<String>,
        /// Only controls mapped to this framework (`soc2`, `cis-aws`, `cis`).
        #[arg(long)]
        framework: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check an export bundle offline: its signature, every file's hash, nothing missing or
    /// added. Exit 1 naming the first problem.
    VerifyBundle {
        bundle: PathBuf,
        /// The public key it must be signed with (`ed25519:…`, as on the trust page), or a
        /// file holding it. Without, the bundle's own key is used and its id printed.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Check that no stored evidence or result was edited, deleted or reordered: walk the hash
    /// chains and every run's signed manifest. Exit 1 naming the first broken row.
    Verify {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_tracing(
        matches!(cli.command, Command::Serve),
        log_format(cli.config.as_deref()),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = runtime.block_on(run(cli));
    // A probe stuck in a blocking read (a hung network file system, a pipe nobody writes)
    // must not keep the process from exiting once its work is given up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    ExitCode::from(code)
}

/// `log.format` of the configuration, read before logging starts (so that every line has the
/// format); `text` when the configuration cannot be loaded (the command then reports why).
fn log_format(path: Option<&std::path::Path>) -> config::LogFormat {
    config::load(path)
        .map(|l| l.config.log.format)
        .unwrap_or_default()
}

/// Logs to standard error, as text or JSON lines, filtered by `TRELLIS_LOG` (default `info`
/// when serving, else `warn`). Installed once, first thing: a second subscriber is refused.
fn init_tracing(serving: bool, format: config::LogFormat) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        config::LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    if let Err(e) = installed {
        eprintln!("warning: cannot set up logging: {e}");
    }
}

async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Schema { of, out } => schema(&of, out),
        Command::Probes => {
            print_probes();
            EXIT_OK
        }
        Command::Validate => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            validate(&loaded)
        }
        Command::Check {
            controls,
            format,
            no_store,
            as_of,
            progress,
            baseline,
        } => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            check::check(
                &loaded,
                &controls,
                format,
                no_store,
                as_of,
                progress,
                baseline.as_deref(),
            )
            .await
        }
        Command::Render { out, as_of } => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            site::render(&loaded, &out, as_of).await
        }
        Command::Access(command) => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            site::access(&loaded, command).await
        }
        Command::Export {
            from,
            to,
            controls,
            framework,
            out,
        } => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            crate::allocator::keep_freed_memory();
            let request = crate::export::ExportRequest {
                from,
                to,
                controls,
                framework,
                default_freshness: loaded.config.default_freshness.get(),
            };
            export(&loaded, &request, &out).await
        }
        Command::VerifyBundle { bundle, key } => {
            crate::allocator::keep_freed_memory();
            verify_bundle(&bundle, key.as_deref())
        }
        Command::Verify { format } => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            verify(&loaded, format).await
        }
        Command::Runs(command) => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            runs::runs(&loaded, command).await
        }
        Command::Subscribers(command) => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            subscribers::subscribers(&loaded, command).await
        }
        Command::Notify(command) => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            notify::notify(&loaded, command).await
        }
        Command::User(command) => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            users::user(&loaded, command).await
        }
        Command::Serve => {
            let Some(loaded) = load_config(cli.config.as_deref()) else {
                return EXIT_USAGE;
            };
            match crate::startup::serve(loaded).await {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    EXIT_USAGE
                }
            }
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Option<Loaded> {
    match config::load(path) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// The configured database, or the error printed.
async fn connect(loaded: &Loaded) -> Option<crate::store::Store> {
    match crate::store::Store::connect(&loaded.config.database_url).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn load_catalog(loaded: &Loaded, today: chrono::NaiveDate) -> Result<Catalog, u8> {
    catalog::from_config(loaded, today).map_err(|diags| {
        for d in &diags.0 {
            eprintln!("{d}");
        }
        eprintln!("{} problem(s) found", diags.0.len());
        EXIT_USAGE
    })
}

/// Checks the whole configuration: the config itself (checked when loaded), every control
/// file, every exception file and every register file. Expired exceptions are warnings.
fn validate(loaded: &Loaded) -> u8 {
    let today = chrono::Utc::now().date_naive();
    let mut problems = Vec::new();
    let catalog = catalog::from_config(loaded, today);
    if let Err(diags) = &catalog {
        problems.extend(diags.0.iter().map(ToString::to_string));
    }
    let mut warnings = Vec::new();
    let mut exceptions = 0;
    if let Ok(c) = &catalog {
        for control in c.controls() {
            for e in &control.exceptions {
                exceptions += 1;
                if !e.in_force(today) {
                    warnings.push(format!(
                        "{}: exception {} ({}) for `{}` expired on {} and no longer applies",
                        e.path.display(),
                        e.id,
                        e.ticket,
                        e.control,
                        e.expires_on
                    ));
                }
            }
        }
    }
    let mut registers_checked = false;
    if let Some(source) = &loaded.config.sources.registers {
        let dir = loaded.resolve(&source.path);
        match crate::registers::load(&dir) {
            Err(diags) => problems.extend(diags.iter().map(ToString::to_string)),
            Ok(r) => {
                let missing = r.missing_files(&dir);
                registers_checked = missing.is_empty();
                problems.extend(missing.iter().map(ToString::to_string));
                // Without a catalog, unknown controls cannot be told apart: not reported.
                let is_control = |id: &str| catalog.as_ref().map_or(true, |c| c.get(id).is_some());
                let review = crate::registers::review(&dir, &r, today, &is_control);
                problems.extend(review.errors.iter().map(ToString::to_string));
                warnings.extend(review.warnings.iter().map(ToString::to_string));
            }
        }
    }
    // The roster and the policies, read by the probes' own parsers: every problem (which would
    // make every check reading them `error`), and every recorded date ahead (the date rule).
    let mut sources_checked = Vec::new();
    if let Some(source) = &loaded.config.sources.hr {
        let path = loaded.resolve(&source.path);
        match std::fs::read(&path) {
            Err(e) => problems.push(format!(
                "{}: cannot read the HR roster: {e}",
                path.display()
            )),
            Ok(bytes) => {
                let mapping = source.columns.to_map();
                let (people, diags) = crate::probes::hr::parse_roster(&path, &bytes, &mapping);
                if diags.is_empty() {
                    let n = people.len();
                    let who = if n == 1 { "person" } else { "people" };
                    sources_checked.push(format!("roster valid ({n} {who})"));
                }
                problems.extend(diags.iter().map(ToString::to_string));
                warnings.extend(
                    crate::probes::hr::warnings(&path, &people, &mapping, today)
                        .iter()
                        .map(ToString::to_string),
                );
            }
        }
    }
    if let Some(source) = &loaded.config.sources.policies {
        let dir = loaded.resolve(&source.path);
        match crate::probes::policies::read_folder(&dir) {
            Err(e) => problems.push(format!(
                "{}: cannot read the policies folder: {e}",
                dir.display()
            )),
            Ok(docs) => {
                let (diags, dates) = crate::probes::policies::review(&docs, today);
                if diags.is_empty() {
                    let n = docs.len();
                    let s = if n == 1 { "" } else { "s" };
                    sources_checked.push(format!("policies valid ({n} document{s})"));
                }
                problems.extend(diags.iter().map(ToString::to_string));
                warnings.extend(dates.iter().map(ToString::to_string));
            }
        }
    }
    let trust = &loaded.config.trust_page;
    for (i, doc) in trust.documents.items.iter().enumerate() {
        let file = loaded.resolve(&doc.file);
        if !file.is_file() {
            problems.push(format!(
                "{}: trust_page.documents.items[{i}].file: {} is not a readable file",
                loaded.source.display(),
                file.display()
            ));
        }
    }
    if !trust.documents.items.is_empty() && trust.base_url.is_none() {
        warnings.push(format!(
            "{}: trust_page.base_url is not set: approved document requests get links without \
             the server's address",
            loaded.source.display()
        ));
    }
    // Notifications: rules naming what the catalog does not have (a typo silences a rule),
    // and secrets that are not where the configuration says.
    let text = loaded.text();
    let index = crate::diag::YamlIndex::new(&text);
    if let Ok(c) = &catalog {
        // Answers citing controls visitors cannot see.
        problems.extend(
            crate::web::faq_citation_problems(trust, c)
                .into_iter()
                .map(|(path, message)| index.at(&loaded.source, &path, message).to_string()),
        );
    }
    // Brand files: readable, PNG or SVG without script or external references.
    match crate::web::chrome::BrandAssets::load(&trust.brand, |p| loaded.resolve(p)) {
        Err(list) => problems.extend(
            list.into_iter()
                .map(|(path, message)| index.at(&loaded.source, &path, message).to_string()),
        ),
        Ok(brand) => {
            if let Some(logo) = &brand.logo
                && logo.content_type != "image/png"
            {
                warnings.push(
                    index
                        .at(
                            &loaded.source,
                            "trust_page.brand.logo",
                            "link previews (Open Graph, Twitter cards) show no image: they \
                             need a PNG logo",
                        )
                        .to_string(),
                );
            }
        }
    }
    if let Ok(c) = &catalog {
        problems.extend(
            crate::notify::config::check_against_catalog(&loaded.config.notifications, c)
                .into_iter()
                .map(|(path, message)| index.at(&loaded.source, &path, message).to_string()),
        );
    }
    warnings.extend(
        crate::notify::config::missing_secrets(&loaded.config.notifications, &loaded.base_dir)
            .into_iter()
            .map(|(path, message)| index.at(&loaded.source, &path, message).to_string()),
    );
    if trust.contact_email.is_none() && trust.security_txt.contact.is_empty() {
        warnings.push(format!(
            "{}: no trust_page.contact_email or security_txt.contact: /.well-known/security.txt \
             is not served",
            loaded.source.display()
        ));
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if problems.is_empty() {
        let n = catalog.map(|c| c.len()).unwrap_or(0);
        let registers = if registers_checked {
            ", registers valid"
        } else {
            ""
        };
        let sources: String = sources_checked.iter().map(|s| format!(", {s}")).collect();
        println!(
            "{n} controls valid ({}), {exceptions} exception(s){registers}{sources}",
            loaded.controls_dir().display()
        );
        EXIT_OK
    } else {
        for p in &problems {
            println!("{p}");
        }
        eprintln!("{} problem(s) found", problems.len());
        EXIT_USAGE
    }
}

async fn export(
    loaded: &Loaded,
    request: &crate::export::ExportRequest,
    out: &std::path::Path,
) -> u8 {
    let today = chrono::Utc::now().date_naive();
    let catalog = match load_catalog(loaded, today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (signer, _) = match crate::startup::signing(loaded) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_USAGE;
        }
    };
    let store = match Store::connect_for_bulk_reads(&loaded.config.database_url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Err(e) = crate::export::check(&catalog, request) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    // Before anything is written: no audit line, no export.
    if let Err(e) = store
        .audit(
            &site::decider(),
            "export",
            &format!("bundle:{}..{}", request.from, request.to),
            serde_json::json!({"controls": request.controls, "framework": request.framework, "key_id": signer.key_id(), "via": "cli"}),
            chrono::Utc::now(),
        )
        .await
    {
        eprintln!("error: the export cannot be recorded in the audit log, so it was not made: {e}");
        return EXIT_USAGE;
    }
    // Written next to the target and renamed into place: no half-written bundle is left.
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = match tempfile::NamedTempFile::new_in(dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot write in {}: {e}", dir.display());
            return EXIT_USAGE;
        }
    };
    let file = std::io::BufWriter::new(match tmp.reopen() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    });
    let summary = match crate::export::export(&store, &catalog, &signer, request, file).await {
        Ok((mut w, s)) => {
            if let Err(e) = std::io::Write::flush(&mut w) {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
            s
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Err(e) = tmp.persist(out) {
        eprintln!("error: cannot write {}: {e}", out.display());
        return EXIT_USAGE;
    }
    println!(
        "wrote {}: {} controls, {} runs, {} evaluations, {} population rows, {} evidence files; signed by {}",
        out.display(),
        summary.controls,
        summary.runs,
        summary.results,
        summary.population_rows,
        summary.evidence_files,
        summary.key_id
    );
    if summary.missing_evidence > 0 {
        eprintln!(
            "warning: evidence missing from the store: {} of the files the period's results read (listed under missing_evidence in the bundle's manifest; `trellis verify` names how they went missing)",
            summary.missing_evidence
        );
    }
    EXIT_OK
}

fn verify_bundle(bundle: &std::path::Path, key: Option<&str>) -> u8 {
    let key = match key {
        None => None,
        Some(k) => {
            let text = if std::path::Path::new(k).is_file() {
                std::fs::read_to_string(k).unwrap_or_default()
            } else {
                k.to_string()
            };
            match crate::integrity::PublicKey::parse(&text) {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("error: --key: {e}");
                    return EXIT_USAGE;
                }
            }
        }
    };
    let file = match std::fs::File::open(bundle) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", bundle.display());
            return EXIT_USAGE;
        }
    };
    match crate::export::verify_bundle(std::io::BufReader::new(file), key.as_ref(), &[]) {
        Ok(v) => {
            println!(
                "ok: {} files and {} run attestations verified, {} – {}; signed by {}{}",
                v.files,
                v.attestations,
                v.from,
                v.to,
                v.key_id,
                if key.is_none() {
                    " (compare it with the key the company publishes)"
                } else {
                    ""
                }
            );
            if v.missing_evidence > 0 {
                println!(
                    "note: evidence missing: {} of the files the period's results read were no longer stored when the bundle was made (missing_evidence in manifest.json)",
                    v.missing_evidence
                );
            }
            EXIT_OK
        }
        Err(problem) => {
            println!("FAILED: {problem}");
            EXIT_FAILED
        }
    }
}

async fn verify(loaded: &Loaded, format: Format) -> u8 {
    let keys = match crate::startup::verifying_keys(loaded) {
        Ok((true, keys)) => keys,
        Ok((false, keys)) => {
            eprintln!(
                "warning: the signing key {} does not exist: only signing.previous_public_keys are trusted ({} key(s)), so runs signed by it do not verify",
                loaded.resolve(&loaded.config.signing.key_file).display(),
                keys.len()
            );
            keys
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_USAGE;
        }
    };
    let store = match Store::connect(&loaded.config.database_url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let report = match store.verify(&keys).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Table => {
            println!(
                "checked {} evidence rows, {} result rows, {} closed runs ({} signed, {} legacy unsigned), {} running",
                report.evidence_rows,
                report.result_rows,
                report.runs_closed,
                report.runs_signed,
                report.runs_legacy,
                report.runs_running
            );
            if report.runs_legacy > 0 {
                println!(
                    "note: {} run(s) were closed without a signature before runs were chained; they are chained, and every later signature covers them",
                    report.runs_legacy
                );
            }
            for p in &report.problems {
                println!("TAMPERED: {p}");
            }
            if report.problems.is_empty() {
                println!(
                    "ok: the chains are intact and every closed run's signed manifest matches"
                );
            }
        }
    }
    if report.problems.is_empty() {
        return EXIT_OK;
    }
    // The security team hears of it (once per distinct finding of tampering).
    let text: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    let detail = format!(
        "{} problem(s); the first: {}",
        text.len(),
        text.first().map(String::as_str).unwrap_or_default()
    );
    let event = crate::notify::NewEvent {
        key: format!(
            "verify_failed:{}",
            &crate::integrity::sha256_hex(text.join("\n").as_bytes())[..32]
        ),
        event: crate::notify::Event {
            count: text.len(),
            detail,
            ..crate::notify::Event::new(crate::notify::EventKind::VerifyFailed, chrono::Utc::now())
        },
    };
    if let Err(e) = store
        .add_events(&[event], chrono::Utc::now().timestamp_millis())
        .await
    {
        eprintln!("warning: could not queue the verify_failed notification: {e}");
    }
    EXIT_FAILED
}

/// The JSON Schema of a file format, by name.
pub fn schema_of(of: &str) -> Option<serde_json::Value> {
    match of {
        "control" => Some(catalog::json_schema()),
        "exceptions" => Some(crate::exceptions::json_schema()),
        register => crate::registers::schemas()
            .into_iter()
            .find(|(name, _)| *name == register)
            .map(|(_, s)| s),
    }
}

fn schema(of: &str, out: Option<PathBuf>) -> u8 {
    let Some(value) = schema_of(of) else {
        let registers: Vec<&str> = crate::registers::schemas()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        eprintln!(
            "error: unknown format `{of}` (control, exceptions, {})",
            registers.join(", ")
        );
        return EXIT_USAGE;
    };
    let text = match serde_json::to_string_pretty(&value) {
        Ok(t) => t + "\n",
        Err(e) => {
            eprintln!("error: cannot serialize schema: {e}");
            return EXIT_USAGE;
        }
    };
    match out {
        Some(path) => match std::fs::write(&path, text) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                EXIT_USAGE
            }
        },
        None => {
            print!("{text}");
            EXIT_OK
        }
    }
}

fn print_probes() {
    for p in probes::all() {
        println!(
            "{} (source: {}, evidence: {})\n  {}",
            p.name(),
            p.source(),
            p.kind(),
            p.summary()
        );
        let schema = serde_json::to_value(p.params_schema()).unwrap_or_default();
        if let Some(params) = schema["properties"].as_object().filter(|m| !m.is_empty()) {
            println!("  parameters (with:):");
            for (name, prop) in params {
                let doc = prop["description"].as_str().unwrap_or("");
                println!("    {name:<24} {}", doc.replace('\n', " "));
            }
        }
        println!("  attributes:");
        for a in p.attributes() {
            println!(
                "    {:<24} {:<10} {}",
                a.name,
                format!("{:?}", a.kind).to_lowercase(),
                a.doc
            );
        }
        println!("  example:");
        for line in p.example().lines() {
            println!("    {line}");
        }
        println!();
    }
}

/// `--as-of`: an RFC 3339 instant, or `YYYY-MM-DD` (midnight UTC).
fn parse_as_of(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!(
                "`{text}` is not an RFC 3339 time (2026-11-22T12:00:00Z) or a date (2026-11-22)"
            )
        })
}
