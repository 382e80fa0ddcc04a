//! `documents.policies`: policy documents kept as Markdown with YAML front matter.
//!
//! ```markdown
//! ---
//! title: Information Security Policy
//! version: "3.1"
//! owner: Security
//! approved_by: Jane Doe (CEO)
//! approved_on: 2026-03-01
//! review_interval: 1y
//! ---
//! # Information Security Policy
//! ...
//! ```
//! A document whose front matter is malformed is an `error` finding naming file:line:col; the
//! other documents are still evaluated. A folder that is missing or unreadable is an `error`
//! for every check reading it (an empty folder is no documents). An `approved_on` after the
//! run is unknown, and so are `next_review_due` and `overdue` (the date rule,
//! [`super::dates`]): a policy approved next month is not current. `trellis validate` reads
//! the folder with the same code ([`read_folder`], [`review`]).

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Attribute, Collected, Probe, ProbeContext, ProbeError, Resource, dates};
use crate::diag::{Diagnostic, YamlIndex};

pub struct Policies;

/// Parameters of `documents.policies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesParams {
    /// Only the document with this title (case-insensitive); all documents when absent.
    #[serde(default)]
    pub title: Option<String>,
    /// Phrases the document must contain, as whole words (case and punctuation ignored:
    /// `lessons learned` matches "Lessons-learned" but `track` does not match "racetrack" or
    /// "tracked"); a trailing `*` matches any ending of the last word (`notif*` matches
    /// "notify" and "notification"). The title heading does not count. Those it lacks are
    /// listed in `missing_mentions`.
    #[serde(default)]
    pub mentions: Vec<String>,
}

/// The front matter of a policy document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    title: String,
    version: Option<String>,
    owner: Option<String>,
    approved_by: Option<String>,
    approved_on: Option<NaiveDate>,
    /// How often the document must be reviewed (`1y`, `6months`).
    review_interval: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The file's path.
    path: PathBuf,
    /// Its name within the folder.
    file: String,
    result: Result<Parsed, Diagnostic>,
}

/// A document whose front matter parsed.
#[derive(Debug, Clone)]
struct Parsed {
    front: FrontMatter,
    body: Body,
    /// Where `approved_on` is in the file (line, column), for `validate`.
    approved_on_at: (u64, u64),
}

/// A document's body, as far as checks go.
#[derive(Debug, Clone)]
struct Body {
    words: usize,
    /// The text without its title heading, as [`plain`] words between spaces
    /// (` lessons learned review `), for `mentions`.
    text: String,
}

impl Body {
    fn new(text: &str) -> Body {
        // The `# Title` heading repeats the title: it is not where a policy says anything.
        let mut titled = false;
        let content: Vec<&str> = text
            .lines()
            .filter(|line| {
                let title = !titled && line.starts_with("# ");
                titled |= title;
                !title
            })
            .collect();
        Body {
            words: text
                .split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .count(),
            text: format!(" {} ", plain(&content.join("\n"))),
        }
    }

    /// Whether the body mentions `phrase` (whole words; a trailing `*` leaves the last word
    /// open-ended).
    fn mentions(&self, phrase: &str) -> bool {
        let words = plain(phrase);
        if words.is_empty() {
            return true;
        }
        if phrase.trim_end().ends_with('*') {
            self.text.contains(&format!(" {words}"))
        } else {
            self.text.contains(&format!(" {words} "))
        }
    }
}

/// Lowercase words only, single-spaced: `Lessons-learned review,` → `lessons learned review`
/// (so a mention matches whatever the punctuation).
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Probe for Policies {
    const NAME: &'static str = "documents.policies";
    const SOURCE: &'static str = "policies";
    const KIND: super::EvidenceKind = super::EvidenceKind::Document;
    const SUMMARY: &'static str =
        "Policy documents (Markdown with YAML front matter), one resource per document.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("title", String, "document title from the front matter"),
        attr!("version", String, "document version, null if absent"),
        attr!("owner", String, "accountable owner, null if absent"),
        attr!(
            "approved_by",
            String,
            "who approved the current version, null if absent"
        ),
        attr!(
            "approved_on",
            Date,
            "when the current version was approved, null if absent"
        ),
        attr!("review_interval_days", Int, "review interval in days"),
        attr!(
            "next_review_due",
            Date,
            "approved_on + review interval, null if never approved"
        ),
        attr!(
            "overdue",
            Bool,
            "never approved, or next_review_due is before today"
        ),
        attr!("path", String, "file name within the policies folder"),
        attr!("word_count", Int, "words in the document body"),
        attr!(
            "missing_mentions",
            List,
            "the `mentions` parameter's phrases the body does not contain (case-insensitive)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: documents.policies
with: {title: Information Security Policy}
require_resources: true
assert: approved_by != null && !overdue && word_count >= 150
"#;

    type Params = PoliciesParams;

    async fn collect(ctx: &ProbeContext, params: &PoliciesParams) -> Result<Collected, ProbeError> {
        let source = ctx
            .sources
            .policies
            .as_ref()
            .ok_or(ProbeError::NotConfigured("policies"))?;
        let dir = ctx.resolve_path(&source.path);
        let docs = ctx
            .cache
            .get_or_fetch(&format!("policies:{}", dir.display()), async {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    read_folder(&dir).map_err(|e| {
                        ProbeError::Io(format!(
                            "cannot read policies folder {}: {e}",
                            dir.display()
                        ))
                    })
                })
                .await
                .map_err(|e| ProbeError::Io(format!("internal: {e}")))?
            })
            .await?;
        let today = ctx.now.date_naive();
        let mut resources = Vec::new();
        for doc in docs.iter() {
            let resource = match &doc.result {
                Ok(parsed) => {
                    if let Some(want) = &params.title
                        && !parsed.front.title.trim().eq_ignore_ascii_case(want.trim())
                    {
                        continue;
                    }
                    describe(doc, &parsed.front, &parsed.body, &params.mentions, today)
                }
                Err(e) => {
                    // Malformed documents can't be matched by title; they count for every
                    // check that reads the folder, so the problem is seen.
                    Resource {
                        id: format!("policy:{}", doc.file),
                        name: format!("policy document {}", doc.file),
                        attributes: Default::default(),
                        error: Some(e.to_string()),
                        unknown: Default::default(),
                        scope: false,
                    }
                }
            };
            resources.push(resource);
        }
        let raw = json!({
            "source": "policies",
            "documents": resources.iter().map(|r| json!({"id": r.id, "attributes": r.attributes, "error": r.error})).collect::<Vec<_>>(),
        })
        .into();
        Ok(Collected { resources, raw })
    }
}

fn describe(
    doc: &Document,
    fm: &FrontMatter,
    body: &Body,
    mentions: &[String],
    today: NaiveDate,
) -> Resource {
    let interval_days = crate::duration::parse(&fm.review_interval)
        .map(|d| d.num_days())
        .unwrap_or(0);
    let next_due = fm
        .approved_on
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(interval_days)));
    let overdue = next_due.is_none_or(|d| d < today);
    let s = |v: &Option<String>| {
        v.clone()
            .filter(|s| !s.trim().is_empty())
            .map_or(Value::Null, Value::String)
    };
    let date = |d: Option<NaiveDate>| d.map_or(Value::Null, |d| Value::String(d.to_string()));
    let mut attributes = serde_json::Map::new();
    attributes.insert("title".into(), Value::String(fm.title.trim().to_string()));
    attributes.insert("version".into(), s(&fm.version));
    attributes.insert("owner".into(), s(&fm.owner));
    attributes.insert("approved_by".into(), s(&fm.approved_by));
    attributes.insert("approved_on".into(), date(fm.approved_on));
    attributes.insert("review_interval_days".into(), Value::from(interval_days));
    attributes.insert("next_review_due".into(), date(next_due));
    attributes.insert("overdue".into(), Value::Bool(overdue));
    attributes.insert("path".into(), Value::String(doc.file.clone()));
    attributes.insert("word_count".into(), Value::from(body.words));
    let missing: Vec<Value> = mentions
        .iter()
        .filter(|m| !body.mentions(m))
        .map(|m| Value::String(m.clone()))
        .collect();
    attributes.insert("missing_mentions".into(), Value::Array(missing));
    let mut resource = Resource {
        id: format!("policy:{}", doc.file),
        name: format!("{} ({})", fm.title.trim(), doc.file),
        attributes: attributes.into(),
        error: None,
        unknown: Default::default(),
        scope: false,
    };
    dates::apply(
        &mut resource,
        today,
        "approved_on",
        fm.approved_on,
        &["approved_on", "next_review_due", "overdue"],
    );
    resource
}

/// Reads every Markdown document of the policies folder `dir`, each parsed or with its
/// located problem. A folder that is missing or unreadable is an error.
pub(crate) fn read_folder(dir: &Path) -> std::io::Result<Vec<Document>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|e| e == "md" || e == "markdown")
        {
            paths.push(path);
        }
    }
    paths.sort();
    let mut docs = Vec::new();
    for path in paths {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = match std::fs::read_to_string(&path) {
            Ok(text) => parse_document(&path, &text),
            Err(e) => Err(Diagnostic::file(&path, format!("cannot read: {e}"))),
        };
        docs.push(Document { path, file, result });
    }
    Ok(docs)
}

/// What `trellis validate` reports about a policies folder that could be read: every
/// document's front-matter problem (errors), and every `approved_on` after `today` (warnings,
/// the date rule).
pub(crate) fn review(docs: &[Document], today: NaiveDate) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for doc in docs {
        match &doc.result {
            Err(d) => problems.push(d.clone()),
            Ok(parsed) => {
                if let Some(message) =
                    dates::warning("approved_on", parsed.front.approved_on, today)
                {
                    let (line, column) = parsed.approved_on_at;
                    warnings.push(Diagnostic::new(&doc.path, line, column, message));
                }
            }
        }
    }
    (problems, warnings)
}

/// Splits front matter from body and parses it; problems are located `path:line:col`.
fn parse_document(path: &Path, text: &str) -> Result<Parsed, Diagnostic> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or_else(|| {
            Diagnostic::new(path, 1, 1, "missing YAML front matter (a first line `---`)")
        })?;
    let end = rest
        .find("\n---")
        .ok_or_else(|| Diagnostic::new(path, 1, 1, "front matter is not closed by a `---` line"))?;
    let yaml = &rest[..end + 1];
    let body = rest[end + 4..].trim_start_matches(['-', '\r', '\n']);
    // Front matter starts on line 2 of the file.
    let below_fence = |(line, column): (u64, u64)| {
        if line > 0 { (line + 1, column) } else { (0, 0) }
    };
    let front: FrontMatter = crate::diag::parse_yaml(path, yaml).map_err(|mut d| {
        (d.line, d.column) = below_fence((d.line, d.column));
        d
    })?;
    let index = YamlIndex::new(yaml);
    if let Err(e) = crate::duration::parse(&front.review_interval) {
        let (line, column) = below_fence(index.locate("review_interval"));
        return Err(Diagnostic::new(
            path,
            line,
            column,
            format!("review_interval: {e}"),
        ));
    }
    Ok(Parsed {
        front,
        body: Body::new(body),
        approved_on_at: below_fence(index.locate("approved_on")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_front_matter_and_counts_words() {
        let doc = "---\ntitle: Acceptable Use Policy\nversion: \"2\"\napproved_by: CEO\napproved_on: 2026-01-10\nreview_interval: 1y\n---\n# Acceptable Use\n\nUse company systems responsibly.\n";
        let Parsed {
            front: fm,
            body,
            approved_on_at,
        } = parse_document(Path::new("aup.md"), doc).unwrap();
        assert_eq!(approved_on_at, (5, 14));
        let words = body.words;
        assert!(body.text.contains(" use company systems responsibly "));
        assert!(
            !body.text.contains("acceptable"),
            "the title heading is left out"
        );
        assert_eq!(
            plain("A Lessons-learned review; in-transit!"),
            "a lessons learned review in transit"
        );
        assert_eq!(fm.title, "Acceptable Use Policy");
        assert_eq!(fm.approved_on, NaiveDate::from_ymd_opt(2026, 1, 10));
        assert_eq!(words, 6);
    }

    #[test]
    fn mentions_are_whole_words_outside_the_title() {
        let body = Body::new(
            "# Incident Tracking Policy\n\nWe notify customers; lessons-learned reviews are tracked.\n",
        );
        for (phrase, want) in [
            ("lessons learned", true),
            ("Lessons-Learned", true),
            ("notify customers", true),
            ("notif*", true),
            ("tracked", true),
            ("track*", true),
            // Whole words only: no match inside another word.
            ("track", false),
            ("earn", false),
            ("review", false),
            ("reviews", true),
            // The title heading does not count.
            ("incident", false),
            ("policy", false),
        ] {
            assert_eq!(body.mentions(phrase), want, "{phrase}");
        }
    }

    #[test]
    fn malformed_front_matter_is_located() {
        let check = |doc: &str, want: &str| {
            let err = parse_document(Path::new("p.md"), doc)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{err}");
        };
        check("# no front matter", "p.md:1:1: missing YAML front matter");
        check("---\ntitle: X\n", "p.md:1:1: front matter is not closed");
        check(
            "---\ntitle: X\napproved_on: 2026-02-30\nreview_interval: 1y\n---\n",
            "p.md:3:",
        );
        check(
            "---\ntitle: X\nreview_interval: 1y\nbogus: 1\n---\n",
            "p.md:4:1: unknown field `bogus`",
        );
        check(
            "---\ntitle: X\nreview_interval: soon\n---\n",
            "p.md:3:18: review_interval: invalid duration",
        );
    }

    /// `validate` reads the folder with the probe's code: every document's problem, located,
    /// and an `approved_on` after today as a warning at its position.
    #[test]
    fn review_reports_every_document_and_dates_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "a.md",
            "---\ntitle: A\napproved_on: 2027-01-05\nreview_interval: 1y\n---\nbody\n",
        );
        write(
            "b.md",
            "---\ntitle: B\napproved_on: 2026-12-03\nreview_interval: 1y\n---\nbody\n",
        );
        write(
            "c.md",
            "---\ntitle: C\napproved_on: 2026-13-01\nreview_interval: 1y\n---\n",
        );
        write("d.md", "no front matter\n");
        write("notes.txt", "not a policy\n");
        let docs = read_folder(dir.path()).unwrap();
        assert_eq!(docs.len(), 4);
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let (problems, warnings) = review(&docs, today);
        let text = |d: &[Diagnostic]| -> Vec<String> {
            d.iter()
                .map(|d| {
                    let s = d.to_string();
                    s.rsplit_once('/').map(|(_, f)| f.to_string()).unwrap_or(s)
                })
                .collect()
        };
        let problems = text(&problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("c.md:3:"), "{problems:?}");
        assert!(problems[0].contains("approved_on"), "{problems:?}");
        assert!(
            problems[1].starts_with("d.md:1:1: missing YAML front matter"),
            "{problems:?}"
        );
        assert_eq!(
            text(&warnings),
            [
                "a.md:3:14: approved_on: 2027-01-05 is after today (2026-12-03): until then it is unknown, and the checks reading it are errors"
            ]
        );
        let missing = read_folder(&dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
