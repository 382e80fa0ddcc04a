//! Integration tests of the storage layer, through its public API only.
//!
//! Every scenario is one `async fn` taking a connected [`Store`] (and, when it needs to
//! reconnect, the URL of its database). The `backends!` macro runs each scenario against:
//! - SQLite: a fresh file in a temporary directory per test;
//! - PostgreSQL, when `TRELLIS_TEST_POSTGRES_URL` is set (e.g.
//!   `postgres://postgres@127.0.0.1:5432/test`): a fresh database per test, created through
//!   that URL and dropped afterwards (best effort). If the variable is set but the server is
//!   unreachable, the tests fail. If it is not set, the PostgreSQL variants pass without
//!   running (and say so on stderr).

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::new_evidence;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;
use trellis::model::{
    CheckOutcome, ControlOutcome, Evidence, Finding, LatestResult, RunState, Status, Trigger,
};
use trellis::store::{Lease, Store, StoreError, UnitEnd, testing};

const POSTGRES_URL_ENV: &str = "TRELLIS_TEST_POSTGRES_URL";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A fresh, migrated database for one test, removed when [`TestDb::cleanup`] runs.
struct TestDb {
    store: Store,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The directory holding the SQLite file; deleted on drop.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        server_url: String,
        name: String,
    },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("trellis.db").display()
        );
        let store = Store::connect(&url).await.expect("connect to sqlite");
        assert_eq!(store.backend_name(), "sqlite");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// `None` when `TRELLIS_TEST_POSTGRES_URL` is not set; panics when it is set but the
    /// server cannot be used.
    async fn postgres() -> Option<TestDb> {
        let server_url = std::env::var(POSTGRES_URL_ENV).ok()?;
        let name = format!("trellis_t_{}", uuid::Uuid::new_v4().simple());
        let url = testing::create_postgres_database(&server_url, &name)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_ENV} is set but unusable: {e}"));
        let store = Store::connect(&url).await.expect("connect to postgres");
        assert_eq!(store.backend_name(), "postgres");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::Postgres { server_url, name },
        })
    }

    async fn cleanup(self) {
        drop(self.store);
        if let Cleanup::Postgres { server_url, name } = self.cleanup
            && let Err(e) = testing::drop_postgres_database(&server_url, &name).await
        {
            eprintln!("warning: could not drop test database {name}: {e}");
        }
    }
}

/// Runs the scenario in its own task so that the database is cleaned up even when it panics,
/// then re-raises the panic.
async fn run_scenario<F, Fut>(db: Option<TestDb>, scenario: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = db else {
        eprintln!("skipped: {POSTGRES_URL_ENV} is not set");
        return;
    };
    let outcome = tokio::spawn(scenario(db.store.clone(), db.url.clone())).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// For each scenario, one test per backend: `<scenario>::sqlite` and `<scenario>::postgres`.
macro_rules! backends {
    ($($scenario:ident($($arg:ident),*);)*) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = Some(super::TestDb::sqlite().await);
                super::run_scenario(db, |store, _url| async move {
                    super::$scenario(&store $(, backends!(@arg $arg, _url))*).await
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = super::TestDb::postgres().await;
                super::run_scenario(db, |store, _url| async move {
                    super::$scenario(&store $(, backends!(@arg $arg, _url))*).await
                })
                .await;
            }
        }
    )*};
    (@arg url, $url:ident) => { &$url };
}

backends! {
    queue_slots_are_claimed_once_and_running_controls_are_not_queued_twice();
    queue_units_are_claimed_once_each_and_expired_leases_are_taken_over();
    queue_units_whose_claimers_keep_dying_close_the_run_interrupted_with_why();
    queue_cancel_is_audited_and_closes_the_run_cancelled();
    queue_runs_refuse_a_second_result_of_a_control();
    migrations_are_idempotent(url);
    run_lifecycle();
    evidence_round_trips();
    result_with_findings_round_trips();
    result_with_ten_thousand_findings();
    invalid_result_is_rejected_atomically();
    latest_results_pick_newest_and_last_success();
    mark_interrupted_runs_only_touches_running_runs();
    timestamps_round_trip_exactly();
    concurrent_writers(url);
    crashed_writer_leaves_database_readable(url);
    result_history_covers_the_window_and_the_state_before(url);
    access_requests_are_decided_once(url);
    staff_accounts_sessions_and_tokens();
    fifty_parallel_guesses_get_five_checks();
    a_session_change_without_its_audit_line_does_not_happen();
    dashboard_reads_and_managed_exceptions();
    untouched_data_verifies();
    an_edited_evidence_row_is_named();
    an_edited_finding_is_named();
    a_deleted_result_is_named();
    reordered_rows_are_named();
    a_moved_row_is_named();
    deleting_the_newest_rows_is_found();
    a_forged_manifest_is_found();
    tampered_runs_are_named();
    runs_closed_before_the_runs_chain_are_its_legacy(url);
    rows_from_before_the_chains_are_sealed(url);
    export_reads_walk_a_period_in_id_order();
    a_period_s_evaluations_read_in_time_order_and_the_one_before_it();
    a_period_lists_its_runs_and_reads_their_seals_a_page_at_a_time();
    http_validators_are_kept_refreshed_and_dropped_when_unused();
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
        .with_timezone(&Utc)
}

fn base_time() -> DateTime<Utc> {
    t("2025-03-14T09:26:53.589793Z")
}

fn evidence(probe: &str, content: serde_json::Value) -> Evidence {
    Evidence {
        probe: probe.to_string(),
        params: format!(r#"{{"source":"{probe}"}}"#),
        collected_at: base_time(),
        sha256: format!("{:0>64}", probe.len()),
        content,
        error: None,
    }
}

fn finding(check: usize, i: usize, status: Status) -> Finding {
    Finding {
        check,
        resource: format!("hr:E{i:05}"),
        status,
        message: format!("employee E{i:05} is {status}"),
        actual: json!({ "index": i, "mfa": status == Status::Pass, "tags": ["a", "b"] }).into(),
    }
}

fn outcome(control_id: &str, status: Status, evaluated_at: DateTime<Utc>) -> ControlOutcome {
    ControlOutcome {
        control_id: control_id.to_string(),
        status,
        summary: format!("{control_id} is {status}"),
        evaluated_at,
        definition_sha256: "ab".repeat(32),
        checks: vec![CheckOutcome {
            probe: "hr.employees".into(),
            status,
            summary: "1 resource".into(),
            error: (status == Status::Error).then(|| "probe failed".to_string()),
            evidence: None,
            basis: None,
        }],
        findings: vec![],
        exceptions: vec![],
    }
}

/// The key the tests' runs are signed with.
fn signer() -> trellis::integrity::Signer {
    trellis::integrity::Signer::from_seed([3; 32])
}

/// A run with one control evaluated at each given time, in that order.
async fn run_with_results(store: &Store, results: &[ControlOutcome]) -> String {
    let run = store
        .begin_run(Trigger::Schedule, results.len(), base_time())
        .await
        .expect("begin run");
    for r in results {
        store
            .record_result(&run, r, &[])
            .await
            .expect("record result");
    }
    run
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

async fn result_history_covers_the_window_and_the_state_before(store: &Store, url: &str) {
    use Status::*;
    let at = |hours: i64| base_time() + TimeDelta::hours(hours);
    assert_eq!(store.data_version().await.expect("version"), 0);
    let mut changes = store.changes();
    let before = *changes.borrow_and_update();
    // a: long history; b: only before the window; c: only inside it.
    run_with_results(
        store,
        &[
            outcome("a", Pass, at(0)),
            outcome("a", Fail, at(10)),
            outcome("b", Error, at(5)),
            outcome("a", Pass, at(30)),
            outcome("c", Pass, at(40)),
            outcome("a", Error, at(50)),
        ],
    )
    .await;
    assert!(
        changes.has_changed().expect("sender alive"),
        "stored results are announced"
    );
    assert_eq!(*changes.borrow(), before + 6);
    let version = store.data_version().await.expect("version");
    assert!(version > 0);
    // Another connection (another process) sees the same version; one more result moves it.
    let other = Store::connect(url).await.expect("reconnect");
    assert_eq!(other.data_version().await.expect("version"), version);
    run_with_results(&other, &[outcome("c", Fail, at(60))]).await;
    assert!(store.data_version().await.expect("version") > version);

    let history = store.result_history(at(20)).await.expect("history");
    let ids: Vec<&str> = history.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    // For each control: its newest evaluation before the window, then all inside it, in order.
    assert_eq!(
        history[0].1,
        vec![(at(10), Fail), (at(30), Pass), (at(50), Error)]
    );
    assert_eq!(history[1].1, vec![(at(5), Error)]);
    assert_eq!(history[2].1, vec![(at(40), Pass), (at(60), Fail)]);
    // The boundary is inclusive.
    let history = store.result_history(at(30)).await.expect("history");
    assert_eq!(
        history[0].1,
        vec![(at(10), Fail), (at(30), Pass), (at(50), Error)]
    );
}

async fn access_requests_are_decided_once(store: &Store, url: &str) {
    use trellis::access::{AccessStatus, Decision, NewAccessRequest};
    use trellis::store::{ClientInfo, DecideError};
    let now = base_time();
    let new = NewAccessRequest {
        name: "Ada Lovelace".into(),
        email: "ada@analytical.example".into(),
        company: "Analytical Engines".into(),
        documents: vec!["soc2".into(), "pentest".into()],
        nda_sha256: "ab".repeat(32),
    };
    let client = ClientInfo {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0".into()),
    };
    let id = store
        .create_access_request(&new, &client, now)
        .await
        .expect("create");
    let other_id = store
        .create_access_request(&new, &ClientInfo::default(), now + TimeDelta::minutes(5))
        .await
        .expect("create");
    let r = store
        .access_request(&id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (
            r.status,
            r.name.as_str(),
            r.documents.clone(),
            r.client_ip.as_deref()
        ),
        (
            AccessStatus::Pending,
            "Ada Lovelace",
            vec!["soc2".to_string(), "pentest".to_string()],
            Some("203.0.113.7")
        )
    );
    assert_eq!(r.requested_at, now);
    // Rate-limit counts by address and email within a window.
    assert_eq!(
        store
            .recent_access_requests(Some("203.0.113.7"), Some("ada@analytical.example"), now)
            .await
            .expect("count"),
        (1, 2)
    );
    assert_eq!(
        store
            .recent_access_requests(Some("198.51.100.1"), None, now + TimeDelta::minutes(1))
            .await
            .expect("count"),
        (0, 0)
    );
    // Lists: newest first, filtered by status.
    let pending = store
        .access_requests(Some(AccessStatus::Pending), 10)
        .await
        .expect("list");
    assert_eq!(
        pending.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [other_id.as_str(), id.as_str()]
    );
    // Prefixes: unique ones resolve, short or unknown ones do not.
    assert_eq!(
        store
            .find_access_request(&id[..8])
            .await
            .expect("prefix")
            .id,
        id
    );
    assert!(matches!(
        store.find_access_request(&id[..3]).await,
        Err(DecideError::NotFound(_))
    ));
    assert!(matches!(
        store.find_access_request("ffffffff-ffff").await,
        Err(DecideError::NotFound(_))
    ));
    // Approve once; a second decision on the same state fails and names the state.
    let expires = now + TimeDelta::days(7);
    let approved = store
        .decide_access_request(
            &id,
            Decision::Approve {
                expires_at: expires,
            },
            &trellis::store::Actor::new("sam", None),
            Some("ok"),
            now,
            None,
        )
        .await
        .expect("approve");
    assert_eq!(approved.status, AccessStatus::Approved);
    assert_eq!(approved.expires_at, Some(expires));
    assert_eq!(approved.decided_by.as_deref(), Some("sam"));
    let err = store
        .decide_access_request(
            &id,
            Decision::Deny,
            &trellis::store::Actor::new("eve", None),
            None,
            now,
            None,
        )
        .await
        .expect_err("already decided");
    assert_eq!(
        err.to_string(),
        format!("cannot deny request {id}: it is approved (only pending requests can be)")
    );
    // Two deciders at once: exactly one wins.
    let other = Store::connect(url).await.expect("reconnect");
    let (actor_a, actor_b) = (
        trellis::store::Actor::new("a", None),
        trellis::store::Actor::new("b", None),
    );
    let (a, b) = tokio::join!(
        store.decide_access_request(&other_id, Decision::Deny, &actor_a, None, now, None),
        other.decide_access_request(
            &other_id,
            Decision::Approve {
                expires_at: expires
            },
            &actor_b,
            None,
            now,
            None
        ),
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
    // Downloads are counted; revoking keeps them.
    store
        .record_download(&id, "soc2", Some("203.0.113.7"), now)
        .await
        .expect("download");
    let revoked = store
        .decide_access_request(
            &id,
            Decision::Revoke,
            &trellis::store::Actor::new("sam", None),
            None,
            now,
            None,
        )
        .await
        .expect("revoke");
    assert_eq!(
        (revoked.status, revoked.downloads),
        (AccessStatus::Revoked, 1)
    );
    assert!(matches!(
        store
            .decide_access_request(
                &id,
                Decision::Revoke,
                &trellis::store::Actor::new("sam", None),
                None,
                now,
                None
            )
            .await,
        Err(DecideError::WrongState { .. })
    ));
}

async fn staff_accounts_sessions_and_tokens(store: &Store) {
    use trellis::auth::Role;
    use trellis::store::{Actor, Gate, LoginLimits, NewSession, UserError};
    let now = base_time();
    let actor = Actor::new("root", Some("192.0.2.1".into()));
    let sam = store
        .create_user("sam", "Sam", Role::Security, "$argon2id$fake", &actor, now)
        .await
        .expect("create");
    assert!(matches!(
        store
            .create_user("sam", "Sam", Role::Viewer, "h", &actor, now)
            .await,
        Err(UserError::Exists(_))
    ));
    let (user, creds) = store
        .user_credentials("sam")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (user.role, user.mfa_enabled, creds.password_hash.as_str()),
        (Role::Security, false, "$argon2id$fake")
    );
    assert!(
        store
            .user_credentials("nobody")
            .await
            .expect("read")
            .is_none()
    );

    // Sessions: started by a sign-in step (audited in the same transaction), read with their
    // user, touched, completed by the second factor, ended by a password reset.
    let limits = LoginLimits {
        per_user: 5,
        per_ip: 20,
        since: now - TimeDelta::hours(1),
    };
    let from = Actor::new("sam", Some("192.0.2.7".into()));
    let Gate::Open(attempt) = store
        .open_attempt("sam", limits, &from, now)
        .await
        .expect("open")
    else {
        panic!("not throttled yet")
    };
    let session = NewSession {
        id_hash: "h1",
        user: &sam,
        csrf_token: "csrf1",
        mfa_verified: false,
        user_agent: Some("ua"),
    };
    store
        .sign_in(attempt, session, &from, serde_json::json!({}), now)
        .await
        .expect("session");
    let s = store.session("h1").await.expect("read").expect("exists");
    assert_eq!(
        (
            s.user.username.as_str(),
            s.csrf_token.as_str(),
            s.mfa_verified
        ),
        ("sam", "csrf1", false)
    );
    store
        .touch_session("h1", now + TimeDelta::minutes(5))
        .await
        .expect("touch");
    let Gate::Open(attempt) = store
        .open_attempt("sam", limits, &from, now)
        .await
        .expect("open")
    else {
        panic!("not throttled yet")
    };
    assert!(
        store
            .second_factor_given(
                attempt,
                "h1",
                &from,
                serde_json::json!({}),
                now + TimeDelta::minutes(6)
            )
            .await
            .expect("verify")
    );
    let s = store.session("h1").await.expect("read").expect("exists");
    assert!(s.mfa_verified);
    assert_eq!(s.last_seen_at, now + TimeDelta::minutes(6));
    let audited: Vec<String> = store
        .audit_log(Some("login."), 10, 0)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(audited, ["login.success", "login.password"]);
    store
        .set_password("sam", "new-hash", &actor, now)
        .await
        .expect("reset");
    assert!(
        store.session("h1").await.expect("read").is_none(),
        "a reset ends sessions"
    );

    // Failed sign-ins count since the last success, per user and per address: the sixth
    // attempt is refused before anything is checked.
    let later = now + TimeDelta::minutes(10);
    for _ in 0..5 {
        let Gate::Open(a) = store
            .open_attempt("sam", limits, &from, later)
            .await
            .expect("open")
        else {
            panic!("under the limit")
        };
        store
            .attempt_failed(a, &from, "login.failure", "user:sam", later)
            .await
            .expect("failed");
    }
    assert!(matches!(
        store
            .open_attempt("sam", limits, &from, later)
            .await
            .expect("open"),
        Gate::Throttled {
            failures_for_user: 5,
            failures_from_ip: 5
        }
    ));
    // Another account from the same address still may, up to the address's limit.
    let other = Actor::new("anonymous:kim", Some("192.0.2.7".into()));
    assert!(matches!(
        store
            .open_attempt("kim", limits, &other, later)
            .await
            .expect("open"),
        Gate::Open(_)
    ));
    // Once the lockout has passed, the account may try again.
    let after = LoginLimits {
        since: later + TimeDelta::seconds(1),
        ..limits
    };
    assert!(matches!(
        store
            .open_attempt("sam", after, &from, later + TimeDelta::minutes(20))
            .await
            .expect("open"),
        Gate::Open(_)
    ));

    // TOTP: steps are used once and in order; recovery codes once.
    store
        .set_totp_secret(sam.id, "SECRET")
        .await
        .expect("secret");
    store
        .enable_totp(sam.id, 100, &["c1".into(), "c2".into()], &actor, now)
        .await
        .expect("enable");
    assert!(
        !store.use_totp_step(sam.id, 100).await.expect("step"),
        "the enrolment code is spent"
    );
    assert!(store.use_totp_step(sam.id, 101).await.expect("step"));
    assert!(
        !store.use_totp_step(sam.id, 101).await.expect("step"),
        "replay"
    );
    assert!(
        !store.use_totp_step(sam.id, 99).await.expect("step"),
        "older"
    );
    assert!(store.use_recovery_code(sam.id, "c2").await.expect("code"));
    assert!(!store.use_recovery_code(sam.id, "c2").await.expect("code"));
    let user = store.user(sam.id).await.expect("read").expect("exists");
    assert!(user.mfa_enabled);
    assert_eq!(user.recovery_codes_left, 1);
    store.reset_totp("sam", &actor, now).await.expect("reset");
    assert!(
        !store
            .user(sam.id)
            .await
            .expect("read")
            .expect("exists")
            .mfa_enabled
    );

    // API tokens: found by hash while active and the user enabled.
    let id = store
        .create_api_token(sam.id, "ci", "tokhash", "trellis_abc", &actor, now)
        .await
        .expect("token");
    assert_eq!(
        store
            .api_token_user("tokhash", now)
            .await
            .expect("check")
            .map(|u| u.username),
        Some("sam".into())
    );
    assert_eq!(
        store.api_tokens(Some(sam.id)).await.expect("list")[0].last_used_at,
        Some(now)
    );
    assert!(
        !store
            .revoke_api_token(id, Some(sam.id + 1), &actor, now)
            .await
            .expect("revoke"),
        "not theirs"
    );
    assert!(
        store
            .revoke_api_token(id, Some(sam.id), &actor, now)
            .await
            .expect("revoke")
    );
    assert!(
        store
            .api_token_user("tokhash", now)
            .await
            .expect("check")
            .is_none()
    );
    let id2 = store
        .create_api_token(sam.id, "ci2", "tokhash2", "trellis_def", &actor, now)
        .await
        .expect("token");
    store
        .set_disabled("sam", true, &actor, now)
        .await
        .expect("disable");
    assert!(
        store
            .api_token_user("tokhash2", now)
            .await
            .expect("check")
            .is_none(),
        "disabling revokes tokens"
    );
    assert!(
        store
            .api_tokens(None)
            .await
            .expect("list")
            .iter()
            .find(|t| t.id == id2)
            .expect("listed")
            .revoked_at
            .is_some()
    );

    // A password reset, a second-factor reset and a role change each revoke the user's
    // tokens (a token never outlives the credentials or the rights it was made under).
    store
        .set_disabled("sam", false, &actor, now)
        .await
        .expect("enable");
    for (i, what) in ["password", "second factor", "role"]
        .into_iter()
        .enumerate()
    {
        let hash = format!("tokhash-{i}");
        store
            .create_api_token(sam.id, what, &hash, "trellis_x", &actor, now)
            .await
            .expect("token");
        assert!(
            store
                .api_token_user(&hash, now)
                .await
                .expect("check")
                .is_some()
        );
        match what {
            "password" => store
                .set_password("sam", "h2", &actor, now)
                .await
                .expect("reset"),
            "second factor" => store.reset_totp("sam", &actor, now).await.expect("reset"),
            _ => store
                .set_role("sam", Role::Viewer, &actor, now)
                .await
                .expect("role"),
        }
        assert!(
            store
                .api_token_user(&hash, now)
                .await
                .expect("check")
                .is_none(),
            "a {what} change revokes tokens"
        );
    }

    // Settings: set, replaced.
    assert_eq!(store.setting("mfa.required").await.expect("read"), None);
    store
        .set_setting("mfa.required", &json!({"all": true}), &actor, now)
        .await
        .expect("set");
    store
        .set_setting(
            "mfa.required",
            &json!({"all": false, "roles": ["admin"]}),
            &actor,
            now,
        )
        .await
        .expect("set");
    assert_eq!(
        store.setting("mfa.required").await.expect("read"),
        Some(json!({"all": false, "roles": ["admin"]}))
    );

    // The audit log has every change, newest first, with who and from where.
    let log = store.audit_log(None, 100, 0).await.expect("audit");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).rev().collect();
    assert_eq!(
        actions,
        [
            "user.add",
            "login.password",
            "login.success",
            "user.password",
            "login.failure",
            "login.failure",
            "login.failure",
            "login.failure",
            "login.failure",
            "login.throttled",
            "user.mfa.enable",
            "user.mfa.reset",
            "token.create",
            "token.revoke",
            "token.create",
            "user.disable",
            "user.enable",
            "token.create",
            "user.password",
            "token.create",
            "user.mfa.reset",
            "token.create",
            "user.role",
            "settings.change",
            "settings.change"
        ]
    );
    assert!(
        log.iter()
            .filter(|e| !e.action.starts_with("login."))
            .all(|e| e.actor == "root" && e.client_ip.as_deref() == Some("192.0.2.1"))
    );
    assert!(
        log.iter()
            .filter(|e| e.action.starts_with("login."))
            .all(|e| e.actor == "sam" && e.client_ip.as_deref() == Some("192.0.2.7"))
    );
    let tokens = store
        .audit_log(Some("token."), 100, 0)
        .await
        .expect("audit");
    assert_eq!(tokens.len(), 6);
    assert_eq!(store.audit_log(None, 2, 1).await.expect("page").len(), 2);
}

/// The attempt is recorded before the secret is checked, under a per-account lock: fifty
/// sign-in steps at once for one account get exactly the limit's worth of checks.
async fn fifty_parallel_guesses_get_five_checks(store: &Store) {
    use trellis::store::{Actor, Gate, LoginLimits};
    let now = base_time();
    let limits = LoginLimits {
        per_user: 5,
        per_ip: 1000,
        since: now - TimeDelta::hours(1),
    };
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let from = Actor::new("anonymous:sam", Some(format!("198.51.100.{i}")));
                match store
                    .open_attempt("sam", limits, &from, now)
                    .await
                    .expect("open")
                {
                    Gate::Open(attempt) => {
                        // The secret was wrong.
                        store
                            .attempt_failed(attempt, &from, "login.failure", "user:sam", now)
                            .await
                            .expect("failed");
                        true
                    }
                    Gate::Throttled { .. } => false,
                }
            })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        checked += usize::from(t.await.expect("task"));
    }
    assert_eq!(checked, 5, "checks allowed out of 50 parallel guesses");
    let audit = store
        .audit_log(Some("login."), 100, 0)
        .await
        .expect("audit");
    let count = |action: &str| audit.iter().filter(|a| a.action == action).count();
    assert_eq!((count("login.failure"), count("login.throttled")), (5, 45));
}

/// With the audit log unwritable, signing in, completing the second factor and signing out
/// all fail, and change nothing.
async fn a_session_change_without_its_audit_line_does_not_happen(store: &Store) {
    use trellis::auth::Role;
    use trellis::store::{Actor, Gate, LoginLimits, NewSession};
    let now = base_time();
    let actor = Actor::new("root", None);
    let sam = store
        .create_user("sam", "Sam", Role::Security, "$argon2id$fake", &actor, now)
        .await
        .expect("create");
    let limits = LoginLimits {
        per_user: 5,
        per_ip: 20,
        since: now - TimeDelta::hours(1),
    };
    let from = Actor::new("sam", Some("192.0.2.7".into()));
    let open = || async {
        match store
            .open_attempt("sam", limits, &from, now)
            .await
            .expect("open")
        {
            Gate::Open(a) => a,
            Gate::Throttled { .. } => panic!("throttled"),
        }
    };
    let session = |id_hash| NewSession {
        id_hash,
        user: &sam,
        csrf_token: "c",
        mfa_verified: false,
        user_agent: None,
    };
    let attempt = open().await;
    store
        .sign_in(attempt, session("kept"), &from, json!({}), now)
        .await
        .expect("sign in");
    let attempt = open().await;
    testing::execute_sql(store, "ALTER TABLE audit_log RENAME TO audit_log_away")
        .await
        .expect("rename");
    assert!(
        store
            .sign_in(attempt, session("new"), &from, json!({}), now)
            .await
            .is_err()
    );
    let attempt = open().await;
    assert!(
        store
            .second_factor_given(attempt, "kept", &from, json!({}), now)
            .await
            .is_err()
    );
    assert!(
        store
            .end_session("kept", &from, "logout", now)
            .await
            .is_err()
    );
    testing::execute_sql(store, "ALTER TABLE audit_log_away RENAME TO audit_log")
        .await
        .expect("rename back");
    assert!(
        store.session("new").await.expect("read").is_none(),
        "no session without its audit line"
    );
    let kept = store
        .session("kept")
        .await
        .expect("read")
        .expect("still there");
    assert!(!kept.mfa_verified, "not completed without its audit line");
}

async fn dashboard_reads_and_managed_exceptions(store: &Store) {
    use trellis::exceptions::Proposal;
    use trellis::store::{Actor, ManagedError, ManagedState};
    let at = |m: i64| base_time() + TimeDelta::minutes(m);
    // Two results of one control: hr:E00001 fails in both, hr:E00002 is fixed.
    let run1 = store
        .begin_run(Trigger::Schedule, 1, at(0))
        .await
        .expect("run");
    let ev = store
        .record_evidence(
            &run1,
            new_evidence(&[evidence("hr.people", json!({"x": 1}))]),
        )
        .await
        .expect("evidence");
    let mut first = outcome("c.one", Status::Fail, at(0));
    first.findings = vec![finding(0, 1, Status::Fail), finding(0, 2, Status::Fail)];
    first.checks[0].evidence = Some(0);
    store
        .record_result(&run1, &first, &ev)
        .await
        .expect("result");
    let run2 = store
        .begin_run(Trigger::Manual, 1, at(10))
        .await
        .expect("run");
    let mut second = outcome("c.one", Status::Fail, at(10));
    second.findings = vec![finding(0, 1, Status::Fail), finding(0, 2, Status::Pass)];
    store
        .record_result(&run2, &second, &[])
        .await
        .expect("result");

    let latest = store
        .latest_result("c.one")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (latest.run_id.as_str(), latest.finding_counts["fail"]),
        (run2.as_str(), 1)
    );
    let history = store
        .findings_history("c.one", 10, None)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].run_id, run2);
    let changes = trellis::store::finding_changes(&history);
    assert_eq!(changes.fixed, ["hr:E00002"]);
    assert!(changes.new_failures.is_empty());
    let before = store
        .findings_history("c.one", 10, Some(at(5)))
        .await
        .expect("history");
    assert_eq!(before.len(), 1);
    let about = store
        .resource_findings("hr:E00002")
        .await
        .expect("resource");
    assert_eq!(about.len(), 1);
    assert_eq!(
        (about[0].finding.status, about[0].evaluated_at),
        (Status::Pass, at(10))
    );
    assert_eq!(
        store.search_resources("E0000", 10).await.expect("search"),
        ["hr:E00001", "hr:E00002"]
    );
    assert_eq!(
        store.run_results(&run1).await.expect("results")[0].evidence_ids,
        ev
    );
    let meta = store.run_evidence(&run1).await.expect("evidence");
    assert_eq!(meta[0].probe, "hr.people");
    assert_eq!(
        store
            .evidence_meta(ev[0])
            .await
            .expect("meta")
            .expect("exists")
            .run_id,
        run1
    );

    // Managed exceptions: proposed, approved by someone else only, ended.
    let sam = Actor::new("sam", None);
    let eve = Actor::new("eve", None);
    let proposal = Proposal {
        control: "c.one".into(),
        resources: vec!["hr:E00001".into()],
        reason: "ordered".into(),
        owner: "sam".into(),
        ticket: "SEC-1".into(),
        expires_on: (base_time() + TimeDelta::days(30)).date_naive(),
    };
    let id = store
        .create_managed_exception(&proposal, &sam, at(20))
        .await
        .expect("create");
    let today = at(20).date_naive();
    assert!(
        store
            .active_managed_exceptions(today)
            .await
            .expect("active")
            .is_empty(),
        "pending"
    );
    assert!(matches!(
        store.approve_managed_exception(&id, &sam, at(21)).await,
        Err(ManagedError::SelfApproval(..))
    ));
    let approved = store
        .approve_managed_exception(&id, &eve, at(22))
        .await
        .expect("approve");
    assert_eq!(
        (approved.state(today), approved.approved_by.as_deref()),
        (ManagedState::Active, Some("eve"))
    );
    assert_eq!(approved.proposal, proposal);
    assert_eq!(
        store
            .active_managed_exceptions(today)
            .await
            .expect("active")
            .len(),
        1
    );
    assert!(
        store
            .active_managed_exceptions(proposal.expires_on.succ_opt().expect("day"))
            .await
            .expect("active")
            .is_empty(),
        "expired"
    );
    assert!(matches!(
        store.approve_managed_exception(&id, &eve, at(23)).await,
        Err(ManagedError::NotPending(..))
    ));
    let ended = store
        .end_managed_exception(&id, &sam, at(24))
        .await
        .expect("end");
    assert_eq!(ended.state(today), ManagedState::Ended);
    assert!(matches!(
        store.end_managed_exception(&id, &sam, at(25)).await,
        Err(ManagedError::AlreadyEnded(_))
    ));
    assert!(matches!(
        store
            .approve_managed_exception("MX-NONE", &eve, at(25))
            .await,
        Err(ManagedError::NotFound(_))
    ));
}

/// Two runs, each with evidence and results with findings, signed.
async fn sealed_fixture(store: &Store) -> trellis::integrity::Signer {
    let signer = signer();
    for (r, minutes) in [(0, 0), (1, 60)] {
        let at = base_time() + TimeDelta::minutes(minutes);
        let run = store
            .begin_run(Trigger::Schedule, 3, at)
            .await
            .expect("run");
        let ev = store
            .record_evidence(
                &run,
                new_evidence(&[
                    hashed(evidence("hr.people", json!({"run": r, "people": [1, 2]}))),
                    hashed(evidence("documents.policies", json!({"run": r}))),
                ]),
            )
            .await
            .expect("evidence");
        for (i, control) in ["a.one", "b.two", "c.three"].iter().enumerate() {
            let mut o = outcome(control, Status::Fail, at);
            o.findings = (0..3)
                .map(|k| {
                    finding(
                        0,
                        i * 10 + k,
                        if k == 0 { Status::Fail } else { Status::Pass },
                    )
                })
                .collect();
            o.checks[0].evidence = Some(i % 2);
            store.record_result(&run, &o, &ev).await.expect("result");
        }
        store
            .finish_run(&run, at, None, &signer)
            .await
            .expect("finish");
    }
    signer
}

/// Evidence with the true SHA-256 of its content (as the runner records it).
fn hashed(mut e: Evidence) -> Evidence {
    e.sha256 = trellis::integrity::sha256_hex(&serde_json::to_vec(&e.content).expect("json"));
    e
}

async fn problems(store: &Store, signer: &trellis::integrity::Signer) -> Vec<String> {
    let report = store.verify(&[signer.public_key()]).await.expect("verify");
    // Read in pages smaller than a run (and than a result's findings), it finds the same.
    assert_same_in_pages(store, signer, &report, &[(1, 1), (2, 1 << 20)]).await;
    report.problems.iter().map(ToString::to_string).collect()
}

/// `verify` reading `(rows, evidence bytes)` per page finds what it found reading its default
/// pages (`report`).
async fn assert_same_in_pages(
    store: &Store,
    signer: &trellis::integrity::Signer,
    report: &trellis::store::IntegrityReport,
    pages: &[(u64, i64)],
) {
    for &(page, evidence_bytes) in pages {
        let paged = store
            .verify_in_pages(&[signer.public_key()], page, evidence_bytes)
            .await
            .expect("verify in pages");
        assert_eq!(
            &paged, report,
            "pages of {page} rows, {evidence_bytes} bytes"
        );
    }
}

async fn sql(store: &Store, sql: &str) {
    let n = testing::execute_sql(store, sql).await.expect("sql");
    assert!(n > 0, "{sql} changed nothing");
}

async fn untouched_data_verifies(store: &Store) {
    let signer = sealed_fixture(store).await;
    let report = store.verify(&[signer.public_key()]).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        (report.evidence_rows, report.result_rows, report.runs_signed),
        (4, 6, 2)
    );
    // A page smaller than the rows (a result's three findings span pages, evidence is read
    // a row at a time for its size): the same report.
    assert_same_in_pages(
        store,
        &signer,
        &report,
        &[(1, 1), (2, 1), (4, 1 << 20), (5, 0)],
    )
    .await;
    // Another key's signatures are not accepted.
    let other = trellis::integrity::Signer::from_seed([4; 32]);
    let report = store.verify(&[other.public_key()]).await.expect("verify");
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report.problems[0]
            .message
            .contains("does not verify with any known key")
    );
}

async fn an_edited_evidence_row_is_named(store: &Store) {
    let signer = sealed_fixture(store).await;
    sql(store, "UPDATE evidence SET content = '{\"run\":0,\"people\":[1]}' WHERE id = (SELECT MIN(id) FROM evidence)").await;
    let p = problems(store, &signer).await;
    let first = store
        .run_evidence(&store.runs(10).await.expect("runs")[1].id)
        .await
        .expect("ev")[0]
        .id;
    assert_eq!(
        p[0],
        format!("evidence {first}: the row was edited: its content does not match its digest"),
        "{p:?}"
    );
}

async fn an_edited_finding_is_named(store: &Store) {
    let signer = sealed_fixture(store).await;
    sql(store, "UPDATE findings SET status = 'pass' WHERE resource = 'hr:E00010' AND id = (SELECT MAX(id) FROM findings WHERE resource = 'hr:E00010')").await;
    let p = problems(store, &signer).await;
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("control_results ")
            && p[0].ends_with("the row was edited: its content does not match its digest"),
        "{p:?}"
    );
}

async fn a_deleted_result_is_named(store: &Store) {
    let signer = sealed_fixture(store).await;
    let results = store
        .run_results(&store.runs(10).await.expect("runs")[1].id)
        .await
        .expect("results");
    let (deleted, next) = (results[1].id, results[2].id);
    sql(
        store,
        &format!("DELETE FROM control_results WHERE id = {deleted}"),
    )
    .await;
    let p = problems(store, &signer).await;
    assert_eq!(
        p[0],
        format!(
            "control_results {next}: the chain breaks between row {} and this row: a row between them was deleted, or rows were reordered",
            results[0].id
        ),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains(&format!("result row {deleted} of b.two was deleted"))),
        "{p:?}"
    );
}

async fn reordered_rows_are_named(store: &Store) {
    let signer = sealed_fixture(store).await;
    // Swap two results' contents (their ids stay in order): each is edited.
    let results = store
        .run_results(&store.runs(10).await.expect("runs")[1].id)
        .await
        .expect("results");
    let (a, b) = (results[0].id, results[1].id);
    sql(store, &format!("UPDATE control_results SET control_id = CASE WHEN id = {a} THEN 'b.two' ELSE 'a.one' END WHERE id IN ({a}, {b})")).await;
    let p = problems(store, &signer).await;
    assert!(
        p[0].starts_with(&format!("control_results {a}: the row was edited")),
        "{p:?}"
    );
}

async fn a_moved_row_is_named(store: &Store) {
    let signer = sealed_fixture(store).await;
    // An evidence row moved to the end of the table (a new id): the chain breaks where it was.
    let ids: Vec<i64> = store
        .run_evidence(&store.runs(10).await.expect("runs")[1].id)
        .await
        .expect("ev")
        .iter()
        .map(|e| e.id)
        .collect();
    sql(
        store,
        &format!("UPDATE evidence SET id = 99999 WHERE id = {}", ids[0]),
    )
    .await;
    let p = problems(store, &signer).await;
    assert!(
        p[0].starts_with(&format!(
            "evidence {}: the chain breaks between the start of the chain and this row",
            ids[1]
        )),
        "{p:?}"
    );
}

async fn deleting_the_newest_rows_is_found(store: &Store) {
    let signer = sealed_fixture(store).await;
    // The newest result goes, and the chain head is set back to hide it.
    let newest = store
        .run_results(&store.runs(10).await.expect("runs")[0].id)
        .await
        .expect("results")[2]
        .id;
    sql(
        store,
        &format!("DELETE FROM control_results WHERE id = {newest}"),
    )
    .await;
    let p = problems(store, &signer).await;
    assert!(
        p.iter().any(|m| m.contains("the newest rows were deleted")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains(&format!("result row {newest} of c.three was deleted"))),
        "{p:?}"
    );
}

async fn a_forged_manifest_is_found(store: &Store) {
    let signer = sealed_fixture(store).await;
    sql(store, "UPDATE runs SET manifest = REPLACE(manifest, '\"status\":\"fail\"', '\"status\":\"pass\"')").await;
    let p = problems(store, &signer).await;
    assert!(p.iter().all(|m| m.starts_with("runs ")), "{p:?}");
    // Both signatures fail; the rows no longer match their digests either.
    assert_eq!(
        p.iter()
            .filter(|m| m.contains("signature does not verify"))
            .count(),
        2,
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.ends_with("the run was edited: its row does not match its digest")),
        "{p:?}"
    );
}

/// The runs of [`runs_fixture`]: `a`, `b`, `c` closed (signed) in that order, `d` running.
struct Runs {
    a: String,
    b: String,
    c: String,
    d: String,
}

/// A step of tampering with the database.
enum Step {
    Sql(String),
    /// Every digest, chain hash and head recomputed, as anyone can without the key.
    RewriteChains,
}

/// Three closed runs (two from [`sealed_fixture`], then a third with one result) and one
/// still running with a result stored.
async fn runs_fixture(store: &Store) -> (trellis::integrity::Signer, Runs) {
    let signer = sealed_fixture(store).await;
    let mut done = store.runs(10).await.expect("runs");
    done.reverse();
    let at = base_time() + TimeDelta::minutes(120);
    let c = run_with_results(store, &[outcome("a.one", Status::Pass, at)]).await;
    store
        .finish_run(&c, at, None, &signer)
        .await
        .expect("finish");
    let d = run_with_results(store, &[outcome("b.two", Status::Pass, at)]).await;
    let runs = Runs {
        a: done[0].id.clone(),
        b: done[1].id.clone(),
        c,
        d,
    };
    (signer, runs)
}

/// What someone with database access but without the signing key can do to the runs, and
/// what `verify` must say (each a part of some problem). A run still running may lack a
/// manifest; every closed one (completed or interrupted) is signed and chained.
async fn tampered_runs_are_named(store: &Store) {
    struct Case {
        name: &'static str,
        steps: fn(&Runs) -> Vec<Step>,
        expect: fn(&Runs) -> Vec<String>,
    }
    use Step::*;
    let cases = [
        Case {
            name: "a healthy store, with a running run that has no manifest",
            steps: |_| vec![],
            expect: |_| vec![],
        },
        Case {
            name: "a stripped signature",
            steps: |r| {
                vec![Sql(format!(
                    "UPDATE runs SET manifest = NULL, signature = NULL, key_id = NULL WHERE id = '{}'",
                    r.b
                ))]
            },
            expect: |r| {
                vec![
                    format!("runs {}: the run was edited", r.b),
                    format!(
                        "runs {}: it is completed without a signed manifest: only a running run may lack one",
                        r.b
                    ),
                ]
            },
        },
        Case {
            name: "a stripped signature, the chains rewritten",
            steps: |r| {
                vec![
                    Sql(format!(
                        "UPDATE runs SET manifest = NULL, signature = NULL, key_id = NULL WHERE id = '{}'",
                        r.b
                    )),
                    RewriteChains,
                ]
            },
            expect: |r| {
                vec![
                    format!("runs {}: it is completed without a signed manifest", r.b),
                    format!(
                        "runs {}: the runs chain before it differs from what its manifest signed: run {} (number 2) was changed",
                        r.c, r.b
                    ),
                ]
            },
        },
        Case {
            name: "a stripped signature, the run reopened as running, the chains rewritten",
            steps: |r| {
                vec![
                    Sql(format!(
                        "UPDATE runs SET state = 'running', finished_at = NULL, manifest = NULL, signature = NULL, key_id = NULL, row_hash = '', chain_hash = '', chain_seq = NULL WHERE id = '{}'",
                        r.b
                    )),
                    RewriteChains,
                ]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: its manifest signs run {} (number 2) as the run before it in the runs chain, but the chain holds run {} (number 1) there: run {} was deleted or taken out of the chain",
                    r.c, r.b, r.a, r.b
                )]
            },
        },
        Case {
            name: "a deleted run",
            steps: |r| vec![Sql(format!("DELETE FROM runs WHERE id = '{}'", r.b))],
            expect: |r| {
                vec![
                    format!(
                        "runs {}: the runs chain goes from run {} (number 1) to this run, number 3: a closed run between them was deleted",
                        r.c, r.a
                    ),
                    format!("run {} was deleted or taken out of the chain", r.b),
                ]
            },
        },
        Case {
            name: "a deleted run, the chains rewritten",
            steps: |r| {
                vec![
                    Sql(format!("DELETE FROM runs WHERE id = '{}'", r.b)),
                    RewriteChains,
                ]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: its manifest signs run {} (number 2) as the run before it in the runs chain, but the chain holds run {} (number 1) there",
                    r.c, r.b, r.a
                )]
            },
        },
        Case {
            name: "the newest closed run deleted",
            steps: |r| vec![Sql(format!("DELETE FROM runs WHERE id = '{}'", r.c))],
            expect: |r| {
                vec![format!(
                    "runs {}: the runs chain ends at number 2, but its head records this run as number 3: the newest closed runs were deleted",
                    r.c
                )]
            },
        },
        Case {
            name: "an edited end",
            steps: |r| {
                vec![Sql(format!(
                    "UPDATE runs SET finished_at = started_at WHERE id = '{}'",
                    r.c
                ))]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: the run was edited: its row does not match its digest",
                    r.c
                )]
            },
        },
        Case {
            name: "an edited end, the chains rewritten",
            steps: |r| {
                vec![
                    Sql(format!(
                        "UPDATE runs SET finished_at = (SELECT started_at FROM runs WHERE id = '{}') WHERE id = '{}'",
                        r.a, r.b
                    )),
                    RewriteChains,
                ]
            },
            expect: |r| {
                vec![
                    format!(
                        "runs {}: the run differs from its signed manifest: finished_at is",
                        r.b
                    ),
                    format!("runs {}: the runs chain before it differs", r.c),
                ]
            },
        },
        Case {
            name: "an edited state, the chains rewritten",
            steps: |r| {
                vec![
                    Sql(format!(
                        "UPDATE runs SET state = 'interrupted', error = 'crashed' WHERE id = '{}'",
                        r.c
                    )),
                    RewriteChains,
                ]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: the run differs from its signed manifest: state is \"interrupted\", signed as \"completed\"; error is \"crashed\", signed as none",
                    r.c
                )]
            },
        },
        Case {
            name: "a stripped signature hidden behind a moved legacy boundary",
            steps: |r| {
                vec![
                    Sql(format!(
                        "UPDATE runs SET manifest = NULL, signature = NULL, key_id = NULL WHERE id = '{}'",
                        r.b
                    )),
                    RewriteChains,
                    Sql(format!(
                        "UPDATE chain_heads SET last_id = 2, last_key = '{b}', chain_hash = (SELECT chain_hash FROM runs WHERE id = '{b}') WHERE name = 'runs_legacy'",
                        b = r.b
                    )),
                ]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: its manifest signs the legacy boundary as number 0 of the runs chain, but the store records number 2: the boundary was moved",
                    r.c
                )]
            },
        },
        Case {
            name: "a result added to a closed run, the chains rewritten",
            steps: |r| {
                vec![
                    Sql(format!(
                        "INSERT INTO control_results (run_id, control_id, status, summary, evaluated_at, definition_sha256, checks, evidence_ids, finding_counts, exceptions, row_hash, chain_hash) \
                         SELECT run_id, 'z.forged', 'pass', summary, evaluated_at, definition_sha256, checks, evidence_ids, finding_counts, exceptions, '', '' FROM control_results WHERE run_id = '{}'",
                        r.c
                    )),
                    RewriteChains,
                ]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: 2 result row(s) name this run, but its manifest lists 1: rows were added to it after it was signed",
                    r.c
                )]
            },
        },
        Case {
            name: "a running run marked completed without a signature",
            steps: |r| {
                vec![Sql(format!(
                    "UPDATE runs SET state = 'completed', finished_at = started_at WHERE id = '{}'",
                    r.d
                ))]
            },
            expect: |r| {
                vec![format!(
                    "runs {}: it is completed but not in the runs chain and has no signed manifest",
                    r.d
                )]
            },
        },
        Case {
            name: "a closed run inserted outside Trellis",
            steps: |_| {
                vec![Sql("INSERT INTO runs (id, trigger, state, started_at, finished_at, controls_total, controls_done) SELECT 'forged', trigger, 'completed', started_at, finished_at, 0, 0 FROM runs LIMIT 1".into())]
            },
            expect: |_| {
                vec!["runs forged: it is completed but not in the runs chain and has no signed manifest".into()]
            },
        },
    ];
    for case in &cases {
        // A fresh database of the same backend for each case.
        let db = if store.backend_name() == "sqlite" {
            TestDb::sqlite().await
        } else {
            TestDb::postgres().await.expect("postgres")
        };
        let (signer, runs) = runs_fixture(&db.store).await;
        for step in (case.steps)(&runs) {
            match step {
                Sql(text) => sql(&db.store, &text).await,
                RewriteChains => testing::rewrite_chains(&db.store).await.expect("rewrite"),
            }
        }
        let report = db
            .store
            .verify(&[signer.public_key()])
            .await
            .expect("verify");
        let found: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        let expected = (case.expect)(&runs);
        if expected.is_empty() {
            assert!(found.is_empty(), "{}: {found:#?}", case.name);
            assert_eq!(
                (
                    report.runs_closed,
                    report.runs_signed,
                    report.runs_legacy,
                    report.runs_running
                ),
                (3, 3, 0, 1),
                "{}",
                case.name
            );
        }
        for e in &expected {
            assert!(
                found.iter().any(|f| f.contains(e.as_str())),
                "{}: no problem says {e:?}; found {found:#?}",
                case.name
            );
        }
        db.cleanup().await;
    }
}

/// A database from before runs were chained: a completed run signed with a version 1
/// manifest and an interrupted run that was never signed. At the next connection they are
/// chained once, as the legacy runs; runs closed later are signed and carry that boundary,
/// so the legacy runs cannot be changed unseen afterwards.
async fn runs_closed_before_the_runs_chain_are_its_legacy(store: &Store, url: &str) {
    let signer = signer();
    let old_signed = store
        .begin_run(Trigger::Schedule, 0, base_time())
        .await
        .expect("run");
    let old_interrupted = store
        .begin_run(Trigger::Startup, 2, base_time() + TimeDelta::minutes(5))
        .await
        .expect("run");
    // Closed as the version before runs chains did: state and end only, then a version 1
    // manifest for the completed one.
    sql(store, &format!("UPDATE runs SET state = 'completed', finished_at = started_at WHERE id = '{old_signed}'")).await;
    sql(store, &format!("UPDATE runs SET state = 'interrupted', finished_at = started_at WHERE id = '{old_interrupted}'")).await;
    let genesis = || trellis::integrity::ChainHead {
        last_id: 0,
        chain_hash: trellis::integrity::GENESIS.to_string(),
    };
    let v1 = trellis::integrity::RunManifest {
        version: 1,
        run_id: old_signed.clone(),
        trigger: "schedule".into(),
        started_at: trellis::integrity::time_text(base_time()),
        finished_at: trellis::integrity::time_text(base_time()),
        controls: vec![],
        evidence: vec![],
        evidence_chain: genesis(),
        results_chain: genesis(),
        closed: None,
    };
    testing::seal_run(store, &v1, &signer.sign(&v1.to_bytes()), &signer.key_id())
        .await
        .expect("seal");
    // What the migration leaves: the boundary pending.
    sql(
        store,
        "UPDATE chain_heads SET last_id = -1 WHERE name = 'runs_legacy'",
    )
    .await;

    let store = Store::connect(url).await.expect("reconnect");
    let new = run_with_results(&store, &[outcome("a.one", Status::Pass, base_time())]).await;
    store
        .finish_run(&new, base_time() + TimeDelta::hours(1), None, &signer)
        .await
        .expect("finish");
    let report = store.verify(&[signer.public_key()]).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        (report.runs_closed, report.runs_signed, report.runs_legacy),
        (3, 2, 1)
    );
    // Connecting again chains nothing more: the boundary is set once.
    let again = Store::connect(url).await.expect("reconnect");
    assert!(problems(&again, &signer).await.is_empty());

    // The unsigned legacy run edited, its chain rewritten: the newer signature holds it.
    sql(
        &store,
        &format!("UPDATE runs SET state = 'completed' WHERE id = '{old_interrupted}'"),
    )
    .await;
    testing::rewrite_chains(&store).await.expect("rewrite");
    let p = problems(&store, &signer).await;
    for expected in [
        format!(
            "runs {new}: the runs chain before it differs from what its manifest signed: run {old_interrupted} (number 2) was changed, or a run before it was"
        ),
        format!(
            "runs {old_interrupted}: the legacy boundary records run {old_interrupted} (number 2) but the chain holds this run there, or holds it changed"
        ),
    ] {
        assert!(p.contains(&expected), "{expected:?} not in {p:#?}");
    }
    // The version 1 signature holds its run's end too.
    sql(
        &store,
        &format!("UPDATE runs SET state = 'interrupted' WHERE id = '{old_interrupted}'"),
    )
    .await;
    sql(
        &store,
        &format!("UPDATE runs SET trigger = 'manual' WHERE id = '{old_signed}'"),
    )
    .await;
    testing::rewrite_chains(&store).await.expect("rewrite");
    let p = problems(&store, &signer).await;
    assert!(
        p.contains(&format!(
            "runs {old_signed}: the run differs from its signed manifest: trigger is \"manual\", signed as \"schedule\""
        )),
        "{p:?}"
    );
}

async fn rows_from_before_the_chains_are_sealed(store: &Store, url: &str) {
    let signer = sealed_fixture(store).await;
    // Rows whose hashes are empty (stored by a version without chains) are sealed at the next
    // connection, after the rows already chained.
    sql(store, "INSERT INTO runs (id, trigger, state, started_at, controls_total, controls_done) SELECT 'legacy', trigger, 'running', started_at, 0, 0 FROM runs LIMIT 1").await;
    sql(store, "INSERT INTO control_results (run_id, control_id, status, summary, evaluated_at, definition_sha256, checks, evidence_ids, finding_counts, exceptions, row_hash, chain_hash) SELECT 'legacy', control_id, status, summary, evaluated_at, definition_sha256, checks, evidence_ids, finding_counts, exceptions, '', '' FROM control_results LIMIT 1").await;
    let p = problems(store, &signer).await;
    assert!(
        p[0].ends_with("the row is not sealed (no digest): it was inserted outside Trellis"),
        "{p:?}"
    );
    let again = Store::connect(url).await.expect("reconnect");
    assert!(problems(&again, &signer).await.is_empty());
}

async fn migrations_are_idempotent(store: &Store, url: &str) {
    let run = run_with_results(store, &[outcome("a.one", Status::Pass, base_time())]).await;
    // Connecting again runs the migrator again: no error, no data lost.
    for _ in 0..2 {
        let again = Store::connect(url).await.expect("reconnect");
        assert_eq!(again.backend_name(), store.backend_name());
        let stored = again.run(&run).await.expect("read run").expect("run kept");
        assert_eq!(stored.controls_done, 1);
        assert_eq!(again.latest_results().await.expect("latest").len(), 1);
    }
}

async fn run_lifecycle(store: &Store) {
    let started = base_time();
    let run = store
        .begin_run(Trigger::Manual, 2, started)
        .await
        .expect("begin run");
    assert!(uuid::Uuid::parse_str(&run).is_ok_and(|u| u.get_version_num() == 7));

    let fresh = store.run(&run).await.expect("read").expect("exists");
    assert_eq!(fresh.id, run);
    assert_eq!(fresh.trigger, Trigger::Manual);
    assert_eq!(fresh.state, RunState::Running);
    assert_eq!(fresh.started_at, started);
    assert_eq!(fresh.finished_at, None);
    assert_eq!((fresh.controls_total, fresh.controls_done), (2, 0));
    assert_eq!(fresh.error, None);

    for (i, id) in ["a.one", "a.two"].into_iter().enumerate() {
        store
            .record_result(&run, &outcome(id, Status::Pass, started), &[])
            .await
            .expect("record result");
        let r = store.run(&run).await.expect("read").expect("exists");
        assert_eq!(r.controls_done, i + 1);
    }
    let finished = started + TimeDelta::seconds(90);
    store
        .finish_run(&run, finished, None, &signer())
        .await
        .expect("finish");
    let done = store.run(&run).await.expect("read").expect("exists");
    assert_eq!(done.state, RunState::Completed);
    assert_eq!(done.finished_at, Some(finished));
    assert_eq!(done.error, None);

    // A run that ended early keeps its error; every trigger round-trips.
    let mut ids = vec![run.clone()];
    for (i, trigger) in [Trigger::Schedule, Trigger::Startup, Trigger::Cli]
        .into_iter()
        .enumerate()
    {
        let at = started + TimeDelta::minutes(i as i64 + 1);
        let id = store.begin_run(trigger, 5, at).await.expect("begin run");
        store
            .finish_run(&id, at, Some("catalog failed to load"), &signer())
            .await
            .expect("finish");
        let r = store.run(&id).await.expect("read").expect("exists");
        assert_eq!(r.trigger, trigger);
        assert_eq!(r.error.as_deref(), Some("catalog failed to load"));
        ids.push(id);
    }

    // Newest first, limited.
    let listed: Vec<String> = store
        .runs(10)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert_eq!(store.runs(2).await.expect("list").len(), 2);
    assert!(store.runs(0).await.expect("list").is_empty());

    // Unknown runs.
    assert_eq!(store.run("no-such-run").await.expect("read"), None);
    let err = store
        .finish_run("no-such-run", finished, None, &signer())
        .await
        .expect_err("unknown run");
    assert!(matches!(err, StoreError::RunNotFound(_)), "{err}");
    assert_eq!(err.to_string(), "run no-such-run not found");
    let err = store
        .record_result("no-such-run", &outcome("a.one", Status::Pass, started), &[])
        .await
        .expect_err("unknown run");
    assert!(matches!(err, StoreError::RunNotFound(_)), "{err}");
    let err = store
        .record_evidence("no-such-run", new_evidence(&[evidence("p", json!(1))]))
        .await
        .expect_err("unknown run");
    assert!(matches!(err, StoreError::RunNotFound(_)), "{err}");
}

async fn evidence_round_trips(store: &Store) {
    let run = store
        .begin_run(Trigger::Cli, 0, base_time())
        .await
        .expect("begin run");
    assert!(
        store
            .record_evidence(&run, new_evidence(&[]))
            .await
            .expect("no evidence")
            .is_empty()
    );

    let cases = vec![
        evidence(
            "hr.employees",
            json!({ "employees": [{ "id": "E1", "mfa": true }, { "id": "E2", "mfa": null }] }),
        ),
        Evidence {
            content: serde_json::Value::Null,
            error: Some("GET https://hr.example/api: 503 Service Unavailable".into()),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            ..evidence("hr.failing", json!(null))
        },
        evidence("unicode", json!({ "name": "Zoë ✓ 日本", "quote": "\"'\\" })),
        evidence(
            "numbers",
            json!([0, -1, 1.5, 1e300, 9007199254740993_u64, i64::MIN]),
        ),
        evidence("scalar", json!("just a string")),
        Evidence {
            collected_at: t("2025-03-14T09:26:53.000001Z"),
            ..evidence("empty", json!({}))
        },
    ];
    let ids = store
        .record_evidence(&run, new_evidence(&cases))
        .await
        .expect("record");
    assert_eq!(ids.len(), cases.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    for (id, expected) in ids.iter().zip(&cases) {
        let stored = store.evidence(*id).await.expect("read").expect("exists");
        assert_eq!(&stored, expected, "evidence {id}");
    }
    // The export's page read gives the same, in id order, whatever order it is asked in.
    let mut asked = ids.clone();
    asked.reverse();
    let page = store.evidence_rows(&asked).await.expect("page");
    let expected: Vec<(i64, Evidence)> = ids.iter().copied().zip(cases.clone()).collect();
    assert_eq!(page, expected);
    assert!(store.evidence_rows(&[]).await.expect("page").is_empty());
    // A second batch gets new ids.
    let more = store
        .record_evidence(&run, new_evidence(&cases[..1]))
        .await
        .expect("record");
    assert!(more[0] > ids[ids.len() - 1]);
    assert_eq!(store.evidence(i64::MAX).await.expect("read"), None);
}

async fn result_with_findings_round_trips(store: &Store) {
    let run = store
        .begin_run(Trigger::Schedule, 1, base_time())
        .await
        .expect("begin run");
    let evidence_ids = store
        .record_evidence(
            &run,
            new_evidence(&[
                evidence("hr.employees", json!([1])),
                evidence("idp.users", json!([2])),
            ]),
        )
        .await
        .expect("record evidence");
    let statuses = [
        Status::Pass,
        Status::Fail,
        Status::Waived,
        Status::NotApplicable,
        Status::Error,
    ];
    let findings: Vec<Finding> = (0..25)
        .map(|i| finding(i % 2, i, statuses[i % statuses.len()]))
        .collect();
    let result = ControlOutcome {
        checks: vec![
            CheckOutcome {
                probe: "idp.users".into(),
                status: Status::Fail,
                summary: "3 of 10 users lack MFA".into(),
                error: None,
                evidence: Some(1),
                basis: None,
            },
            CheckOutcome {
                probe: "hr.employees".into(),
                status: Status::Error,
                summary: "could not evaluate".into(),
                error: Some("field `mfa` missing".into()),
                evidence: Some(0),
                basis: None,
            },
        ],
        findings: findings.clone(),
        ..outcome("iam.mfa", Status::Error, base_time())
    };
    store
        .record_result(&run, &result, &evidence_ids)
        .await
        .expect("record result");

    let stored = store.latest_findings("iam.mfa").await.expect("findings");
    assert_eq!(stored.len(), findings.len());
    let result_id = stored[0].control_result_id;
    for (s, f) in stored.iter().zip(&findings) {
        assert_eq!(s.run_id, run);
        assert_eq!(s.control_id, "iam.mfa");
        assert_eq!(s.control_result_id, result_id);
        assert_eq!(&s.clone().into_finding(), f);
    }
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        store
            .latest_findings("no.such.control")
            .await
            .expect("findings")
            .is_empty()
    );

    let latest = store.latest_results().await.expect("latest");
    assert_eq!(
        latest,
        vec![LatestResult {
            control_id: "iam.mfa".into(),
            status: Status::Error,
            summary: result.summary.clone(),
            evaluated_at: result.evaluated_at,
            last_success_at: None,
        }]
    );

    // A control without findings or evidence is fine too.
    store
        .record_result(&run, &outcome("net.tls", Status::Pass, base_time()), &[])
        .await
        .expect("record result");
    assert!(
        store
            .latest_findings("net.tls")
            .await
            .expect("findings")
            .is_empty()
    );
}

async fn result_with_ten_thousand_findings(store: &Store) {
    const N: usize = 10_500;
    let run = store
        .begin_run(Trigger::Schedule, 1, base_time())
        .await
        .expect("begin run");
    let findings: Vec<Finding> = (0..N)
        .map(|i| {
            let status = if i % 10 == 0 {
                Status::Fail
            } else {
                Status::Pass
            };
            finding(0, i, status)
        })
        .collect();
    let result = ControlOutcome {
        findings: findings.clone(),
        ..outcome("hr.offboarding", Status::Fail, base_time())
    };
    let started = Instant::now();
    store
        .record_result(&run, &result, &[])
        .await
        .expect("record result");
    let write = started.elapsed();
    let started = Instant::now();
    let stored = store
        .latest_findings("hr.offboarding")
        .await
        .expect("findings");
    eprintln!(
        "{}: {N} findings written in {write:?}, read in {:?}",
        store.backend_name(),
        started.elapsed()
    );
    assert_eq!(stored.len(), N);
    for (s, f) in stored.into_iter().zip(findings) {
        assert_eq!(s.into_finding(), f);
    }
    let run = store.run(&run).await.expect("read").expect("exists");
    assert_eq!(run.controls_done, 1);
}

async fn invalid_result_is_rejected_atomically(store: &Store) {
    let run = store
        .begin_run(Trigger::Schedule, 2, base_time())
        .await
        .expect("begin run");
    let ids = store
        .record_evidence(&run, new_evidence(&[evidence("p", json!(1))]))
        .await
        .expect("evidence");
    let mut bad = outcome("c.bad", Status::Pass, base_time());
    bad.checks[0].evidence = Some(1); // the run has only evidence index 0
    bad.findings = (0..10).map(|i| finding(0, i, Status::Pass)).collect();
    let err = store
        .record_result(&run, &bad, &ids)
        .await
        .expect_err("out-of-range evidence index");
    assert!(
        matches!(err, StoreError::EvidenceIndex { index: 1, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "control c.bad: check 0 refers to evidence index 1, but the run stored 1 evidence item(s)"
    );
    // Nothing was written.
    assert!(store.latest_results().await.expect("latest").is_empty());
    assert!(
        store
            .latest_findings("c.bad")
            .await
            .expect("findings")
            .is_empty()
    );
    let r = store.run(&run).await.expect("read").expect("exists");
    assert_eq!(r.controls_done, 0);
}

async fn latest_results_pick_newest_and_last_success(store: &Store) {
    use Status::*;
    let at = |minutes: i64| base_time() + TimeDelta::minutes(minutes);
    // (control, status, minutes after base): spread over runs, recorded out of order.
    let history: &[&[(&str, Status, i64)]] = &[
        // run 1
        &[
            ("a.ok", Pass, 0),
            ("b.broke", Pass, 0),
            ("c.never", Error, 0),
        ],
        // run 3 (recorded before run 2, but newer)
        &[
            ("a.ok", Fail, 20),
            ("b.broke", Error, 20),
            ("c.never", Error, 20),
        ],
        // run 2
        &[
            ("a.ok", Pass, 10),
            ("b.broke", Waived, 10),
            ("d.once", NotApplicable, 10),
        ],
        // a result with the same evaluated_at as the newest one: the later record wins
        &[("e.tie", Pass, 30), ("e.tie", Fail, 30)],
    ];
    for results in history {
        let outcomes: Vec<ControlOutcome> = results
            .iter()
            .map(|&(id, status, m)| ControlOutcome {
                findings: vec![finding(0, m as usize, status)],
                ..outcome(id, status, at(m))
            })
            .collect();
        run_with_results(store, &outcomes).await;
    }

    // control → (status, evaluated_at, last_success_at)
    let expected: BTreeMap<&str, (Status, i64, Option<i64>)> = BTreeMap::from([
        ("a.ok", (Fail, 20, Some(20))),
        ("b.broke", (Error, 20, Some(10))),
        ("c.never", (Error, 20, None)),
        ("d.once", (NotApplicable, 10, Some(10))),
        ("e.tie", (Fail, 30, Some(30))),
    ]);
    let latest = store.latest_results().await.expect("latest");
    let got: BTreeMap<&str, (Status, i64, Option<i64>)> = latest
        .iter()
        .map(|r| {
            let minutes = |t: DateTime<Utc>| (t - base_time()).num_minutes();
            (
                r.control_id.as_str(),
                (
                    r.status,
                    minutes(r.evaluated_at),
                    r.last_success_at.map(minutes),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Sorted by control id, exact times, summary of the newest result.
    let ids: Vec<&str> = latest.iter().map(|r| r.control_id.as_str()).collect();
    assert_eq!(ids, expected.keys().copied().collect::<Vec<_>>());
    assert_eq!(latest[0].evaluated_at, at(20));
    assert_eq!(latest[0].summary, "a.ok is fail");

    // latest_findings follows the newest result, not the last recorded one.
    for (control, (status, minutes, _)) in &expected {
        let findings = store.latest_findings(control).await.expect("findings");
        assert_eq!(findings.len(), 1, "{control}");
        assert_eq!(findings[0].status, *status, "{control}");
        assert_eq!(
            findings[0].resource,
            format!("hr:E{minutes:05}"),
            "{control}"
        );
    }
}

async fn mark_interrupted_runs_only_touches_running_runs(store: &Store) {
    let started = base_time();
    let finished = started + TimeDelta::minutes(5);
    let now = started + TimeDelta::hours(1);

    let completed = store
        .begin_run(Trigger::Schedule, 1, started)
        .await
        .expect("run");
    store
        .finish_run(&completed, finished, None, &signer())
        .await
        .expect("finish");
    let failed = store
        .begin_run(Trigger::Schedule, 1, started)
        .await
        .expect("run");
    store
        .finish_run(&failed, finished, Some("boom"), &signer())
        .await
        .expect("finish");
    let running_a = store
        .begin_run(Trigger::Startup, 3, started)
        .await
        .expect("run");
    let running_b = store
        .begin_run(Trigger::Manual, 3, started)
        .await
        .expect("run");
    store
        .record_result(&running_b, &outcome("a.one", Status::Pass, started), &[])
        .await
        .expect("record");

    assert_eq!(
        store
            .mark_interrupted_runs(now, &signer())
            .await
            .expect("mark"),
        2
    );

    // (run, state, finished_at, error, controls_done)
    let expected = [
        (&completed, RunState::Completed, finished, None, 0),
        (&failed, RunState::Completed, finished, Some("boom"), 0),
        (&running_a, RunState::Interrupted, now, None, 0),
        (&running_b, RunState::Interrupted, now, None, 1),
    ];
    for (id, state, finished_at, error, done) in expected {
        let r = store.run(id).await.expect("read").expect("exists");
        assert_eq!(r.state, state, "{id}");
        assert_eq!(r.finished_at, Some(finished_at), "{id}");
        assert_eq!(r.error.as_deref(), error, "{id}");
        assert_eq!(r.controls_done, done, "{id}");
    }

    // Already interrupted runs are not touched again.
    let later = now + TimeDelta::hours(1);
    assert_eq!(
        store
            .mark_interrupted_runs(later, &signer())
            .await
            .expect("mark"),
        0
    );
    let r = store.run(&running_a).await.expect("read").expect("exists");
    assert_eq!(r.finished_at, Some(now));

    // Interrupted runs are closed like finished ones: signed, with what they stored.
    for id in [&running_a, &running_b] {
        let (manifest, signature, key) = store.run_seal(id).await.expect("seal").expect("signed");
        assert!(
            signer()
                .public_key()
                .verify(manifest.as_bytes(), &signature)
        );
        assert_eq!(key, signer().key_id());
        let m: trellis::integrity::RunManifest = serde_json::from_str(&manifest).expect("manifest");
        let closed = m.closed.expect("version 2");
        assert_eq!(closed.state, "interrupted");
        assert_eq!(m.controls.len(), if id == &running_b { 1 } else { 0 });
    }
    let report = store
        .verify(&[signer().public_key()])
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        (report.runs_closed, report.runs_signed, report.runs_running),
        (4, 4, 0)
    );
    // Nothing more is recorded in a closed run, and it is not closed again.
    let err = store
        .record_result(&running_a, &outcome("a.late", Status::Pass, later), &[])
        .await
        .expect_err("closed");
    assert_eq!(
        err.to_string(),
        format!("run {running_a} is interrupted already: nothing more is recorded in a closed run")
    );
    assert!(matches!(
        store
            .record_evidence(&completed, new_evidence(&[evidence("p", json!(1))]))
            .await,
        Err(StoreError::RunClosed { .. })
    ));
    assert!(matches!(
        store.finish_run(&completed, later, None, &signer()).await,
        Err(StoreError::RunClosed { .. })
    ));
}

async fn timestamps_round_trip_exactly(store: &Store) {
    // Each stored through every timestamp column, then read back.
    let cases = [
        "1970-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999999Z",
        "2000-02-29T12:00:00.000001Z",
        "2025-03-14T09:26:53.5Z",
        "2025-03-14T09:26:53.123Z",
        "2025-03-14T09:26:53.123400Z",
        "2025-06-30T23:59:59.000010Z",
        "2038-01-19T03:14:08.654321Z",
        "9999-12-31T23:59:59.999999Z",
    ];
    for s in cases {
        let ts = t(s);
        let run = store
            .begin_run(Trigger::Cli, 1, ts)
            .await
            .expect("begin run");
        let ids = store
            .record_evidence(
                &run,
                new_evidence(&[Evidence {
                    collected_at: ts,
                    ..evidence("p", json!(null))
                }]),
            )
            .await
            .expect("evidence");
        let control = format!("ts.{s}");
        store
            .record_result(&run, &outcome(&control, Status::Pass, ts), &[])
            .await
            .expect("result");
        store
            .finish_run(&run, ts, None, &signer())
            .await
            .expect("finish");

        let r = store.run(&run).await.expect("read").expect("exists");
        assert_eq!((r.started_at, r.finished_at), (ts, Some(ts)), "{s}");
        let e = store.evidence(ids[0]).await.expect("read").expect("exists");
        assert_eq!(e.collected_at, ts, "{s}");
        let latest = store.latest_results().await.expect("latest");
        let l = latest
            .iter()
            .find(|l| l.control_id == control)
            .expect("result");
        assert_eq!((l.evaluated_at, l.last_success_at), (ts, Some(ts)), "{s}");
    }

    // Sub-microsecond precision is truncated, identically on every backend.
    let nanos = Utc.timestamp_opt(1_741_944_413, 123_456_789).unwrap();
    let run = store.begin_run(Trigger::Cli, 0, nanos).await.expect("run");
    let r = store.run(&run).await.expect("read").expect("exists");
    assert_eq!(
        r.started_at,
        Utc.timestamp_opt(1_741_944_413, 123_456_000).unwrap()
    );

    // Order follows time even when the stored fractions have different lengths.
    let base = t("2030-01-01T00:00:00Z");
    let steps = [
        TimeDelta::zero(),
        TimeDelta::microseconds(1),
        TimeDelta::microseconds(10),
        TimeDelta::milliseconds(1),
        TimeDelta::milliseconds(100),
        TimeDelta::milliseconds(120),
        TimeDelta::seconds(1),
        TimeDelta::seconds(1) + TimeDelta::microseconds(1),
    ];
    let mut expected = Vec::new();
    // Begin them newest first so insertion order cannot explain a correct answer.
    for step in steps.iter().rev() {
        let id = store
            .begin_run(Trigger::Schedule, 0, base + *step)
            .await
            .expect("run");
        expected.push(id);
    }
    // `runs` is newest first; the runs of the cases above fall outside this window.
    let window = base..base + TimeDelta::seconds(2);
    let listed: Vec<String> = store
        .runs(100)
        .await
        .expect("list")
        .into_iter()
        .filter(|r| window.contains(&r.started_at))
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, expected);
}

async fn concurrent_writers(store: &Store, url: &str) {
    // Two handles on the same database (two pools), several tasks each.
    let other = Store::connect(url).await.expect("second connection");
    let mut tasks = Vec::new();
    for (w, handle) in [store.clone(), other.clone(), store.clone(), other]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let run = handle
                .begin_run(Trigger::Schedule, 20, base_time())
                .await
                .expect("begin run");
            let ids = handle
                .record_evidence(&run, new_evidence(&[hashed(evidence("p", json!(w)))]))
                .await
                .expect("evidence");
            for c in 0..20 {
                let mut o = outcome(&format!("w{w}.c{c:02}"), Status::Pass, base_time());
                o.checks[0].evidence = Some(0);
                o.findings = (0..50).map(|i| finding(0, i, Status::Pass)).collect();
                handle.record_result(&run, &o, &ids).await.expect("record");
            }
            handle
                .finish_run(&run, base_time(), None, &signer())
                .await
                .expect("finish");
            run
        }));
    }
    for task in tasks {
        let run = task.await.expect("writer task");
        let r = store.run(&run).await.expect("read").expect("exists");
        assert_eq!((r.state, r.controls_done), (RunState::Completed, 20));
    }
    assert_eq!(store.latest_results().await.expect("latest").len(), 80);
    // Four writers appended to the hash chains at once: the chains are still whole.
    let report = store
        .verify(&[signer().public_key()])
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.evidence_rows, report.result_rows), (4, 80));
}

/// Environment variable telling [`crash_writer_child_process`] to act as the crashing writer.
const CRASH_CHILD_ENV: &str = "TRELLIS_STORE_TEST_CRASH_URL";
const CRASH_EXIT_CODE: i32 = 86;

/// Not a test on its own: when `TRELLIS_STORE_TEST_CRASH_URL` is set (by
/// [`crashed_writer_leaves_database_readable`], which runs this test binary again), this is
/// a writer that dies without warning in the middle of recording a large result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_writer_child_process() {
    let Ok(url) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let store = Store::connect(&url).await.expect("child connects");
    let run = store
        .begin_run(Trigger::Schedule, 3, base_time())
        .await
        .expect("begin run");
    let ids = store
        .record_evidence(&run, new_evidence(&[evidence("p", json!({"ok": true}))]))
        .await
        .expect("evidence");
    store
        .record_result(
            &run,
            &outcome("crash.done", Status::Pass, base_time()),
            &ids,
        )
        .await
        .expect("first result");
    let big = ControlOutcome {
        findings: (0..20_000).map(|i| finding(0, i, Status::Fail)).collect(),
        ..outcome("crash.partial", Status::Fail, base_time())
    };
    let writer = store.clone();
    tokio::spawn(async move { writer.record_result(&run, &big, &ids).await });
    // Die while that transaction is (most likely) in flight: no destructors, no rollback.
    tokio::time::sleep(Duration::from_millis(30)).await;
    std::process::exit(CRASH_EXIT_CODE);
}

async fn crashed_writer_leaves_database_readable(store: &Store, url: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let out = tokio::process::Command::new(exe)
        .args([
            "store::crash_writer_child_process",
            "--exact",
            "--nocapture",
        ])
        .env(CRASH_CHILD_ENV, url)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the crashing writer");
    assert_eq!(
        out.status.code(),
        Some(CRASH_EXIT_CODE),
        "child did not crash as planned:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A reader that was open during the crash, and a restarted process, both see a
    // consistent database.
    let restarted = Store::connect(url).await.expect("reconnect after crash");
    for reader in [store, &restarted] {
        let latest = reader.latest_results().await.expect("readable");
        assert!(latest.iter().any(|l| l.control_id == "crash.done"));
        let partial = reader
            .latest_findings("crash.partial")
            .await
            .expect("readable");
        let has_partial = latest.iter().any(|l| l.control_id == "crash.partial");
        // The interrupted transaction is all or nothing.
        assert_eq!(partial.len(), if has_partial { 20_000 } else { 0 });
    }
    assert_eq!(
        restarted
            .mark_interrupted_runs(Utc::now(), &signer())
            .await
            .expect("mark"),
        1
    );
    let runs = restarted.runs(10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Interrupted);
    assert!(runs[0].controls_done >= 1);
    // And it is writable again.
    run_with_results(
        &restarted,
        &[outcome("after.crash", Status::Pass, Utc::now())],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Backend-independent tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    assert_eq!(store.backend_name(), "sqlite");
    let run = run_with_results(&store, &[outcome("m.one", Status::Pass, base_time())]).await;
    // Clones share the same (single) in-memory database.
    let clone = store.clone();
    let r = clone.run(&run).await.expect("read").expect("exists");
    assert_eq!(r.controls_done, 1);
    assert_eq!(clone.latest_results().await.expect("latest").len(), 1);
}

#[tokio::test]
async fn connect_errors_are_clear_and_redacted() {
    let cases = [
        (
            "postgres://trellis:hunter2@127.0.0.1:notaport/trellis",
            "cannot connect to database postgres://trellis:***@127.0.0.1:notaport/trellis: ",
        ),
        (
            "sqlite:///nonexistent-dir/sub/trellis.db?mode=rwc",
            "cannot connect to database sqlite:///nonexistent-dir/sub/trellis.db?mode=rwc: ",
        ),
        (
            "mysql://root:hunter2@localhost/trellis",
            "unsupported database url mysql://root:***@localhost/trellis",
        ),
    ];
    for (url, prefix) in cases {
        let err = Store::connect(url).await.expect_err(url);
        // The message is complete: no source chain to print (and leak) besides it.
        assert!(std::error::Error::source(&err).is_none(), "{url}");
        let err = err.to_string();
        assert!(err.starts_with(prefix), "{url}: {err}");
        assert!(!err.contains("hunter2"), "{url}: {err}");
    }
}

/// The export's single pass: the period's id bounds, pages of every control's results in id
/// order, and a range of findings, exactly as stored (odd text, exceptions, no findings).
async fn export_reads_walk_a_period_in_id_order(store: &Store) {
    let day = |d: i64| base_time() + TimeDelta::days(d);
    let odd = "quote \" comma , newline \n tab \t ünï 🦀 <b>&";
    let mut expected = Vec::new();
    for d in 0..3 {
        let mut a = outcome("a.ctl", Status::Fail, day(d));
        a.findings = (0..3)
            .map(|i| Finding {
                message: format!("{odd} {i}"),
                actual: serde_json::json!({"note": odd, "n": [i, 2.5, -3e-7], "k": {"z": null}})
                    .into(),
                ..finding(0, i, if i == 0 { Status::Fail } else { Status::Pass })
            })
            .collect();
        a.exceptions = vec![trellis::model::ExceptionUse {
            id: "exc-1".into(),
            ticket: "SEC-1".into(),
            owner: "sec".into(),
            expires_on: chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
            status: "unused".into(),
            resources: vec![],
        }];
        // An error with no findings at all.
        let b = outcome("b.ctl", Status::Error, day(d) + TimeDelta::microseconds(1));
        run_with_results(store, &[a.clone(), b.clone()]).await;
        expected.push((a, b));
    }

    // The middle day only.
    let (lo, hi) = store
        .period_result_ids(day(1) - TimeDelta::hours(1), day(2) - TimeDelta::hours(1))
        .await
        .expect("bounds")
        .expect("the day has results");
    assert_eq!(hi - lo, 1, "two results on the middle day");
    assert!(
        store
            .period_result_ids(day(5), day(6))
            .await
            .expect("bounds")
            .is_none(),
        "no results, no bounds"
    );

    // Page by page (one result a page), then all at once: the same rows.
    let mut paged = Vec::new();
    let mut after = lo - 1;
    loop {
        let page = store.period_results_page(after, hi, 1).await.expect("page");
        let Some(last) = page.last() else { break };
        assert_eq!(page.len(), 1);
        after = last.result.id;
        paged.extend(page);
    }
    let whole = store
        .period_results_page(lo - 1, hi, 100)
        .await
        .expect("page");
    assert_eq!(paged, whole);
    let (a, b) = &expected[1];
    assert_eq!(whole.len(), 2);
    assert_eq!(whole[0].control_id, "a.ctl");
    assert_eq!(whole[0].result.status, Status::Fail);
    assert_eq!(whole[0].result.evaluated_at, a.evaluated_at);
    assert_eq!(whole[0].result.summary, a.summary);
    assert_eq!(whole[0].result.exceptions, a.exceptions);
    assert_eq!(whole[0].result.definition_sha256, a.definition_sha256);
    assert_eq!(whole[1].control_id, "b.ctl");
    assert_eq!(whole[1].result.status, Status::Error);
    assert_eq!(whole[1].result.evaluated_at, b.evaluated_at);
    assert!(whole[1].result.exceptions.is_empty());

    // The findings of exactly those results, in stored order.
    let findings = store
        .findings_of_result_range(lo, hi)
        .await
        .expect("findings");
    let got = findings.rows().expect("rows");
    assert!(got.iter().all(|g| g.result_id == lo), "{got:?}");
    assert_eq!(got.len(), a.findings.len());
    for (g, f) in got.iter().zip(&a.findings) {
        assert_eq!(g.resource, f.resource);
        assert_eq!(g.message, f.message);
        assert_eq!(g.status, f.status.as_str());
        // Embedded by the database as stored, byte for byte.
        assert_eq!(
            g.actual.get(),
            serde_json::to_string(&f.actual).expect("json")
        );
    }
    assert!(
        store
            .findings_of_result_range(hi, hi)
            .await
            .expect("findings")
            .rows()
            .expect("rows")
            .is_empty()
    );
}

/// What OSCAL coverage reads besides the export's pass: each control's newest evaluation
/// before a period, and a control's evaluations of a period in time order (ties in id
/// order), a page at a time — also when they were stored out of time order.
async fn a_period_s_evaluations_read_in_time_order_and_the_one_before_it(store: &Store) {
    let h = |n: i64| base_time() + TimeDelta::hours(n);
    // Stored in this order (ids), not in time order.
    run_with_results(
        store,
        &[
            outcome("a.one", Status::Pass, h(5)),
            outcome("a.one", Status::Fail, h(-2)),
            outcome("a.one", Status::Pass, h(1)),
            outcome("a.one", Status::Error, h(3)),
            outcome("b.two", Status::Pass, h(-1)),
            outcome("a.one", Status::Waived, h(3)),
            outcome("a.one", Status::Pass, h(-5)),
            outcome("a.one", Status::Pass, h(9)),
        ],
    )
    .await;
    let ids: Vec<String> = ["a.one", "b.two", "c.none"].map(String::from).to_vec();
    let before = store.evaluations_before(&ids, h(0)).await.expect("before");
    assert_eq!(before.len(), 2);
    assert_eq!(
        (before["a.one"].0, before["a.one"].2),
        (h(-2), Status::Fail)
    );
    assert_eq!(
        (before["b.two"].0, before["b.two"].2),
        (h(-1), Status::Pass)
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .control_evaluations("a.one", h(0), h(9), after, 2)
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let Some(&(t, id, _)) = page.last() else {
            break;
        };
        after = Some((t, id));
        seen.extend(page);
    }
    let times: Vec<(DateTime<Utc>, Status)> = seen.iter().map(|&(t, _, s)| (t, s)).collect();
    assert_eq!(
        times,
        [
            (h(1), Status::Pass),
            (h(3), Status::Error),
            (h(3), Status::Waived),
            (h(5), Status::Pass),
        ]
    );
    assert!(seen[1].1 < seen[2].1, "ties in id order");
}

/// The export's runs: listed without their manifests (the key id only for signed runs), the
/// manifests and signatures read a page at a time, exactly as sealed, in the order asked.
async fn a_period_lists_its_runs_and_reads_their_seals_a_page_at_a_time(store: &Store) {
    let signer = sealed_fixture(store).await;
    // A third run, still running: not signed yet.
    let unsigned = store
        .begin_run(Trigger::Manual, 0, base_time() + TimeDelta::minutes(120))
        .await
        .expect("run");
    let runs = store
        .runs_between(
            base_time() - TimeDelta::hours(1),
            base_time() + TimeDelta::hours(3),
        )
        .await
        .expect("runs");
    assert_eq!(runs.len(), 3);
    assert!(
        runs.windows(2)
            .all(|w| w[0].run.started_at <= w[1].run.started_at)
    );
    assert_eq!(runs[0].signed_by.as_deref(), Some(signer.key_id().as_str()));
    assert_eq!(runs[1].signed_by.as_deref(), Some(signer.key_id().as_str()));
    assert_eq!(runs[2].signed_by, None);
    assert_eq!(runs[2].run.id, unsigned);
    assert_eq!(runs[2].run.trigger, Trigger::Manual);
    // Only the first hour.
    let first = store
        .runs_between(base_time(), base_time() + TimeDelta::minutes(30))
        .await
        .expect("runs");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].run.id, runs[0].run.id);

    // Asked newest first, with the unsigned run and an unknown id: the signed ones, in order.
    let ids: Vec<String> = vec![
        runs[1].run.id.clone(),
        unsigned.clone(),
        "no-such-run".into(),
        runs[0].run.id.clone(),
    ];
    let seals = store.run_seals(&ids).await.expect("seals");
    assert_eq!(seals.len(), 2);
    for ((id, manifest, signature), run) in seals.iter().zip([&runs[1], &runs[0]]) {
        assert_eq!(id, &run.run.id);
        let (m, sig, key) = store.run_seal(id).await.expect("seal").expect("signed");
        assert_eq!((manifest, signature), (&m, &sig));
        assert_eq!(Some(key), run.signed_by);
        assert!(signer.public_key().verify(manifest.as_bytes(), signature));
    }
    assert!(store.run_seals(&[]).await.expect("none").is_empty());
}

/// Conditional requests' validators: saved after a run (replacing what the key held), read
/// whole before the next, and dropped once no run has used them for the retention period.
async fn http_validators_are_kept_refreshed_and_dropped_when_unused(store: &Store) {
    use std::sync::Arc;
    use trellis::probes::conditional::Validator;
    let v = |etag: &str, body: &str| {
        Arc::new(Validator {
            etag: Some(etag.into()),
            last_modified: None,
            link: Some(
                "<https://api.github.com/organizations/9919/repos?page=2>; rel=\"next\"".into(),
            ),
            body: body.into(),
        })
    };
    assert!(store.http_validators().await.unwrap().is_empty());
    let day1 = t("2026-11-01T00:00:00Z");
    // Enough rows to need several statements.
    let many: Vec<(String, Arc<Validator>)> = (0..2500)
        .map(|i| {
            (
                format!("github:https://api.github.com/repos/acme/r{i}"),
                v("\"a\"", "[]"),
            )
        })
        .collect();
    store.save_http_validators(&many, day1).await.unwrap();
    assert_eq!(store.http_validators().await.unwrap().len(), 2500);
    // A later run uses one of them, changed: it is replaced, and the rest age out.
    let key = "github:https://api.github.com/repos/acme/r7".to_string();
    let day9 = t("2026-11-09T00:00:00Z");
    store
        .save_http_validators(&[(key.clone(), v("\"b\"", "[1]"))], day9)
        .await
        .unwrap();
    let kept = store.http_validators().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, key);
    assert_eq!(kept[0].1, *v("\"b\"", "[1]"));
    // Nothing used: nothing changes but age.
    store.save_http_validators(&[], day9).await.unwrap();
    assert_eq!(store.http_validators().await.unwrap().len(), 1);
}

mod history;
mod notify;
mod visitors;

// ---------------------------------------------------------------------------------------------
// The run queue (issue 19)
// ---------------------------------------------------------------------------------------------

/// The runs' (evaluation) clock; leases use the wall clock.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

/// Queues a manual run of `controls`, one unit each; its id.
async fn queue_manual(store: &Store, controls: &[&str]) -> String {
    store
        .enqueue_run(
            Trigger::Manual,
            &ids(controls),
            &HashMap::new(),
            "x",
            t0(),
            &one_unit_each,
        )
        .await
        .unwrap()
        .run_id
        .unwrap()
}

/// One unit per control.
fn one_unit_each(ids: &[String]) -> Vec<Vec<String>> {
    ids.iter().map(|id| vec![id.clone()]).collect()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Each of `controls` due for `slot`.
fn due(controls: &[&str], slot: &str) -> HashMap<String, String> {
    controls
        .iter()
        .map(|c| (c.to_string(), slot.to_string()))
        .collect()
}

async fn queue_slots_are_claimed_once_and_running_controls_are_not_queued_twice(store: &Store) {
    let now = t0();
    let slot = "schedule:2026-11-23T09:00:00Z";
    let a = store
        .enqueue_run(
            Trigger::Schedule,
            &ids(&["a", "b"]),
            &due(&["a", "b"], slot),
            "one",
            now,
            &one_unit_each,
        )
        .await
        .unwrap();
    assert_eq!(a.queued, ids(&["a", "b"]));
    let run = a.run_id.clone().unwrap();
    // The same slot from another instance: taken.
    let b = store
        .enqueue_run(
            Trigger::Schedule,
            &ids(&["a", "b", "c"]),
            &due(&["a", "b", "c"], slot),
            "two",
            now,
            &one_unit_each,
        )
        .await
        .unwrap();
    assert_eq!(b.slot_taken, ids(&["a", "b"]));
    assert_eq!(b.queued, ids(&["c"]));
    // Another slot while a and b still run: claimed, but not queued again.
    let c = store
        .enqueue_run(
            Trigger::Schedule,
            &ids(&["a"]),
            &due(&["a"], "schedule:2026-11-23T09:01:00Z"),
            "two",
            now,
            &one_unit_each,
        )
        .await
        .unwrap();
    assert_eq!((c.in_flight, c.run_id), (ids(&["a"]), None));
    // Run now (no slot): a is running, d is not.
    let d = store
        .enqueue_run(
            Trigger::Manual,
            &ids(&["a", "d"]),
            &HashMap::new(),
            "two",
            now,
            &one_unit_each,
        )
        .await
        .unwrap();
    assert_eq!((d.in_flight, d.queued), (ids(&["a"]), ids(&["d"])));
    let claims = store.slot_claims().await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>, &str)> = claims
        .iter()
        .map(|c| {
            (
                c.control_id.as_str(),
                c.slot.as_str(),
                c.run_id.as_deref(),
                c.claimed_by.as_str(),
            )
        })
        .collect();
    let other = b.run_id.as_deref();
    assert_eq!(
        seen,
        [
            (
                "a",
                "schedule:2026-11-23T09:00:00Z",
                Some(run.as_str()),
                "one"
            ),
            ("a", "schedule:2026-11-23T09:01:00Z", None, "two"),
            (
                "b",
                "schedule:2026-11-23T09:00:00Z",
                Some(run.as_str()),
                "one"
            ),
            ("c", "schedule:2026-11-23T09:00:00Z", other, "two"),
        ]
    );
    let summary = store.run(&run).await.unwrap().unwrap();
    assert_eq!(
        (summary.state, summary.controls_total),
        (RunState::Running, 2)
    );
    // Controls due for different slots (a startup run: each its own last success) make one
    // run, each claimed for its own slot.
    let mut slots = due(&["e"], "startup:never@0");
    slots.extend(due(&["f"], "startup:2026-11-20T09:00:00.000000Z@0"));
    let e = store
        .enqueue_run(
            Trigger::Startup,
            &ids(&["e", "f"]),
            &slots,
            "one",
            now,
            &one_unit_each,
        )
        .await
        .unwrap();
    assert_eq!(e.queued, ids(&["e", "f"]));
    let again = store
        .enqueue_run(
            Trigger::Startup,
            &ids(&["e", "f"]),
            &slots,
            "two",
            now,
            &one_unit_each,
        )
        .await
        .unwrap();
    assert_eq!((again.slot_taken, again.run_id), (ids(&["e", "f"]), None));
}

async fn queue_units_are_claimed_once_each_and_expired_leases_are_taken_over(store: &Store) {
    let now = Utc::now();
    let lease = now + TimeDelta::seconds(30);
    let run = queue_manual(store, &["a", "b", "c", "d"]).await;
    // Four claimers at once get four different units (SKIP LOCKED on PostgreSQL).
    let claims = futures::future::join_all(
        ["w1", "w2", "w3", "w4"].map(|w| store.claim_unit(w, now, lease)),
    )
    .await;
    let mut units: Vec<i32> = claims
        .into_iter()
        .map(|c| c.unwrap().expect("a unit for each claimer").unit)
        .collect();
    units.sort_unstable();
    assert_eq!(units, [0, 1, 2, 3]);
    assert_eq!(store.claim_unit("w5", now, lease).await.unwrap(), None);
    let stats = store.queue_stats(now).await.unwrap();
    assert_eq!((stats.queued, stats.leases_held), (0, 4));
    // w1 works on; the others' leases run out (their instances died) and w5 takes one over.
    let later = lease + TimeDelta::seconds(1);
    let held = store.units_owned_by(&run, "w1").await;
    for unit in store.run_units(&run).await.unwrap() {
        if unit.owner.as_deref() == Some("w1") {
            continue;
        }
        assert_eq!(unit.attempts, 1);
    }
    let Lease::Held { cancel: false } = store
        .renew_lease(&run, held, "w1", later + TimeDelta::seconds(30))
        .await
        .unwrap()
    else {
        panic!("w1 lost its lease");
    };
    let taken = store
        .claim_unit("w5", later, later + TimeDelta::seconds(30))
        .await
        .unwrap()
        .expect("an expired unit");
    assert_ne!(taken.unit, held);
    assert_eq!(taken.attempts, 2);
    // Its former owner can neither renew nor end it.
    let former = store
        .run_units(&run)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.unit == taken.unit)
        .unwrap();
    assert_eq!(former.owner.as_deref(), Some("w5"));
    for w in ["w2", "w3", "w4"] {
        assert_eq!(
            store.renew_lease(&run, taken.unit, w, later).await.unwrap(),
            Lease::Lost
        );
        assert!(
            !store
                .end_unit(&run, taken.unit, w, UnitEnd::Done, None)
                .await
                .unwrap()
        );
    }
    // Released (shutdown): back to the queue at once, the claim not counted; claimable while
    // the other leases still hold.
    assert!(store.release_unit(&run, held, "w1").await.unwrap());
    let again = store
        .claim_unit("w6", now, later + TimeDelta::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.unit, again.attempts), (held, 1));
    // Nothing closes while units are open.
    assert_eq!(store.reap(later).await.unwrap(), vec![]);
}

async fn queue_units_whose_claimers_keep_dying_close_the_run_interrupted_with_why(store: &Store) {
    let run = queue_manual(store, &["a", "b"]).await;
    let mut now = Utc::now();
    // Unit 0 is done; unit 1's claimers die (their leases expire) MAX_ATTEMPTS times.
    let first = store
        .claim_unit("w", now, now + TimeDelta::seconds(1))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .end_unit(&run, first.unit, "w", UnitEnd::Done, None)
            .await
            .unwrap()
    );
    for attempt in 1..=trellis::store::MAX_ATTEMPTS {
        let c = store
            .claim_unit(&format!("dies-{attempt}"), now, now + TimeDelta::seconds(1))
            .await
            .unwrap()
            .expect("claimable again");
        assert_eq!(c.attempts, attempt);
        now += TimeDelta::seconds(2);
    }
    assert_eq!(store.claim_unit("w", now, now).await.unwrap(), None);
    let closable = store.reap(now).await.unwrap();
    assert_eq!(closable.len(), 1);
    assert_eq!(closable[0].state, RunState::Interrupted);
    let why = closable[0].error.clone().unwrap();
    assert!(why.contains("unit 1: claimed 3 times"), "{why}");
    store
        .close_run_as(&closable[0], t0(), &signer())
        .await
        .unwrap();
    let summary = store.run(&run).await.unwrap().unwrap();
    assert_eq!(summary.state, RunState::Interrupted);
    assert_eq!(summary.error.as_deref(), Some(why.as_str()));
    // Closed and signed once: the reaper finds nothing more, and the chain verifies.
    assert_eq!(store.reap(now).await.unwrap(), vec![]);
    let report = store.verify(&[signer().public_key()]).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

async fn queue_cancel_is_audited_and_closes_the_run_cancelled(store: &Store) {
    let run = queue_manual(store, &["a", "b"]).await;
    let now = Utc::now();
    let working = store
        .claim_unit("w", now, now + TimeDelta::seconds(30))
        .await
        .unwrap()
        .unwrap();
    let casey = trellis::store::Actor::new("casey", None);
    assert_eq!(
        store
            .request_cancel(&run, &casey, "cli", now)
            .await
            .unwrap(),
        trellis::store::CancelOutcome::Requested
    );
    assert_eq!(
        store
            .request_cancel(&run, &casey, "cli", now)
            .await
            .unwrap(),
        trellis::store::CancelOutcome::AlreadyRequested
    );
    assert_eq!(
        store
            .request_cancel("nope", &casey, "cli", now)
            .await
            .unwrap(),
        trellis::store::CancelOutcome::NotFound
    );
    // The queued unit is cancelled at once, and nothing more is claimed.
    assert_eq!(store.claim_unit("v", now, now).await.unwrap(), None);
    // The worker sees the request at its next renewal and stops.
    assert_eq!(
        store
            .renew_lease(&run, working.unit, "w", now + TimeDelta::seconds(30))
            .await
            .unwrap(),
        Lease::Held { cancel: true }
    );
    assert!(
        store
            .end_unit(&run, working.unit, "w", UnitEnd::Cancelled, None)
            .await
            .unwrap()
    );
    let closable = store.reap(now).await.unwrap();
    assert_eq!(closable.len(), 1);
    assert_eq!(closable[0].state, RunState::Cancelled);
    assert_eq!(closable[0].error.as_deref(), Some("cancelled by casey"));
    store
        .close_run_as(&closable[0], t0(), &signer())
        .await
        .unwrap();
    assert_eq!(
        store
            .request_cancel(&run, &casey, "cli", now)
            .await
            .unwrap(),
        trellis::store::CancelOutcome::Closed("cancelled".into())
    );
    let audit = store.audit_log(Some("run.cancel"), 10, 0).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target, format!("run:{run}"));
    assert_eq!(audit[0].detail["via"], "cli");
    assert_eq!(
        store
            .run(&run)
            .await
            .unwrap()
            .unwrap()
            .cancel_requested_by
            .as_deref(),
        Some("casey")
    );
}

/// An instance that lost its lease without noticing cannot store a second result of a control
/// in a queued run; runs outside the queue (`trellis check`, history imports) are not held to it.
async fn queue_runs_refuse_a_second_result_of_a_control(store: &Store) {
    let run = queue_manual(store, &["a"]).await;
    let result = outcome("a", Status::Pass, t0());
    store.record_result(&run, &result, &[]).await.unwrap();
    let again = store.record_result(&run, &result, &[]).await;
    assert!(
        matches!(again, Err(StoreError::DuplicateResult { ref control_id, .. }) if control_id == "a"),
        "{again:?}"
    );
    assert_eq!(store.run_results(&run).await.unwrap().len(), 1);
    let outside = store.begin_run(Trigger::Cli, 2, t0()).await.unwrap();
    store.record_result(&outside, &result, &[]).await.unwrap();
    store.record_result(&outside, &result, &[]).await.unwrap();
}

trait OwnedUnits {
    async fn units_owned_by(&self, run: &str, owner: &str) -> i32;
}

impl OwnedUnits for Store {
    /// The one unit of `run` that `owner` holds.
    async fn units_owned_by(&self, run: &str, owner: &str) -> i32 {
        let units = self.run_units(run).await.unwrap();
        let mine: Vec<i32> = units
            .iter()
            .filter(|u| u.owner.as_deref() == Some(owner))
            .map(|u| u.unit)
            .collect();
        assert_eq!(mine.len(), 1, "{units:?}");
        mine[0]
    }
}
