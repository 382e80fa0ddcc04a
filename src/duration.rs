//! Durations in configuration and control files: `90s`, `36h`, `7d`, `1h 30m`, `1y`.

/// Parses a human duration (humantime syntax: `s`, `m`, `h`, `d`, `w`, `M`, `y`).
pub fn parse(text: &str) -> Result<chrono::Duration, String> {
    let std = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration `{text}`: {e} (expected e.g. `36h`, `7d`, `1h 30m`)")
    })?;
    if std.is_zero() {
        return Err(format!(
            "invalid duration `{text}`: must be greater than zero"
        ));
    }
    chrono::Duration::from_std(std).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

/// A duration as written in a file (`36h`): parsed when the file is read, so a bad value is
/// reported at its line and column; serializes back to the text as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanDuration {
    text: String,
    value: chrono::Duration,
}

impl HumanDuration {
    pub fn get(&self) -> chrono::Duration {
        self.value
    }

    /// As a `std::time::Duration` (always possible: parsed durations are positive).
    pub fn to_std(&self) -> std::time::Duration {
        self.value.to_std().unwrap_or_default()
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(HumanDuration {
            value: parse(text)?,
            text: text.trim().to_string(),
        })
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let check = |s: &str, secs: i64| assert_eq!(parse(s).unwrap().num_seconds(), secs, "{s}");
        check("90s", 90);
        check("36h", 36 * 3600);
        check("7d", 7 * 86400);
        check("1h 30m", 5400);
        check("2w", 14 * 86400);
    }

    #[test]
    fn rejects_garbage_and_zero() {
        for s in ["", "soon", "0s", "-1d", "3 parsecs"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
