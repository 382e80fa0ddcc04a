//! Located problems in input files: `path:line:col: message`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One problem in one input file, with the position it was found at (1-based; 0 when the
/// position is unknown, e.g. a file that could not be read).
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
    let mut field = None;
    serde_saphyr::with_deserializer_from_str(text, |de| {
        let mut track = serde_path_to_error::Track::new();
        let result = T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
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
