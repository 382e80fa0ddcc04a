//! Located problems in input files: `path:line:col: message`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One problem in one input file, with the position it was found at (1-based; 0 when the
/// position is unknown, e.g. a file that could not be read; a column of 0 with a line is a
/// whole line, e.g. a CSV row: `roster.csv:37: message`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Diagnostic {
    pub fn new(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A problem at a YAML node's location.
    pub fn at(path: &Path, loc: &serde_saphyr::Location, message: impl Into<String>) -> Self {
        Diagnostic::new(path, loc.line(), loc.column(), message)
    }

    /// A problem with the file as a whole (unreadable, empty...).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic::new(path, 0, 0, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else if self.column == 0 {
            // A line of a file without columns worth naming (a CSV row).
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// A list of diagnostics, displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Parses YAML text into `T`, turning a parse or shape error into a located diagnostic that
/// names the field (`checks[0].expect: unknown variant …`).
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Diagnostic> {
    parse_yaml_seed(path, text, std::marker::PhantomData::<T>)
}

/// [`parse_yaml`] with a stateful seed (e.g. a register file whose key is the register's name).
pub fn parse_yaml_seed<S, T>(path: &Path, text: &str, seed: S) -> Result<T, Diagnostic>
where
    S: for<'de> serde::de::DeserializeSeed<'de, Value = T>,
{
    let mut field = None;
    serde_saphyr::with_deserializer_from_str(text, |de| {
        let mut track = serde_path_to_error::Track::new();
        let result = seed.deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
        if result.is_err() {
            field = Some(track.path().to_string());
        }
        result
    })
    .map_err(|e| {
        let mut d = yaml_error(path, &e);
        // A `Spanned<T>` field adds its own `.value` segment; users wrote the field itself.
        // An unknown field's path ends with the field itself, which the message names.
        let field = field.map(|f| {
            let f = f.strip_suffix(".value").map(str::to_string).unwrap_or(f);
            if d.message.starts_with("unknown field") {
                f.rsplit_once('.')
                    .map(|(parent, _)| parent.to_string())
                    .unwrap_or_default()
            } else {
                f
            }
        });
        if let Some(field) = field.filter(|f| !f.is_empty() && f != "?" && f != ".") {
            d.message = format!("{field}: {}", d.message);
        }
        d
    })
}

/// Where each node of a YAML document starts, by path (`risks[2].reviewed_on`, `risks[2]`,
/// `risks`), as 1-based (line, column): for problems found after parsing, e.g. two entries
/// with the same id. Best effort: a document that does not parse yields what came before.
#[derive(Debug, Default)]
pub struct YamlIndex(std::collections::HashMap<String, (u64, u64)>);

impl YamlIndex {
    pub fn new(text: &str) -> YamlIndex {
        use serde_saphyr::granit_parser::{Event, Parser};
        let mut events = Parser::new_from_str(text).filter_map(|e| {
            let (event, span) = e.ok()?;
            let at = (span.start.line() as u64, span.start.col() as u64 + 1);
            Some((event, at))
        });
        let mut index = YamlIndex::default();
        // Skip to the document's root node, then walk it.
        let mut next = || {
            events.find(|(e, _)| {
                !matches!(
                    e,
                    Event::StreamStart
                        | Event::DocumentStart(..)
                        | Event::Comment(..)
                        | Event::Anchor(..)
                )
            })
        };
        if let Some(first) = next() {
            index.node(first, String::new(), &mut next);
        }
        index
    }

    fn node<'a>(
        &mut self,
        (event, at): (serde_saphyr::granit_parser::Event<'a>, (u64, u64)),
        path: String,
        next: &mut impl FnMut() -> Option<(serde_saphyr::granit_parser::Event<'a>, (u64, u64))>,
    ) {
        use serde_saphyr::granit_parser::Event;
        self.0.insert(path.clone(), at);
        match event {
            Event::SequenceStart(..) => {
                let mut i = 0;
                while let Some(item) = next() {
                    if matches!(item.0, Event::SequenceEnd) {
                        break;
                    }
                    self.node(item, format!("{path}[{i}]"), next);
                    i += 1;
                }
            }
            Event::MappingStart(..) => {
                while let Some(key) = next() {
                    let name = match &key.0 {
                        Event::MappingEnd => break,
                        Event::Scalar(k, ..) => k.to_string(),
                        _ => String::from("?"),
                    };
                    let key_path = if path.is_empty() {
                        name
                    } else {
                        format!("{path}.{name}")
                    };
                    // A complex key is walked (and forgotten) like any node.
                    if !matches!(key.0, Event::Scalar(..)) {
                        self.node(key, format!("{key_path}?"), next);
                    }
                    match next() {
                        Some(value) => self.node(value, key_path, next),
                        None => break,
                    }
                }
            }
            _ => {}
        }
    }

    /// The (line, column) of the node at `path`, else of its nearest ancestor, else (0, 0).
    pub fn locate(&self, path: &str) -> (u64, u64) {
        let mut p = path;
        loop {
            if let Some(at) = self.0.get(p) {
                return *at;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return (0, 0),
            }
        }
    }

    /// A diagnostic at `path` in `file`, the message prefixed with the path.
    pub fn at(&self, file: &Path, path: &str, message: impl fmt::Display) -> Diagnostic {
        let (line, column) = self.locate(path);
        Diagnostic::new(file, line, column, format!("{path}: {message}"))
    }
}

/// A serde-saphyr error as a diagnostic with the bare message (no snippet, no repeated
/// position), lowercased first letter as in every Trellis message.
pub fn yaml_error(path: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let mut message = e.without_snippet().to_string();
    if let Some(idx) = message.rfind(" at line ") {
        message.truncate(idx);
    }
    if let Some(rest) = message.strip_suffix(", set DuplicateKeyPolicy in Options if acceptable") {
        message = rest.to_string();
    }
    Diagnostic::new(path, line, column, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Small {
        name: String,
    }

    #[test]
    fn yaml_index_locates_nodes_by_path() {
        let text = "# register\nrisks:\n  - id: R-1\n    reviewed_on: 2026-01-01\n  - {id: R-2, tags: [a, b]}\n  - id: R-3\n    controls:\n      - x\n      - y\nother: 1\n";
        let index = YamlIndex::new(text);
        for (path, want) in [
            ("risks", (3, 3)),
            ("risks[0]", (3, 5)),
            ("risks[0].id", (3, 9)),
            ("risks[0].reviewed_on", (4, 18)),
            ("risks[1].id", (5, 10)),
            ("risks[1].tags[1]", (5, 25)),
            ("risks[2].controls[1]", (9, 9)),
            ("other", (10, 8)),
            // Unknown paths fall back to their nearest ancestor.
            ("risks[2].title", (6, 5)),
            ("nothing", (0, 0)),
        ] {
            assert_eq!(index.locate(path), want, "{path}");
        }
        // Broken YAML: what came before the break.
        let index = YamlIndex::new("a: 1\nb: [\n");
        assert_eq!(index.locate("a"), (1, 4));
    }

    #[test]
    fn unknown_field_is_located() {
        let d = parse_yaml::<Small>(Path::new("f.yaml"), "name: a\nnmae: b\n").unwrap_err();
        assert!(
            d.to_string()
                .starts_with("f.yaml:2:1: unknown field `nmae`"),
            "{d}"
        );
        assert_eq!((d.line, d.column), (2, 1));
        assert!(
            d.message.starts_with("unknown field `nmae`"),
            "{}",
            d.message
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct WithSpanned {
        level: serde_saphyr::Spanned<Level>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Level {
        Low,
    }

    #[test]
    fn spanned_fields_are_named_as_written() {
        let d = parse_yaml::<WithSpanned>(Path::new("f.yaml"), "level: high\n").unwrap_err();
        assert!(
            d.to_string()
                .starts_with("f.yaml:1:8: level: unknown variant `high`"),
            "{d}"
        );
    }

    #[test]
    fn duplicate_key_is_located_and_plain() {
        let d = parse_yaml::<Small>(Path::new("f.yaml"), "name: a\nname: b\n").unwrap_err();
        assert_eq!(d.to_string(), "f.yaml:2:1: duplicate mapping key: name");
    }
}
