//! Checks the architecture invariants of ARCHITECTURE.md that a grep can check.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Lines of code (comments stripped) of every file under `src/` whose path matches.
fn files_where(pred: impl Fn(&Path) -> bool) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .filter(|p| pred(p.strip_prefix(src()).unwrap_or(p)))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (p, code)
        })
        .collect()
}

/// Whether `code` mentions `needle`; a needle that is a type name (`Store`) matches only as
/// a whole identifier (not inside `RootCertStore`), others anywhere (`aws_sdk_` prefixes).
fn mentions(code: &str, needle: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    if !(needle.starts_with(char::is_uppercase) && needle.chars().all(ident)) {
        return code.contains(needle);
    }
    code.match_indices(needle).any(|(i, _)| {
        !code[..i].chars().next_back().is_some_and(ident)
            && !code[i + needle.len()..].chars().next().is_some_and(ident)
    })
}

fn assert_none_mention(files: &[(PathBuf, String)], needles: &[&str], rule: &str) {
    assert!(!files.is_empty(), "no files matched for rule: {rule}");
    for (path, code) in files {
        for needle in needles {
            assert!(
                !mentions(code, needle),
                "{rule}: {} mentions `{needle}`",
                path.display()
            );
        }
    }
}

#[test]
fn only_the_store_imports_sea_orm() {
    let others = files_where(|p| !p.starts_with("store"));
    assert_none_mention(
        &others,
        &["sea_orm", "sea-orm", "migration::"],
        "only src/store imports sea_orm",
    );
}

#[test]
fn probes_never_write_the_store() {
    let probes = files_where(|p| p.starts_with("probes"));
    assert_none_mention(
        &probes,
        &["crate::store", "store::", "Store"],
        "probes never touch the store",
    );
}

#[test]
fn evaluation_does_no_io() {
    let eval = files_where(|p| p == Path::new("evaluate.rs"));
    assert_none_mention(
        &eval,
        &[
            "std::fs",
            "tokio::",
            "std::net",
            "std::process",
            "crate::store",
            "Utc::now",
            "SystemTime",
            "Instant::now",
            "reqwest",
            "std::env",
        ],
        "evaluation does no I/O",
    );
}

#[test]
fn web_never_calls_probes() {
    let web = files_where(|p| p.starts_with("web"));
    assert_none_mention(
        &web,
        &["crate::probes", "crate::runner", ".collect(&"],
        "web never calls probes",
    );
}

#[test]
fn only_the_aws_probes_use_the_aws_sdk() {
    let others = files_where(|p| !p.starts_with("probes/aws"));
    assert_none_mention(
        &others,
        &["aws_sdk_", "aws_config", "aws_runtime", "aws_smithy"],
        "only src/probes/aws talks to AWS",
    );
}

#[test]
fn only_the_github_probes_use_octocrab() {
    let others = files_where(|p| !p.starts_with("probes/github"));
    assert_none_mention(
        &others,
        &["octocrab"],
        "only src/probes/github talks to GitHub",
    );
}
