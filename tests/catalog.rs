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
