//! The shipped catalog is seed 004's trust page: all 73 controls, in its 11 categories and its
//! order, with its titles and public descriptions — and none of them a constant pass.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (category, title, description) of every control of the seed page, in page order.
fn seed() -> Vec<(String, String, String)> {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/seeds/004-trust-page.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let categories = [
        "Availability",
        "Organizational Management",
        "Confidentiality",
        "Vulnerability Management",
        "Incident Response",
        "Risk Assessment",
        "Network Security",
        "Access Security",
        "Physical Security",
        "Communications",
    ];
    // Three lines of introduction; then the unnamed first block (Change Management), whose
    // first line is the Change Management Policy's description.
    let mut out = vec![(
        "Change Management".to_string(),
        "Change Management Policy".to_string(),
        lines[3].to_string(),
    )];
    let mut category = "Change Management";
    let mut seen = std::collections::HashSet::new();
    let mut i = 4;
    while i < lines.len() {
        // A category heading, unless it is a control named like one ("Risk Assessment").
        if categories.contains(&lines[i]) && seen.insert(lines[i]) {
            category = lines[i];
            i += 1;
            continue;
        }
        out.push((
            category.to_string(),
            lines[i].to_string(),
            lines[i + 1].to_string(),
        ));
        i += 2;
    }
    out
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_catalog_is_seed_004_in_its_order() {
    let seed = seed();
    assert_eq!(seed.len(), 73);
    let catalog =
        trellis::catalog::load(&repo().join("controls")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(catalog.len(), 73, "one control per seed entry");
    let config = trellis::config::parse(
        std::path::Path::new("config.example.yaml"),
        trellis::config::BUNDLED_EXAMPLE,
        &[],
    )
    .unwrap();
    let page: Vec<(String, String, String)> = catalog
        .categories(&config.trust_page.category_order)
        .into_iter()
        .flat_map(|(category, controls)| {
            controls
                .into_iter()
                .map(move |c| (category.to_string(), c.title.clone(), c.description.clone()))
        })
        .collect();
    for (i, ((sc, st, sd), (pc, pt, pd))) in seed.iter().zip(&page).enumerate() {
        assert_eq!((sc, st), (pc, pt), "entry {i}");
        assert_eq!(
            normalize(sd),
            normalize(pd),
            "{st}: public description differs from the seed"
        );
    }
    for c in catalog.controls() {
        assert_eq!(c.id, trellis::catalog::kebab(&c.title), "id of {}", c.title);
        assert!(c.public, "{} is not public", c.id);
        assert!(
            c.frameworks
                .iter()
                .any(|f| f.framework == "soc2" && f.version == "2017"),
            "{} maps to no SOC 2 criterion",
            c.id
        );
    }
}

/// Every check of every control reads its evidence: no assertion is a constant.
#[test]
fn no_control_is_a_constant_pass() {
    let catalog = trellis::catalog::load(&repo().join("controls")).unwrap();
    for c in catalog.controls() {
        assert!(!c.checks.is_empty(), "{}", c.id);
        for (i, check) in c.checks.iter().enumerate() {
            assert!(
                !check.assert.attributes.is_empty(),
                "{} check {i}: `{}` reads no attribute",
                c.id,
                check.assert.source
            );
        }
    }
}

/// Evidence kinds of a control's checks.
fn kinds(c: &trellis::catalog::Control) -> Vec<trellis::probes::EvidenceKind> {
    c.checks.iter().map(|ch| ch.probe.kind()).collect()
}

/// Every `claim: system` control reads the system itself; a policy's wording (`mentions`) is
/// never the only evidence of one. The controls the seed words as facts about systems claim
/// them.
#[test]
fn every_system_claim_has_a_system_check() {
    use trellis::catalog::Claim;
    use trellis::probes::EvidenceKind;
    let catalog = trellis::catalog::load(&repo().join("controls")).unwrap();
    let mut claims = std::collections::BTreeMap::new();
    for c in catalog.controls() {
        *claims.entry(c.claim.as_str()).or_insert(0) += 1;
        let kinds = kinds(c);
        match c.claim {
            Claim::System => {
                assert!(
                    kinds.contains(&EvidenceKind::System),
                    "{}: a system claim without a system check ({kinds:?})",
                    c.id
                );
            }
            Claim::Document => assert!(kinds.contains(&EvidenceKind::Document), "{}", c.id),
            Claim::Procedure => {}
        }
    }
    for id in [
        "encryption-in-transit",
        "high-availability-configuration",
        "uptime-and-availability-monitoring",
        "segregation-of-environments",
        "logging-and-monitoring-for-threats",
        "automated-alerting-for-security-events",
        "privacy-policy",
        "terms-of-service",
        "restricted-port-configurations",
        "encryption-at-rest",
    ] {
        let c = catalog.get(id).unwrap();
        assert_eq!(c.claim, Claim::System, "{id}");
    }
    // Every claim kind is used; each control declared one (a missing claim does not parse).
    assert_eq!(claims.values().sum::<i32>(), 73);
    assert_eq!(claims.len(), 3, "{claims:?}");
}

/// `check(claim, probes, expect)`: a control claiming `claim` with one check per probe is
/// accepted (`None`) or refused with a message at the claim's position containing `expect`.
#[test]
fn claims_are_held_to_their_checks() {
    fn check(claim: &str, probes: &[&str], expect: Option<&str>) {
        let checks: String = probes
            .iter()
            .map(|p| {
                let (with, assert) = match *p {
                    "documents.policies" => (
                        "\n    with: {title: P, mentions: [tls]}",
                        "approved_on != null",
                    ),
                    "hr.people" => ("", "background_check_date != null"),
                    "aws.iam.password_policy" => ("", "present"),
                    "http.tls" => ("", "!accepts_tls10"),
                    "registers.devices" => ("", "disk_encrypted"),
                    other => panic!("no fixture for {other}"),
                };
                format!("  - probe: {p}{with}\n    assert: \"{assert}\"\n")
            })
            .collect();
        let text = format!(
            "id: t\ntitle: T\ncategory: C\ndescription: d\nclaim: {claim}\nowner: o\n\
             severity: low\nchecks:\n{checks}"
        );
        let got = trellis::catalog::compile_file(std::path::Path::new("t.yaml"), &text);
        match (expect, got) {
            (None, Ok(_)) => {}
            (None, Err(d)) => panic!("{claim} {probes:?}: refused: {d:?}"),
            (Some(_), Ok(_)) => panic!("{claim} {probes:?}: accepted"),
            (Some(e), Err(d)) => {
                let text: Vec<String> = d.iter().map(ToString::to_string).collect();
                assert_eq!(text.len(), 1, "{text:?}");
                assert!(text[0].starts_with("t.yaml:5:8: claim: "), "{text:?}");
                assert!(text[0].contains(e), "{claim} {probes:?}: {text:?}");
            }
        }
    }
    let needs_system = Some("a `system` claim needs at least one check on a `system` probe");
    check("system", &["documents.policies"], needs_system);
    check("system", &["hr.people", "documents.policies"], needs_system);
    check("system", &["registers.devices"], needs_system);
    check("system", &["aws.iam.password_policy"], None);
    check("system", &["http.tls", "documents.policies"], None);
    check("document", &["documents.policies"], None);
    check(
        "document",
        &["hr.people"],
        Some("a `document` claim needs at least one check on a `document` probe"),
    );
    check("procedure", &["hr.people"], None);
    check("procedure", &["documents.policies"], None);
    check(
        "procedure",
        &["registers.devices", "aws.iam.password_policy"],
        None,
    );
    // The message names what the checks do read.
    check(
        "system",
        &["documents.policies"],
        Some("documents.policies (document)"),
    );
    // A claim is required, and only the three kinds exist.
    let missing = "id: t\ntitle: T\ncategory: C\ndescription: d\nowner: o\nseverity: low\n\
                   checks:\n  - probe: hr.people\n    assert: \"background_check_date != null\"\n";
    let err = trellis::catalog::compile_file(std::path::Path::new("t.yaml"), missing).unwrap_err()
        [0]
    .to_string();
    assert!(err.contains("missing field `claim`"), "{err}");
    let wrong = missing.replace("owner: o", "claim: vibes\nowner: o");
    let err = trellis::catalog::compile_file(std::path::Path::new("t.yaml"), &wrong).unwrap_err()
        [0]
    .to_string();
    assert!(
        err.starts_with("t.yaml:5:8: claim: unknown variant `vibes`"),
        "{err}"
    );
}

/// Every probe of the registry can be named on the public page by what it reads.
#[test]
fn every_probe_has_public_words_for_what_it_reads() {
    use trellis::probes::EvidenceKind;
    for p in trellis::probes::REGISTRY {
        match p.kind() {
            EvidenceKind::System => {
                assert!(
                    !trellis::web::probe_systems(p.name()).is_empty(),
                    "{}",
                    p.name()
                )
            }
            EvidenceKind::Record => {
                assert!(
                    trellis::web::probe_records(p.name()).is_some(),
                    "{}",
                    p.name()
                )
            }
            EvidenceKind::Document => {}
        }
    }
}
