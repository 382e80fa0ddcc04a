//! The company's brand on the public pages (`trust_page.brand`): accent colours checked
//! against WCAG 2.2 contrast on Trellis's own page colours, and logo and favicon files checked
//! before they are served.
//!
//! Pure: parsing and checking only. The files are read by [`load_image`], the one function
//! here that does I/O; the web side serves what it returns.

use std::fmt;
use std::path::Path;

/// A colour, `#rrggbb` (`#rgb` is accepted in configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#1f4e79`, `#fff` (case-insensitive).
    pub fn parse(text: &str) -> Option<Rgb> {
        let hex = text.trim().strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digit = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok();
        match hex.len() {
            3 => Some(Rgb(digit(0)? * 17, digit(1)? * 17, digit(2)? * 17)),
            6 => {
                let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
                Some(Rgb(byte(0)?, byte(2)?, byte(4)?))
            }
            _ => None,
        }
    }

    /// WCAG 2.2 relative luminance.
    pub fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2)
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

impl serde::Serialize for Rgb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rgb {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rgb, D::Error> {
        let text = String::deserialize(d)?;
        Rgb::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a colour: write it as #rrggbb (or #rgb)"
            ))
        })
    }
}

/// The WCAG contrast ratio of two colours, 1 to 21.
pub fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (hi, lo) = if la >= lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// Light or dark colour scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Light,
    Dark,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Light => "light",
            Mode::Dark => "dark",
        }
    }
}

/// The page colours an accent is drawn on or with, from `templates/trust.css` (a test keeps
/// them equal).
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    /// `--bg`: the page background.
    pub bg: Rgb,
    /// `--surface`: cards, the brand bar, and the label colour of accent buttons.
    pub surface: Rgb,
    /// `--accent`: Trellis's own accent, used without a brand colour.
    pub accent: Rgb,
}

impl Palette {
    pub fn of(mode: Mode) -> Palette {
        match mode {
            Mode::Light => Palette {
                bg: Rgb(0xf5, 0xf6, 0xf8),
                surface: Rgb(0xff, 0xff, 0xff),
                accent: Rgb(0x1f, 0x4e, 0x79),
            },
            Mode::Dark => Palette {
                bg: Rgb(0x0f, 0x14, 0x1a),
                surface: Rgb(0x17, 0x1d, 0x24),
                accent: Rgb(0x8c, 0xc4, 0xff),
            },
        }
    }
}

/// WCAG AA for text (1.4.3).
pub const TEXT_RATIO: f64 = 4.5;
/// WCAG AA for user-interface components and focus indicators (1.4.11).
pub const UI_RATIO: f64 = 3.0;

/// One place the accent is drawn, and the contrast it needs there.
#[derive(Debug, Clone, Copy)]
pub struct AccentUse {
    pub element: &'static str,
    /// What it is seen against: `bg` or `surface` (the label of a button is `surface` on
    /// the accent).
    pub against: &'static str,
    pub required: f64,
}

/// Every use of the accent on the public pages (`templates/trust.css`).
pub const ACCENT_USES: [AccentUse; 6] = [
    AccentUse {
        element: "link text",
        against: "page background",
        required: TEXT_RATIO,
    },
    AccentUse {
        element: "link text",
        against: "card background",
        required: TEXT_RATIO,
    },
    AccentUse {
        element: "button label",
        against: "button (label in the card colour on the accent)",
        required: TEXT_RATIO,
    },
    AccentUse {
        element: "focus ring",
        against: "page background",
        required: UI_RATIO,
    },
    AccentUse {
        element: "focus ring",
        against: "card background",
        required: UI_RATIO,
    },
    AccentUse {
        element: "brand bar border and outlined buttons",
        against: "card background",
        required: UI_RATIO,
    },
];

/// An accent too faint (or too strong) for one of its uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastProblem {
    pub mode: Mode,
    pub element: &'static str,
    pub against: &'static str,
    pub background: Rgb,
    pub ratio: f64,
    pub required: f64,
}

impl fmt::Display for ContrastProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rounded down: 4.497 must not read as "4.5:1, under 4.5:1".
        let ratio = (self.ratio * 100.0).floor() / 100.0;
        write!(
            f,
            "{ratio:.2}:1 for {} against the {} ({}) in {} mode, under the {}:1 WCAG AA needs",
            self.element,
            self.against,
            self.background,
            self.mode.as_str(),
            self.required
        )
    }
}

/// The uses of `accent` in `mode` whose contrast is under WCAG AA.
pub fn check_accent(accent: Rgb, mode: Mode) -> Vec<ContrastProblem> {
    let palette = Palette::of(mode);
    ACCENT_USES
        .iter()
        .filter_map(|u| {
            let background = if u.against == "page background" {
                palette.bg
            } else {
                palette.surface
            };
            let ratio = contrast(accent, background);
            (ratio < u.required).then_some(ContrastProblem {
                mode,
                element: u.element,
                against: u.against,
                background,
                ratio,
                required: u.required,
            })
        })
        .collect()
}

/// An image Trellis serves for the brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Svg,
    Png,
    /// Favicons only.
    Ico,
}

impl ImageKind {
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Svg => "image/svg+xml",
            ImageKind::Png => "image/png",
            ImageKind::Ico => "image/x-icon",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Svg => "svg",
            ImageKind::Png => "png",
            ImageKind::Ico => "ico",
        }
    }
}

/// A logo or favicon, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub kind: ImageKind,
    pub bytes: Vec<u8>,
    /// Pixel size, when the file says (PNG).
    pub size: Option<(u32, u32)>,
}

/// The largest brand file accepted.
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;

/// Reads a logo (`favicon`: also ICO) and checks it: PNG, or SVG without script or external
/// references. The error says why, with the SVG's own line and column.
pub fn load_image(path: &Path, favicon: bool) -> Result<Image, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    check_image(bytes, favicon).map_err(|why| format!("{}: {why}", path.display()))
}

/// [`load_image`] on bytes already read.
pub fn check_image(bytes: Vec<u8>, favicon: bool) -> Result<Image, String> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!(
            "{} bytes, over the {} KiB a logo may have",
            bytes.len(),
            MAX_IMAGE_BYTES / 1024
        ));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let size = (bytes.len() >= 24 && &bytes[12..16] == b"IHDR").then(|| {
            let be =
                |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            (be(16), be(20))
        });
        return match size {
            Some((w, h)) if w > 0 && h > 0 => Ok(Image {
                kind: ImageKind::Png,
                bytes,
                size,
            }),
            _ => Err("a PNG without a valid header".into()),
        };
    }
    if bytes.starts_with(&[0, 0, 1, 0]) {
        return if favicon {
            Ok(Image {
                kind: ImageKind::Ico,
                bytes,
                size: None,
            })
        } else {
            Err("an ICO file: a logo must be SVG or PNG".into())
        };
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| "neither PNG nor SVG (an SVG must be UTF-8 text)".to_string())?;
    check_svg(text).map_err(|p| p.to_string())?;
    Ok(Image {
        kind: ImageKind::Svg,
        bytes,
        size: None,
    })
}

/// Why an SVG is refused, at its line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvgProblem {
    pub line: u64,
    pub column: u64,
    pub what: String,
}

impl fmt::Display for SvgProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SVG refused at {}:{}: {}",
            self.line, self.column, self.what
        )
    }
}

/// Elements that run script, embed other documents or play media.
const REFUSED_ELEMENTS: [&str; 10] = [
    "script",
    "foreignobject",
    "iframe",
    "embed",
    "object",
    "audio",
    "video",
    "handler",
    "listener",
    "discard",
];

/// Data URLs an `<image>` may embed: rasters, which cannot hold script.
const RASTER_DATA: [&str; 4] = [
    "data:image/png;",
    "data:image/jpeg;",
    "data:image/gif;",
    "data:image/webp;",
];

/// Checks an SVG: well-formed, rooted at `<svg>`, with no script (elements, event handler
/// attributes, `javascript:`), no embedded documents, no DOCTYPE (entities) or stylesheet
/// instructions, and no reference outside itself (`href`, `url(…)`, `@import`), except raster
/// images embedded as data. Refused rather than cleaned: a logo that needs cleaning is worth a
/// look by whoever configured it.
pub fn check_svg(text: &str) -> Result<(), SvgProblem> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let at = |offset: u64, what: String| {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        let before = &text[..text.floor_char_boundary(offset)];
        let line = before.matches('\n').count() as u64 + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
        SvgProblem { line, column, what }
    };
    let mut root_seen = false;
    let mut in_style = false;
    loop {
        let start = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| at(reader.error_position(), format!("not well-formed XML: {e}")))?;
        match event {
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(at(
                    start,
                    "a DOCTYPE (it can declare entities); remove it".into(),
                ));
            }
            Event::PI(pi) => {
                return Err(at(
                    start,
                    format!(
                        "a processing instruction `<?{}`; remove it",
                        String::from_utf8_lossy(pi.target())
                    ),
                ));
            }
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).to_ascii_lowercase();
                if !root_seen {
                    root_seen = true;
                    if name != "svg" {
                        return Err(at(
                            start,
                            format!("the root element is <{name}>, not <svg>"),
                        ));
                    }
                }
                if REFUSED_ELEMENTS.contains(&name.as_str()) {
                    return Err(at(start, format!("holds <{name}>")));
                }
                in_style = name == "style";
                for attr in e.attributes().with_checks(true) {
                    let attr =
                        attr.map_err(|e| at(start, format!("a malformed attribute: {e}")))?;
                    let key = String::from_utf8_lossy(attr.key.local_name().as_ref())
                        .to_ascii_lowercase();
                    let value = attr
                        .decoded_and_normalized_value(
                            quick_xml::XmlVersion::Implicit1_0,
                            reader.decoder(),
                        )
                        .map_err(|e| at(start, format!("attribute `{key}`: {e}")))?;
                    let value = value.trim();
                    if key.starts_with("on") {
                        return Err(at(start, format!("an event handler attribute `{key}`")));
                    }
                    if key == "href" || key == "src" {
                        let embedded_raster = name == "image"
                            && RASTER_DATA
                                .iter()
                                .any(|p| value.to_ascii_lowercase().starts_with(p));
                        if !value.starts_with('#') && !embedded_raster {
                            return Err(at(
                                start,
                                format!(
                                    "an external reference `{key}=\"{}\"` on <{name}>",
                                    short(value)
                                ),
                            ));
                        }
                    }
                    if (key == "attributename" && value.eq_ignore_ascii_case("href"))
                        || value.to_ascii_lowercase().contains("javascript:")
                    {
                        return Err(at(start, format!("script in attribute `{key}`")));
                    }
                    if let Some(why) = css_reference(value) {
                        return Err(at(start, format!("{why} in attribute `{key}`")));
                    }
                }
            }
            Event::End(_) => in_style = false,
            Event::Text(t) if in_style => {
                let css = String::from_utf8_lossy(t.as_ref()).into_owned();
                if let Some(why) = css_reference(&css) {
                    return Err(at(start, format!("{why} in <style>")));
                }
            }
            Event::CData(t) if in_style => {
                let css = String::from_utf8_lossy(t.as_ref()).into_owned();
                if let Some(why) = css_reference(&css) {
                    return Err(at(start, format!("{why} in <style>")));
                }
            }
            _ => {}
        }
    }
    if root_seen {
        Ok(())
    } else {
        Err(at(0, "no <svg> element".into()))
    }
}

fn short(value: &str) -> String {
    let mut s: String = value.chars().take(60).collect();
    if s.len() < value.len() {
        s.push('…');
    }
    s
}

/// A reference out of the document in CSS text: `@import`, or `url(…)` to anything but a
/// fragment of this document.
fn css_reference(css: &str) -> Option<String> {
    let lower = css.to_ascii_lowercase();
    if lower.contains("@import") {
        return Some("an `@import`".into());
    }
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("url(") {
        rest = &rest[i + 4..];
        let target = rest.trim_start().trim_start_matches(['"', '\'']);
        if !target.starts_with('#') {
            let end = target.find(')').unwrap_or(target.len());
            return Some(format!(
                "an external reference `url({})`",
                short(&target[..end])
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse() {
        assert_eq!(Rgb::parse("#1F4e79"), Some(Rgb(0x1f, 0x4e, 0x79)));
        assert_eq!(Rgb::parse("#fff"), Some(Rgb(255, 255, 255)));
        for bad in ["1f4e79", "#1f4e7", "#ggg", "#1f4e79ff", "", "#", "#+1f4e7"] {
            assert_eq!(Rgb::parse(bad), None, "{bad}");
        }
        assert_eq!(Rgb(0x1f, 0x4e, 0x79).to_string(), "#1f4e79");
    }

    #[test]
    fn contrast_matches_wcag_reference_values() {
        let white = Rgb(255, 255, 255);
        let black = Rgb(0, 0, 0);
        let check = |a: Rgb, b: Rgb, want: f64| {
            let got = contrast(a, b);
            assert!((got - want).abs() < 0.01, "{a} on {b}: {got}, want {want}");
            assert_eq!(got, contrast(b, a));
        };
        check(black, white, 21.0);
        check(white, white, 1.0);
        // WebAIM's checker: #777777 on white is 4.48:1, #767676 4.54:1.
        check(Rgb(0x77, 0x77, 0x77), white, 4.48);
        check(Rgb(0x76, 0x76, 0x76), white, 4.54);
        check(Rgb(0xff, 0, 0), white, 4.0);
    }

    #[test]
    fn accents_are_checked_in_light_and_dark_mode() {
        // (accent, mode, the elements refused; empty: accepted)
        let table: &[(&str, Mode, &[&str])] = &[
            // Trellis's own accents pass where they are used.
            ("#1f4e79", Mode::Light, &[]),
            ("#8cc4ff", Mode::Dark, &[]),
            // A dark brand blue: fine on light pages, far too dark on dark ones.
            ("#0b5cad", Mode::Light, &[]),
            (
                "#0b5cad",
                Mode::Dark,
                &[
                    "link text",
                    "link text",
                    "button label",
                    "focus ring",
                    "focus ring",
                    "brand bar border and outlined buttons",
                ],
            ),
            // A mid orange: enough for a focus ring, not for text.
            (
                "#c86400",
                Mode::Light,
                &["link text", "link text", "button label"],
            ),
            // Yellow: invisible on white, fine on dark.
            (
                "#ffd400",
                Mode::Light,
                &[
                    "link text",
                    "link text",
                    "button label",
                    "focus ring",
                    "focus ring",
                    "brand bar border and outlined buttons",
                ],
            ),
            ("#ffd400", Mode::Dark, &[]),
            // Near the line: #767676 passes 4.5:1 on white but not on the #f5f6f8 page.
            ("#767676", Mode::Light, &["link text"]),
            ("#6a6a6a", Mode::Light, &[]),
            // Light grey on dark: 3:1 but not 4.5:1.
            (
                "#5f6b78",
                Mode::Dark,
                &["link text", "link text", "button label"],
            ),
        ];
        for (accent, mode, refused) in table {
            let problems = check_accent(Rgb::parse(accent).unwrap(), *mode);
            let got: Vec<&str> = problems.iter().map(|p| p.element).collect();
            assert_eq!(&got, refused, "{accent} in {mode:?}: {problems:#?}");
            for p in &problems {
                let text = p.to_string();
                assert!(
                    text.contains(":1 for ") && text.contains(mode.as_str()),
                    "{text}"
                );
                assert!(p.ratio < p.required);
            }
        }
        let p = &check_accent(Rgb::parse("#c86400").unwrap(), Mode::Light)[0];
        assert_eq!(
            p.to_string(),
            "3.67:1 for link text against the page background (#f5f6f8) in light mode, under the 4.5:1 WCAG AA needs"
        );
    }

    #[test]
    fn palette_is_the_stylesheets() {
        let css = include_str!("../templates/trust.css");
        let dark_at = css.find("@media (prefers-color-scheme: dark)").unwrap();
        let var = |block: &str, name: &str| {
            let i = block.find(&format!("--{name}:")).unwrap();
            let v = block[i..].split(':').nth(1).unwrap();
            Rgb::parse(v.split(';').next().unwrap()).unwrap()
        };
        for (mode, block) in [
            (Mode::Light, &css[..dark_at]),
            (Mode::Dark, &css[dark_at..]),
        ] {
            let p = Palette::of(mode);
            assert_eq!(p.bg, var(block, "bg"), "{mode:?}");
            assert_eq!(p.surface, var(block, "surface"), "{mode:?}");
            assert_eq!(p.accent, var(block, "accent"), "{mode:?}");
        }
    }

    #[test]
    fn svgs_with_script_or_external_references_are_refused() {
        let ok = [
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><title>Acme</title><rect width="10" height="10" fill="#1f4e79"/></svg>"##,
            r##"<?xml version="1.0"?><!-- Inkscape --><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><defs><linearGradient id="g"/></defs><use xlink:href="#g"/><rect style="fill:url(#g)"/><style>.a{fill:url('#g')}</style></svg>"##,
            r##"<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,iVBORw0KGgo="/></svg>"##,
        ];
        for svg in ok {
            assert_eq!(check_svg(svg), Ok(()), "{svg}");
        }
        // (svg, line, column, what the message says)
        let refused: &[(&str, u64, u64, &str)] = &[
            (
                "<svg><script>alert(1)</script></svg>",
                1,
                6,
                "holds <script>",
            ),
            (
                "<svg>\n  <foreignObject><div/></foreignObject></svg>",
                2,
                3,
                "holds <foreignobject>",
            ),
            ("<svg><SCRIPT/></svg>", 1, 6, "holds <script>"),
            (
                "<svg xmlns:x=\"http://www.w3.org/2000/svg\"><x:script/></svg>",
                1,
                43,
                "holds <script>",
            ),
            (
                "<svg onload=\"alert(1)\"/>",
                1,
                1,
                "event handler attribute `onload`",
            ),
            (
                "<svg><a href=\"javascript:alert(1)\"><rect/></a></svg>",
                1,
                6,
                "external reference",
            ),
            (
                "<svg><image href=\"https://cdn.example.com/logo.png\"/></svg>",
                1,
                6,
                "external reference `href=\"https://cdn.example.com/logo.png\"`",
            ),
            (
                "<svg xmlns:xlink=\"http://www.w3.org/1999/xlink\"><use xlink:href=\"other.svg#a\"/></svg>",
                1,
                49,
                "external reference",
            ),
            (
                "<svg><image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/></svg>",
                1,
                6,
                "external reference",
            ),
            (
                "<svg><rect style=\"fill:url(https://x.example/p.svg#a)\"/></svg>",
                1,
                6,
                "external reference `url(https://x.example/p.svg#a)`",
            ),
            (
                "<svg><style>@import url(https://fonts.example/f.css);</style></svg>",
                1,
                13,
                "`@import`",
            ),
            (
                "<svg><style><![CDATA[.a{background:url(//x.example/a)}]]></style></svg>",
                1,
                13,
                "external reference",
            ),
            (
                "<svg><set attributeName=\"href\" to=\"javascript:alert(1)\"/></svg>",
                1,
                6,
                "script in attribute",
            ),
            (
                "<!DOCTYPE svg [<!ENTITY x \"y\">]><svg>&x;</svg>",
                1,
                1,
                "DOCTYPE",
            ),
            (
                "<?xml-stylesheet href=\"https://x.example/a.css\"?><svg/>",
                1,
                1,
                "processing instruction",
            ),
            ("<html><svg/></html>", 1, 1, "root element is <html>"),
            ("<svg><rect></svg>", 1, 12, "not well-formed"),
            ("", 1, 1, "no <svg> element"),
        ];
        for (svg, line, column, what) in refused {
            let p = check_svg(svg).expect_err(svg);
            assert!(p.what.contains(what), "{svg}: {p}");
            assert_eq!((p.line, p.column), (*line, *column), "{svg}: {p}");
        }
    }

    #[test]
    fn images_are_sniffed_not_trusted_by_name() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&120u32.to_be_bytes());
        png.extend_from_slice(&40u32.to_be_bytes());
        let img = check_image(png.clone(), false).unwrap();
        assert_eq!((img.kind, img.size), (ImageKind::Png, Some((120, 40))));
        let ico = vec![0, 0, 1, 0, 1, 0];
        assert_eq!(check_image(ico.clone(), true).unwrap().kind, ImageKind::Ico);
        assert!(
            check_image(ico, false)
                .unwrap_err()
                .contains("must be SVG or PNG")
        );
        assert!(
            check_image(vec![0xff, 0xd8, 0xff], false)
                .unwrap_err()
                .contains("neither PNG nor SVG")
        );
        assert!(
            check_image(b"\x89PNG\r\n\x1a\n".to_vec(), false)
                .unwrap_err()
                .contains("PNG without")
        );
        let big = format!("<svg>{}</svg>", " ".repeat(MAX_IMAGE_BYTES));
        assert!(
            check_image(big.into_bytes(), false)
                .unwrap_err()
                .contains("over the 1024 KiB")
        );
    }
}
