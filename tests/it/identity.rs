//! People, registers and exceptions together: the HR roster joined to AWS (moto) and GitHub
//! (wiremock) accounts — a leaver still holding an IAM user and an org membership, orphans, a
//! declared service account, one person with two accounts — with registers fresh and stale, and
//! one exception in force and one expired.

use crate::common::aws as common;
use crate::common::moto;

use chrono::{Duration, Utc};
use common::{findings, outcome, run};
use trellis::model::Status;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn users(logins: &[&str]) -> serde_json::Value {
    serde_json::Value::Array(
        logins
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::json!({
                    "login": l, "id": 7000 + i, "node_id": format!("U_{i}"),
                    "avatar_url": format!("https://avatars.githubusercontent.com/u/{}", 7000 + i),
                    "url": format!("https://api.github.com/users/{l}"),
                    "html_url": format!("https://github.com/{l}"),
                    "type": "User", "site_admin": false
                })
            })
            .collect(),
    )
}

/// GitHub answers `GET path` with `status` and `body`.
async fn answer(github: &MockServer, at: &str, status: u16, body: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(github)
        .await;
}

#[tokio::test]
async fn people_accounts_registers_and_exceptions() {
    let today = Utc::now().date_naive();
    let days_ago = |n: i64| (today - Duration::days(n)).to_string();
    let days_ahead = |n: i64| (today + Duration::days(n)).to_string();

    // AWS: IAM users in moto.
    let moto = moto::Moto::start().await;
    let iam = moto.iam();
    for user in [
        "dana.reyes",
        "ravi.shankar",
        "maria.lopez@sprout.example",
        "sam",
        "ci-deploy",
        "old-admin",
    ] {
        iam.create_user().user_name(user).send().await.unwrap();
    }
    // Sam's second account is tagged with his email.
    iam.create_user()
        .user_name("sam-admin")
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("email")
                .value("sam.okafor@sprout.example")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // GitHub: the organisation's members and outside collaborators.
    let github = MockServer::start().await;
    answer(
        &github,
        "/orgs/sprout/members",
        200,
        users(&["dreyes", "rshankar", "ghost-user"]),
    )
    .await;
    answer(
        &github,
        "/orgs/sprout/outside_collaborators",
        200,
        users(&["sprout-release-bot"]),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("roster.csv"),
        format!(
            "employee_id,name,email,github_login,aws_username,start_date,end_date\n\
             E1,Dana Reyes,dana.reyes@sprout.example,dreyes,dana.reyes,2021-03-01,\n\
             E2,Ravi Shankar,ravi.shankar@sprout.example,rshankar,ravi.shankar,2021-10-18,{left}\n\
             E3,Maria Lopez,maria.lopez@sprout.example,,,2024-05-06,\n\
             E4,Sam Okafor,sam.okafor@sprout.example,,sam,2022-09-12,\n",
            left = days_ago(20)
        ),
    )
    .unwrap();
    std::fs::create_dir(d.join("registers")).unwrap();
    std::fs::write(
        d.join("registers/service_accounts.yaml"),
        "service_accounts:\n  - {system: aws:acme, name: ci-deploy, owner: dana.reyes@sprout.example, purpose: CI deploys}\n  - {system: github, name: sprout-release-bot, owner: dana.reyes@sprout.example, purpose: releases}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("registers/access_reviews.yaml"),
        format!(
            "access_reviews:\n  - {{system: aws:acme, reviewed_on: {fresh}, reviewer: Dana Reyes}}\n  - {{system: github:sprout, reviewed_on: {stale}, reviewer: Dana Reyes}}\n",
            fresh = days_ago(10),
            stale = days_ago(120)
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("registers/vendors.yaml"),
        format!(
            "vendors:\n  - {{name: Fresh Co, purpose: p, location: US, subprocessor: true, risk_tier: high, soc2_report_reviewed_on: {fresh}, assessed_on: {fresh}}}\n  - {{name: Stale Co, purpose: p, location: US, subprocessor: true, risk_tier: high, soc2_report_reviewed_on: {stale}, assessed_on: {stale}}}\n",
            fresh = days_ago(30),
            stale = days_ago(400)
        ),
    )
    .unwrap();
    std::fs::create_dir(d.join("exceptions")).unwrap();
    std::fs::write(
        d.join("exceptions/access.yaml"),
        format!(
            "exceptions:\n  - id: EXC-1\n    control: removal-of-access\n    resources: [\"identity:github:sprout/ghost-user\"]\n    reason: Contractor account, being offboarded with the vendor.\n    owner: dana.reyes@sprout.example\n    ticket: SEC-1\n    expires_on: {valid}\n  - id: EXC-2\n    control: removal-of-access\n    resources: [\"identity:aws:acme/old-admin\"]\n    reason: Kept for the migration.\n    owner: dana.reyes@sprout.example\n    ticket: SEC-2\n    expires_on: {expired}\n",
            valid = days_ahead(30),
            expired = days_ago(3)
        ),
    )
    .unwrap();
    let token = d.join("github-token");
    std::fs::write(&token, "ghp_identityTest").unwrap();
    std::fs::write(
        d.join("aws-credentials"),
        "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let config = d.join("trellis.yaml");
    std::fs::write(
        &config,
        format!(
            "controls_dir: {controls}\nexceptions_dir: exceptions\nsources:\n  hr:\n    path: roster.csv\n  registers:\n    path: registers\n  aws:\n    accounts:\n      - name: acme\n        regions: [us-east-1]\n        endpoint_url: {moto}\n        credentials_file: aws-credentials\n  github:\n    api_url: {github}\n    orgs: [sprout]\n    token_file: github-token\n",
            controls = common::repo().join("controls").display(),
            moto = moto.url,
            github = github.uri()
        ),
    )
    .unwrap();
    let loaded = trellis::config::load(Some(&config)).unwrap();
    let report = run(
        &loaded,
        &[
            "removal-of-access",
            "unique-access-ids",
            "user-access-reviews",
            "vendor-due-diligence-review",
        ],
        Utc::now(),
    )
    .await;

    // removal-of-access, check 1: the leaver still holds an IAM user and an org membership.
    let removal = outcome(&report, "removal-of-access");
    assert_eq!(removal.status, Status::Fail);
    let left: Vec<&str> = findings(&report, "removal-of-access", Status::Fail)
        .iter()
        .filter(|f| f.check == 0)
        .map(|f| f.resource.as_str())
        .collect();
    assert_eq!(
        left,
        [
            "identity:aws:acme/ravi.shankar",
            "identity:github:sprout/rshankar"
        ]
    );
    let ravi = findings(&report, "removal-of-access", Status::Fail)[0];
    assert_eq!(ravi.actual.to_value()["days_since_termination"], 20);
    assert!(
        ravi.message
            .contains("Ravi Shankar <ravi.shankar@sprout.example> (E2)"),
        "{}",
        ravi.message
    );

    // Check 2, orphans: old-admin (its exception expired: reported), ghost-user (waived by an
    // exception in force); declared service accounts and matched people pass.
    let orphans = |status| -> Vec<String> {
        findings(&report, "removal-of-access", status)
            .iter()
            .filter(|f| f.check == 1)
            .map(|f| f.resource.clone())
            .collect()
    };
    assert_eq!(orphans(Status::Fail), ["identity:aws:acme/old-admin"]);
    assert_eq!(
        orphans(Status::Waived),
        ["identity:github:sprout/ghost-user"]
    );
    let passing = orphans(Status::Pass);
    for ok in [
        "identity:aws:acme/ci-deploy",
        "identity:aws:acme/dana.reyes",
        "identity:aws:acme/maria.lopez@sprout.example",
        "identity:github:sprout/sprout-release-bot",
        "identity:github:sprout/dreyes",
    ] {
        assert!(
            passing.iter().any(|p| p == ok),
            "{ok} not passing: {passing:?}"
        );
    }
    let old_admin = findings(&report, "removal-of-access", Status::Fail)
        .into_iter()
        .find(|f| f.resource.ends_with("old-admin"))
        .unwrap();
    assert!(
        old_admin.message.contains("(exception EXC-2 expired on"),
        "{}",
        old_admin.message
    );
    let uses: Vec<(&str, &str)> = removal
        .exceptions
        .iter()
        .map(|e| (e.id.as_str(), e.status.as_str()))
        .collect();
    assert_eq!(uses, [("EXC-1", "applied"), ("EXC-2", "expired")]);

    // unique-access-ids: Sam has two personal IAM users (one matched by its email tag).
    let unique = findings(&report, "unique-access-ids", Status::Fail);
    let sams: Vec<&str> = unique
        .iter()
        .filter(|f| f.resource.contains("identity:"))
        .map(|f| f.resource.as_str())
        .collect();
    assert_eq!(
        sams,
        ["identity:aws:acme/sam", "identity:aws:acme/sam-admin"]
    );
    assert_eq!(
        unique
            .iter()
            .find(|f| f.resource.ends_with("sam-admin"))
            .unwrap()
            .actual
            .to_value()["person_accounts_in_system"],
        2
    );

    // Access reviews: AWS reviewed 10 days ago, GitHub 120 days ago.
    let reviews = outcome(&report, "user-access-reviews");
    assert_eq!(reviews.status, Status::Fail);
    let stale: Vec<&str> = findings(&report, "user-access-reviews", Status::Fail)
        .iter()
        .map(|f| f.resource.as_str())
        .collect();
    assert_eq!(stale, ["access-review:github:sprout"]);
    assert!(
        findings(&report, "user-access-reviews", Status::Pass)
            .iter()
            .any(|f| f.resource == "access-review:aws:acme")
    );

    // Vendors: one SOC 2 review fresh, one stale.
    let vendors: Vec<(String, Status)> = outcome(&report, "vendor-due-diligence-review")
        .findings
        .iter()
        .map(|f| (f.resource.clone(), f.status))
        .collect();
    assert_eq!(
        vendors,
        [
            ("vendor:fresh-co".to_string(), Status::Pass),
            ("vendor:stale-co".to_string(), Status::Fail)
        ]
    );
}

/// The join's edge cases, GitHub only (as of a fixed day): logins compared ignoring case, a
/// leaving date still ahead, the one-day grace boundary, a rehire (two roster rows, one
/// email), one login claimed by two people, service accounts whose owner left or is unknown,
/// an organisation that cannot be listed, and exceptions (one matched ignoring case, one
/// expired that matches nothing any more).
#[tokio::test]
async fn identity_edge_cases() {
    let now = common::at("2026-11-23T12:00:00Z");
    let github = MockServer::start().await;
    answer(
        &github,
        "/orgs/acme/members",
        200,
        users(&[
            "anndev",
            "ben",
            "cat",
            "dan",
            "eve",
            "shared",
            "deploy-bot",
            "ops-bot",
            "release-bot",
        ]),
    )
    .await;
    answer(&github, "/orgs/acme/outside_collaborators", 200, users(&[])).await;
    answer(&github, "/orgs/broken/members", 403, serde_json::json!({
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/orgs/members#list-organization-members",
            "status": "403"
        })).await;
    answer(
        &github,
        "/orgs/broken/outside_collaborators",
        200,
        users(&[]),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("roster.csv"),
        "employee_id,name,email,github_login,start_date,end_date\n\
         E1,Ann Lee,ann@acme.example,AnnDev,2020-01-06,\n\
         E2,Ben Ode,ben@acme.example,ben,2020-01-06,2026-12-10\n\
         E3,Cat Ng,cat@acme.example,cat,2020-01-06,2026-11-22\n\
         E4,Dan Roe,dan@acme.example,dan,2020-01-06,2026-11-21\n\
         E5,Eve Park,eve@acme.example,eve,2019-02-04,2021-06-30\n\
         E9,Eve Park,EVE@acme.example,eve,2024-01-08,\n\
         E6,Fay Wu,fay@acme.example,shared,2021-01-04,\n\
         E7,Gus Bo,gus@acme.example,shared,2021-01-04,\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("registers")).unwrap();
    std::fs::write(
        d.join("registers/service_accounts.yaml"),
        "service_accounts:\n  - {system: github:acme, name: deploy-bot, owner: dan@acme.example, purpose: deploys}\n  - {system: github, name: ops-bot, owner: nobody@acme.example, purpose: ops}\n  - {system: github, name: release-bot, owner: Ann@acme.example, purpose: releases}\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("exceptions")).unwrap();
    std::fs::write(
        d.join("exceptions/access.yaml"),
        "exceptions:\n  - id: EXC-8\n    control: removal-of-access\n    resources: [\"IDENTITY:GITHUB:ACME/DEPLOY-BOT\"]\n    reason: New owner being appointed.\n    owner: ann@acme.example\n    ticket: SEC-8\n    expires_on: 2026-12-15\n  - id: EXC-9\n    control: removal-of-access\n    resources: [\"identity:github:acme/long-gone\"]\n    reason: Kept for the migration.\n    owner: ann@acme.example\n    ticket: SEC-9\n    expires_on: 2026-11-01\n",
    )
    .unwrap();
    std::fs::write(d.join("github-token"), "ghp_identityEdges").unwrap();
    let config = d.join("trellis.yaml");
    std::fs::write(
        &config,
        format!(
            "controls_dir: {controls}\nexceptions_dir: exceptions\nsources:\n  hr:\n    path: roster.csv\n  registers:\n    path: registers\n  github:\n    api_url: {github}\n    orgs: [acme, broken]\n    token_file: github-token\n",
            controls = common::repo().join("controls").display(),
            github = github.uri()
        ),
    )
    .unwrap();
    let loaded = trellis::config::load(Some(&config)).unwrap();
    let report = run(&loaded, &["removal-of-access", "unique-access-ids"], now).await;
    let removal = outcome(&report, "removal-of-access");
    let verdicts = |check: usize| -> Vec<(String, Status)> {
        removal
            .findings
            .iter()
            .filter(|f| f.check == check && f.status != Status::NotApplicable)
            .map(|f| (f.resource.replace("identity:github:", ""), f.status))
            .collect()
    };
    let v = |r: &str, s: Status| (r.to_string(), s);

    // Check 1, leavers: left yesterday is within the grace day; two days ago is not; a
    // leaving date ahead is not a leaver; Eve's current row wins over her old one; the
    // shared login cannot say whose it is; the unlisted organisation is an error.
    assert_eq!(
        verdicts(0),
        [
            v("broken", Status::Error),
            v("acme/anndev", Status::Pass),
            v("acme/ben", Status::Pass),
            v("acme/cat", Status::Pass),
            v("acme/dan", Status::Fail),
            v("acme/eve", Status::Pass),
            v("acme/shared", Status::Error),
        ]
    );
    let message = |check: usize, resource: &str| {
        removal
            .findings
            .iter()
            .find(|f| f.check == check && f.resource.ends_with(resource))
            .map(|f| f.message.clone())
            .unwrap()
    };
    assert!(
        message(0, "acme/shared")
            .contains("person_terminated is unknown: the account matches several people in the roster (E6, E7)"),
        "{}",
        message(0, "acme/shared")
    );
    assert!(
        message(0, ":broken").contains("could not be read"),
        "{}",
        message(0, ":broken")
    );
    assert!(message(0, "acme/eve").contains("Eve Park <EVE@acme.example> (E9)"));

    // Check 3, service accounts: the owner who left (waived, matched ignoring case) and the
    // owner nobody knows fail; the one whose owner is here passes.
    assert_eq!(
        verdicts(2),
        [
            v("broken", Status::Error),
            v("acme/deploy-bot", Status::Waived),
            v("acme/ops-bot", Status::Fail),
            v("acme/release-bot", Status::Pass),
        ]
    );
    // Every exception is accounted for: EXC-9 expired though nothing it names fails now.
    let uses: Vec<(&str, &str, usize)> = removal
        .exceptions
        .iter()
        .map(|e| (e.id.as_str(), e.status.as_str(), e.resources.len()))
        .collect();
    assert_eq!(uses, [("EXC-8", "applied", 1), ("EXC-9", "expired", 0)]);

    // unique-access-ids: the shared login fails; Eve's two rows are one person.
    let unique: Vec<String> = findings(&report, "unique-access-ids", Status::Fail)
        .iter()
        .map(|f| f.resource.clone())
        .collect();
    assert_eq!(unique, ["identity:github:acme/shared"]);
}
