//! Notifications (issue 20) against real peers on loopback: HTTP receivers (wiremock) for
//! Slack, Teams and signed webhooks, a real SMTP server (aiosmtpd) with STARTTLS and
//! authentication, and real `trellis` processes killed between writing the outbox and
//! delivering it, on SQLite and PostgreSQL.
//!
//! Results come from real runs: `trellis check` evaluates `background-checks` against a
//! roster the test writes (two people without a background check: failing; everyone
//! checked: fixed).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use trellis::notify::sender::Notifier;
use trellis::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::http::{Pki, free_port};
use crate::instances::{serve, wait_for};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const HEADER: &str = "employee_id,name,email,github_login,aws_username,department,title,manager_email,start_date,end_date,background_check_date,nda_signed_date,security_training_date,policy_ack_date,last_review_date";

/// The roster: three people, of whom `unchecked` have no background check (started in 2020,
/// so no longer within their first 30 days).
fn roster(unchecked: usize) -> String {
    let mut out = format!("{HEADER}\n");
    for (i, name) in ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
        .iter()
        .enumerate()
    {
        let check = if i < unchecked { "" } else { "2020-01-10" };
        out.push_str(&format!(
            "E90{i},{name},p{i}@sprout.example,,,Engineering,Engineer,,2020-01-06,,{check},2020-01-06,2026-02-01,2026-02-01,2026-03-01\n"
        ));
    }
    out
}

/// A configuration of one control (`background-checks`) reading the test's roster, with the
/// given `notifications` section (indented under `notifications:`).
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
}

impl Setup {
    fn new(url: Option<&str>, notifications: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let controls = dir.path().join("controls");
        std::fs::create_dir_all(&controls).unwrap();
        std::fs::copy(
            repo().join("controls/organizational-management/background-checks.yaml"),
            controls.join("background-checks.yaml"),
        )
        .unwrap();
        let url = url
            .map(str::to_string)
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()));
        let config = dir.path().join("trellis.yaml");
        std::fs::write(
            &config,
            format!(
                "database_url: \"{url}\"\ncontrols_dir: controls\nlimits:\n  queue_poll: 200ms\n  lease: 2s\nserver:\n  bind: 127.0.0.1:0\nsigning:\n  key_file: signing.key\nsources:\n  hr:\n    path: roster.csv\nnotifications:\n  dashboard_url: https://trellis.sprout.example\n{notifications}"
            ),
        )
        .unwrap();
        let setup = Setup { dir, config, url };
        setup.write_roster(2);
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn write_roster(&self, unchecked: usize) {
        self.write("roster.csv", &roster(unchecked));
    }

    /// `trellis check`: evaluates and stores (exit 0 or 1: passing or failing).
    fn check(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["check", "--config"])
            .arg(&self.config)
            .env_remove("TRELLIS_CONFIG")
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "trellis check: {:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn trellis(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("TRELLIS_CONFIG")
            .output()
            .unwrap()
    }

    async fn store(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }

    /// This configuration's notifier, in this process (instance `name`), as `serve` makes it.
    async fn notifier(&self, name: &str) -> Notifier {
        let loaded = trellis::config::load_with_env(Some(&self.config), &[]).unwrap();
        let catalog =
            trellis::catalog::from_config(&loaded, chrono::Utc::now().date_naive()).unwrap();
        let clock: Arc<dyn trellis::scheduler::Clock> = Arc::new(trellis::scheduler::SystemClock);
        trellis::startup::notifier_of(
            &loaded,
            &self.store().await,
            &Arc::new(catalog),
            &clock,
            name.to_string(),
        )
        .unwrap()
    }
}

/// Ticks `notifier` until `done` holds (at most 30 s).
async fn tick_until<F, Fut>(notifier: &Notifier, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = CancellationToken::new();
    loop {
        notifier.tick(true, &token).await.unwrap();
        if done().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn requests_to(server: &MockServer, to: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == to)
        .collect()
}

fn json(r: &wiremock::Request) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// An HTTP receiver that accepts every POST.
async fn accepting_receiver() -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    receiver
}

/// Checks `X-Trellis-Signature` as the documentation tells a receiver to.
fn assert_signed(r: &wiremock::Request, secret: &str) {
    let header = |name: &str| {
        r.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let timestamp = header("x-trellis-timestamp");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(
        (0..300).contains(&age),
        "timestamp {timestamp} is {age} s old"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header("x-trellis-signature"), expected);
    // Another secret does not verify it.
    let mut other = Hmac::<Sha256>::new_from_slice(b"not the secret").unwrap();
    other.update(timestamp.as_bytes());
    other.update(b".");
    other.update(&r.body);
    assert_ne!(
        header("x-trellis-signature"),
        format!("sha256={}", hex::encode(other.finalize().into_bytes()))
    );
}

/// Nothing a message says names a person or a resource of the roster.
fn assert_no_resource_names(text: &str) {
    for needle in [
        "Lovelace", "Hopper", "Turing", "E900", "E901", "hr:", "p0@", "p1@",
    ] {
        assert!(!text.contains(needle), "`{needle}` in a message: {text}");
    }
}

#[tokio::test]
async fn slack_teams_and_webhooks_hear_each_transition_once() {
    let receiver = accepting_receiver().await;
    let setup = Setup::new(
        None,
        "  digest_window: 1ms\n  channels:\n    - {name: sec-slack, type: slack, url_file: slack.url}\n    - {name: sec-teams, type: teams, url_file: teams.url}\n    - {name: sec-hook, type: webhook, url_file: hook.url, secret_file: hook.secret}\n    - {name: low-only, type: webhook, url_file: low.url, secret_file: hook.secret}\n  rules:\n    - {events: [failing, erroring, reopened], severity: [high, critical], channels: [sec-slack, sec-teams]}\n    - {events: [fixed], channels: [sec-hook]}\n    - {events: [failing, fixed, reopened], severity: [low], channels: [low-only]}\n",
    );
    for (name, at) in [
        ("slack.url", "/slack"),
        ("teams.url", "/teams"),
        ("hook.url", "/hook"),
        ("low.url", "/low"),
    ] {
        setup.write(name, &format!("{}{at}", receiver.uri()));
    }
    setup.write("hook.secret", "hook-secret-0123456789");
    let notifier = setup.notifier("test-a").await;

    // Two people unchecked: failing, to Slack and Teams (the control's severity is high).
    setup.check();
    tick_until(&notifier, "the failing messages", || async {
        requests_to(&receiver, "/slack").await.len() == 1
            && requests_to(&receiver, "/teams").await.len() == 1
    })
    .await;
    let slack = json(&requests_to(&receiver, "/slack").await[0]);
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("*[Trellis] Background Checks is failing*"),
        "{text}"
    );
    assert!(text.contains("2 findings newly failing"), "{text}");
    assert!(
        text.contains("<https://trellis.sprout.example/dashboard/controls/background-checks|Open>"),
        "{text}"
    );
    assert_no_resource_names(text);
    let teams = json(&requests_to(&receiver, "/teams").await[0]);
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(
        card["content"]["body"][1]["text"]
            .as_str()
            .unwrap()
            .contains("Background Checks (background-checks) is failing")
    );
    assert_no_resource_names(&teams.to_string());

    // The same failures again: no event, no message.
    let events_before = setup.store().await.notify_events().await.unwrap().len();
    setup.check();
    notifier
        .tick(true, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        setup.store().await.notify_events().await.unwrap().len(),
        events_before,
        "a second failing run made an event"
    );

    // Everyone checked: fixed, to the signed webhook only.
    setup.write_roster(0);
    setup.check();
    tick_until(&notifier, "the fixed message", || async {
        requests_to(&receiver, "/hook").await.len() == 1
    })
    .await;
    let hook = &requests_to(&receiver, "/hook").await[0];
    assert_signed(hook, "hook-secret-0123456789");
    let body = json(hook);
    assert_eq!(body["type"], "trellis.notification");
    assert_eq!(
        body["delivery"],
        hook.headers
            .get("x-trellis-delivery")
            .unwrap()
            .to_str()
            .unwrap()
    );
    let event = &body["events"][0];
    assert_eq!(event["kind"], "fixed");
    assert_eq!(event["count"], 2);
    assert_eq!(event["open_total"], 0);
    assert_eq!(event["control"]["id"], "background-checks");
    assert_eq!(event["control"]["severity"], "high");
    assert_eq!(event["fingerprints"].as_array().unwrap().len(), 2);
    assert_no_resource_names(&body.to_string());

    // One person unchecked again: reopened.
    setup.write_roster(1);
    setup.check();
    tick_until(&notifier, "the reopened message", || async {
        requests_to(&receiver, "/slack").await.len() == 2
    })
    .await;
    let slack = json(&requests_to(&receiver, "/slack").await[1]);
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("failed again: 1 finding fixed before fail again"),
        "{slack}"
    );
    // The low-severity rule never matched; nothing else was sent.
    assert!(requests_to(&receiver, "/low").await.is_empty());
    assert_eq!(requests_to(&receiver, "/teams").await.len(), 2);
    assert_eq!(requests_to(&receiver, "/hook").await.len(), 1);
}

#[tokio::test]
async fn a_receiver_answering_500_twice_gets_exactly_one_delivery() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream unavailable"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let setup = Setup::new(
        None,
        "  digest_window: 1ms\n  retry_backoff: 100ms\n  channels:\n    - {name: hook, type: webhook, url_file: hook.url, secret_file: hook.secret}\n  rules:\n    - {events: [failing], channels: [hook]}\n",
    );
    setup.write("hook.url", &format!("{}/hook", receiver.uri()));
    setup.write("hook.secret", "s3cret-s3cret");
    setup.check();
    let notifier = setup.notifier("test-a").await;
    let store = setup.store().await;
    tick_until(&notifier, "the delivery", || async {
        store
            .notify_deliveries()
            .await
            .unwrap()
            .iter()
            .all(|d| d.state == "sent")
    })
    .await;
    // A few more passes: nothing is sent again.
    for _ in 0..5 {
        notifier
            .tick(true, &CancellationToken::new())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = requests_to(&receiver, "/hook").await;
    assert_eq!(requests.len(), 3, "two refused, one accepted");
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| {
            r.headers
                .get("x-trellis-delivery")
                .unwrap()
                .to_str()
                .unwrap()
        })
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one message id on every attempt: {ids:?}"
    );
    for (i, r) in requests.iter().enumerate() {
        assert_signed(r, "s3cret-s3cret");
        assert_eq!(json(r)["attempt"], i + 1);
    }
    let deliveries = store.notify_deliveries().await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[0].last_error, None);
}

#[tokio::test]
async fn a_channel_out_of_attempts_is_failed_and_reported() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&receiver)
        .await;
    let setup = Setup::new(
        None,
        "  digest_window: 1ms\n  retry_backoff: 50ms\n  max_attempts: 3\n  channels:\n    - {name: sec-slack, type: slack, url_file: slack.url}\n  rules:\n    - {events: [failing], channels: [sec-slack]}\n",
    );
    setup.write(
        "slack.url",
        &format!("{}/services/T000/B000/XXXXSECRETXXXX", receiver.uri()),
    );
    setup.check();
    let notifier = setup.notifier("test-a").await;
    let store = setup.store().await;
    tick_until(&notifier, "the failure", || async {
        store.notify_overview().await.unwrap().failed == 1
    })
    .await;
    assert_eq!(
        requests_to(&receiver, "/services/T000/B000/XXXXSECRETXXXX")
            .await
            .len(),
        3
    );
    let overview = store.notify_overview().await.unwrap();
    let failed = &overview.failed_recent[0];
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.channel, "sec-slack");
    let error = failed.last_error.clone().unwrap();
    assert!(error.contains("HTTP 404: no_service"), "{error}");
    // The webhook URL is a secret: never in the error.
    assert!(
        !error.contains("XXXXSECRETXXXX") && !error.contains("127.0.0.1"),
        "{error}"
    );
    // `trellis notify status` names it and exits 1.
    let out = setup.trellis(&["notify", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("failed 1"), "{stdout}");
    assert!(
        stdout.contains("FAILED  sec-slack  failing  background-checks  after 3 attempts"),
        "{stdout}"
    );
}

#[tokio::test]
async fn notify_test_sends_to_the_named_channel_and_says_why_not() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/teams"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&receiver)
        .await;
    let setup = Setup::new(
        None,
        "  channels:\n    - {name: sec-teams, type: teams, url_env: TRELLIS_TEST_TEAMS_URL}\n    - {name: sec-slack, type: slack, url_env: TRELLIS_TEST_UNSET_SLACK_URL}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["notify", "test", "sec-teams", "--config"])
        .arg(&setup.config)
        .env(
            "TRELLIS_TEST_TEAMS_URL",
            format!("{}/teams", receiver.uri()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = requests_to(&receiver, "/teams").await;
    assert_eq!(sent.len(), 1);
    assert!(
        json(&sent[0])
            .to_string()
            .contains("Test message from Trellis to channel `sec-teams`")
    );

    let out = setup.trellis(&["notify", "test", "sec-slack"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("environment variable `TRELLIS_TEST_UNSET_SLACK_URL` (url_env) is not set"),
        "{stderr}"
    );
    let out = setup.trellis(&["notify", "test", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("channels: sec-teams, sec-slack"));
}

/// aiosmtpd on a free loopback port: STARTTLS with a certificate of the test CA, AUTH
/// required; received messages as JSON files in `out`.
pub(crate) struct Smtp {
    child: Child,
    pub(crate) port: u16,
    out: PathBuf,
}

impl Smtp {
    pub(crate) async fn start(dir: &Path, user: &str, password: &str) -> Smtp {
        let python = std::env::var_os("TRELLIS_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv/bin/python"));
        assert!(
            python.exists(),
            "{} not found: run scripts/test, which installs aiosmtpd into .venv",
            python.display()
        );
        let pki = Pki::new();
        pki.write_ca(&dir.join("ca.pem"));
        let (cert, key) = pki
            .leaf("127.0.0.1", None, -1, 30, false)
            .write(dir, "smtp");
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).unwrap();
        let port = free_port("127.0.0.1").await;
        let mut child = Command::new(python)
            .arg(repo().join("tests/smtp_server.py"))
            .arg(port.to_string())
            .arg(&cert)
            .arg(&key)
            .arg(user)
            .arg(password)
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Smtp { child, port, out }
    }

    pub(crate) fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[tokio::test]
async fn email_goes_over_starttls_with_auth_and_a_wrong_password_fails_after_retries() {
    let setup = Setup::new(None, "");
    let smtp = Smtp::start(setup.dir.path(), "trellis", "mail-pass-1").await;
    let channel = |name: &str, password_file: &str| {
        format!(
            "    - name: {name}\n      type: email\n      to: [security@sprout.example, oncall@sprout.example]\n      from: \"Trellis <trellis@sprout.example>\"\n      smtp: {{host: 127.0.0.1, port: {}, tls: starttls, username_file: smtp.user, password_file: {password_file}, ca_file: ca.pem, timeout: 10s}}\n",
            smtp.port
        )
    };
    let config = format!(
        "database_url: \"sqlite://{}?mode=rwc\"\ncontrols_dir: controls\nsigning:\n  key_file: signing.key\nsources:\n  hr:\n    path: roster.csv\nnotifications:\n  dashboard_url: https://trellis.sprout.example\n  digest_window: 1ms\n  retry_backoff: 50ms\n  max_attempts: 3\n  channels:\n{}{}  rules:\n    - {{events: [failing], channels: [mail, mail-wrong]}}\n",
        setup.path("t.db").display(),
        channel("mail", "smtp.pass"),
        channel("mail-wrong", "smtp.wrong"),
    );
    setup.write("trellis.yaml", &config);
    setup.write("smtp.user", "trellis\n");
    setup.write("smtp.pass", "mail-pass-1\n");
    setup.write("smtp.wrong", "not-the-password\n");
    setup.check();
    let notifier = setup.notifier("test-a").await;
    let store = setup.store().await;
    tick_until(&notifier, "both channels settled", || async {
        let d = store.notify_deliveries().await.unwrap();
        d.len() == 2 && d.iter().all(|d| d.state == "sent" || d.state == "failed")
    })
    .await;

    let mail = smtp.received();
    assert_eq!(mail.len(), 1, "{mail:?}");
    let m = &mail[0];
    assert_eq!(m["tls"], true, "STARTTLS was not used");
    assert_eq!(m["authenticated"], true);
    assert_eq!(m["mail_from"], "trellis@sprout.example");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["security@sprout.example", "oncall@sprout.example"])
    );
    let data = m["data"].as_str().unwrap();
    let delivery = store
        .notify_deliveries()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.channel == "mail")
        .unwrap();
    for header in [
        "From: Trellis <trellis@sprout.example>".to_string(),
        "Subject: [Trellis] Background Checks is failing".to_string(),
        format!(
            "Message-ID: <{}@sprout.example>",
            delivery.batch.clone().unwrap()
        ),
        "Date: ".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
    ] {
        assert!(data.contains(&header), "no `{header}` in:\n{data}");
    }
    assert!(data.contains("https://trellis.sprout.example/dashboard/controls/background-checks"));
    assert_no_resource_names(data);

    let wrong = store
        .notify_deliveries()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.channel == "mail-wrong")
        .unwrap();
    assert_eq!(wrong.state, "failed");
    assert_eq!(wrong.attempts, 3);
    let error = wrong.last_error.unwrap();
    assert!(error.contains("535"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
}

/// Waits until the receiver has `n` requests, then a little longer, and returns them all.
async fn settled_requests(receiver: &MockServer, n: usize) -> Vec<wiremock::Request> {
    wait_for("the deliveries", || async {
        (receiver.received_requests().await.unwrap().len() >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    receiver.received_requests().await.unwrap()
}

fn webhook_config(receiver: &MockServer, setup: &Setup) {
    setup.write("hook.url", &format!("{}/hook", receiver.uri()));
    setup.write("hook2.url", &format!("{}/hook2", receiver.uri()));
    setup.write("hook.secret", "s3cret-s3cret");
}

async fn killed_between_outbox_and_delivery(url: Option<&str>) {
    let receiver = accepting_receiver().await;
    let setup = Setup::new(
        url,
        "  digest_window: 6s\n  channels:\n    - {name: hook, type: webhook, url_file: hook.url, secret_file: hook.secret}\n  rules:\n    - {events: [failing], channels: [hook]}\n",
    );
    webhook_config(&receiver, &setup);
    let store = setup.store().await;
    // The startup run stores the failing result and its event; the digest window holds the
    // message back; the process dies before sending it.
    let mut first = serve(&setup.config);
    wait_for("the failing event", || async {
        (!store.notify_events().await.unwrap().is_empty()).then_some(())
    })
    .await;
    first.kill9();
    assert!(receiver.received_requests().await.unwrap().is_empty());
    let _second = serve(&setup.config);
    let requests = settled_requests(&receiver, 1).await;
    assert_eq!(requests.len(), 1, "delivered once after the restart");
    let body = json(&requests[0]);
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["kind"], "failing");
    assert_signed(&requests[0], "s3cret-s3cret");
}

#[tokio::test]
async fn killed_between_outbox_and_delivery_delivers_once_after_restart_on_sqlite() {
    killed_between_outbox_and_delivery(None).await;
}

#[tokio::test]
async fn killed_between_outbox_and_delivery_delivers_once_after_restart_on_postgres() {
    let Some((_, url)) = crate::common::app::postgres_env("notify_killed").await else {
        eprintln!("TRELLIS_TEST_POSTGRES_URL is not set; skipped");
        return;
    };
    killed_between_outbox_and_delivery(Some(&url)).await;
}

#[tokio::test]
async fn two_instances_on_postgres_send_each_message_once() {
    let Some((_, url)) = crate::common::app::postgres_env("notify_two").await else {
        eprintln!("TRELLIS_TEST_POSTGRES_URL is not set; skipped");
        return;
    };
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(300)))
        .mount(&receiver)
        .await;
    let setup = Setup::new(
        Some(&url),
        "  digest_window: 1s\n  channels:\n    - {name: hook, type: webhook, url_file: hook.url, secret_file: hook.secret}\n    - {name: hook2, type: webhook, url_file: hook2.url, secret_file: hook.secret}\n  rules:\n    - {events: [failing, fixed, reopened], channels: [hook, hook2]}\n",
    );
    webhook_config(&receiver, &setup);
    // Three transitions stored before any instance runs: failing, fixed, reopened.
    setup.check();
    setup.write_roster(0);
    setup.check();
    setup.write_roster(1);
    setup.check();
    assert_eq!(setup.store().await.notify_events().await.unwrap().len(), 3);
    let a = serve(&setup.config);
    let b = serve(&setup.config);
    let requests = settled_requests(&receiver, 2).await;
    let mut kinds: Vec<(String, String)> = Vec::new();
    for r in &requests {
        for e in json(r)["events"].as_array().unwrap() {
            kinds.push((
                r.url.path().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            ));
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("/hook", "failing"),
            ("/hook", "fixed"),
            ("/hook", "reopened"),
            ("/hook2", "failing"),
            ("/hook2", "fixed"),
            ("/hook2", "reopened"),
        ]
        .map(|(p, k)| (p.to_string(), k.to_string())),
        "each event once per channel, in {} messages\n{}\n{}",
        requests.len(),
        a.log(),
        b.log()
    );
    let deliveries = setup.store().await.notify_deliveries().await.unwrap();
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == "sent" && d.attempts == 1),
        "{deliveries:?}"
    );
}

#[tokio::test]
async fn the_overview_lists_notifications_that_were_not_delivered() {
    use trellis::notify::{Event, NewEvent};
    use trellis::store::BatchEnd;
    let app = crate::common::app::spawn_app().await;
    crate::common::staff::add_user(&app, "vic", trellis::auth::Role::Viewer).await;
    let vic = crate::dashboard::login(&app, "vic").await;
    let html = vic.get("/dashboard").await.text().await.unwrap();
    assert!(!html.contains("Notifications not delivered"));
    assert!(html.contains("Notifications: 0 delivered, 0 waiting, 0 failed."));

    let now = chrono::Utc::now().timestamp_millis();
    let event = Event {
        control_id: Some("background-checks".into()),
        status: Some(trellis::model::Status::Fail),
        count: 2,
        open_total: Some(2),
        ..Event::new(trellis::notify::EventKind::Failing, chrono::Utc::now())
    };
    let store = &app.store;
    store
        .add_events(
            &[NewEvent {
                key: "k".into(),
                event,
            }],
            now,
        )
        .await
        .unwrap();
    store
        .route_events(now, &|_| ["sec-slack".to_string()].into())
        .await
        .unwrap();
    let batch = store
        .claim_batch("sec-slack", "me", now, 0, now + 60_000, 8)
        .await
        .unwrap()
        .unwrap();
    let end = BatchEnd::Failed {
        error: "Slack endpoint answered HTTP 404: no_service".into(),
    };
    assert!(
        store
            .finish_batch(&batch.id, "me", &end, now)
            .await
            .unwrap()
    );

    let html = vic.get("/dashboard").await.text().await.unwrap();
    assert!(html.contains("Notifications not delivered (1)"), "{html}");
    assert!(html.contains("<td>sec-slack</td><td>failing</td>"));
    assert!(html.contains("href=\"/dashboard/controls/background-checks\""));
    assert!(html.contains("Slack endpoint answered HTTP 404: no_service"));
    assert!(html.contains("Notifications: 0 delivered, 0 waiting, 1 failed."));
}

#[tokio::test]
async fn validate_names_rules_that_would_never_match_and_secrets_not_set() {
    let setup = Setup::new(
        None,
        "  channels:\n    - {name: sec-slack, type: slack, url_env: TRELLIS_TEST_UNSET_SLACK_URL}\n  rules:\n    - {events: [failing], controls: [backgound-checks], channels: [sec-slack]}\n    - {events: [fixed], categories: [Organizational Management], owners: [Nobody], channels: [sec-slack]}\n",
    );
    let out = setup.trellis(&["validate"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    let config = setup.config.display().to_string();
    assert!(
        all.contains(&format!("{config}:18:")) && all.contains("notifications.rules[0].controls[0]: no control has the id `backgound-checks`: this rule would never match"),
        "{all}"
    );
    assert!(
        all.contains("notifications.rules[1].owners[0]: no control is owned by `Nobody`"),
        "{all}"
    );
    assert!(!all.contains("categories[0]"), "the category exists: {all}");
    assert!(
        all.contains("warning: ")
            && all.contains(
                "environment variable `TRELLIS_TEST_UNSET_SLACK_URL` (url_env) is not set"
            ),
        "{all}"
    );
}
