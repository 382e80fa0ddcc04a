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
