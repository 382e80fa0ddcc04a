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

const SVG_NS: &[u8] = b"http://www.w3.org/2000/svg";
const XLINK_NS: &[u8] = b"http://www.w3.org/1999/xlink";
const XML_NS: &[u8] = b"http://www.w3.org/XML/1998/namespace";

/// Namespaces of editors' metadata (Inkscape, Sodipodi, RDF, Creative Commons, Dublin Core):
/// nothing in them is rendered or fetched.
const METADATA_NS: [&[u8]; 5] = [
    b"http://www.inkscape.org/namespaces/inkscape",
    b"http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd",
    b"http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    b"http://creativecommons.org/ns#",
    b"http://purl.org/dc/elements/1.1/",
];

/// The SVG elements a logo may use (lowercase): shapes, text, paint servers, clipping,
/// masking, filters. Not: `script`, `foreignObject`, `a`, `iframe`, animation (`set`,
/// `animate…`, which can rewrite links), `feImage` (fetches), media.
const SVG_ELEMENTS: [&str; 56] = [
    "svg",
    "g",
    "defs",
    "symbol",
    "use",
    "title",
    "desc",
    "metadata",
    "switch",
    "view",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "textpath",
    "lineargradient",
    "radialgradient",
    "stop",
    "clippath",
    "mask",
    "pattern",
    "marker",
    "image",
    "style",
    "filter",
    "feblend",
    "fecolormatrix",
    "fecomponenttransfer",
    "fecomposite",
    "feconvolvematrix",
    "fediffuselighting",
    "fedisplacementmap",
    "fedistantlight",
    "fedropshadow",
    "feflood",
    "fefunca",
    "fefuncb",
    "fefuncg",
    "fefuncr",
    "fegaussianblur",
    "femerge",
    "femergenode",
    "femorphology",
    "feoffset",
    "fepointlight",
    "fespecularlighting",
    "fespotlight",
    "fetile",
    "feturbulence",
    "solidcolor",
    "hatch",
];

/// Attributes that take an address in some markup language (besides `href` and `src`).
const URL_ATTRIBUTES: [&str; 10] = [
    "srcset",
    "action",
    "formaction",
    "background",
    "ping",
    "poster",
    "codebase",
    "data",
    "lowsrc",
    "dynsrc",
];

/// Data URLs an `<image>` may embed: rasters, which cannot hold script.
const RASTER_DATA: [&str; 4] = [
    "data:image/png;",
    "data:image/jpeg;",
    "data:image/gif;",
    "data:image/webp;",
];

/// A value as a URL parser reads it: ASCII whitespace and control characters removed
/// (`java&#9;script:` is `javascript:`), lowercase.
fn url_form(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Checks an SVG: well-formed UTF-8, rooted at `<svg>` in the SVG namespace, made only of
/// the SVG elements a logo needs (and editors' metadata), with no script (elements, event
/// handlers, `javascript:`), no embedded documents or animation, no DOCTYPE (entities) or
/// processing instructions, and no reference outside itself (`href`, `url(…)`, `@import`,
/// `xml:base`, CSS escapes that could hide one), except raster images embedded as data.
/// Refused rather than cleaned: a logo that needs cleaning is worth a look by whoever
/// configured it, and a cleaned one might not look as intended.
pub fn check_svg(text: &str) -> Result<(), SvgProblem> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::NsReader::from_str(text);
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
    // The text of the `<style>` being read, and where it started.
    let mut style: Option<(u64, String)> = None;
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
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding()
                    && !encoding.eq_ignore_ascii_case(b"utf-8")
                {
                    return Err(at(
                        start,
                        format!(
                            "declared in {}: save it as UTF-8",
                            String::from_utf8_lossy(&encoding)
                        ),
                    ));
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                if style.is_some() {
                    return Err(at(start, "an element inside <style>".into()));
                }
                let (ns, local) = reader.resolver().resolve_element(e.name());
                let name = String::from_utf8_lossy(local.as_ref()).to_ascii_lowercase();
                let in_svg = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SVG_NS);
                let metadata =
                    matches!(ns, ResolveResult::Bound(n) if METADATA_NS.contains(&n.as_ref()));
                if !root_seen {
                    root_seen = true;
                    if name != "svg" || !in_svg {
                        return Err(at(
                            start,
                            format!(
                                "the root element is <{name}> {}, not <svg> in the SVG namespace \
                                 (xmlns=\"http://www.w3.org/2000/svg\")",
                                namespace(&ns)
                            ),
                        ));
                    }
                }
                if in_svg {
                    if !SVG_ELEMENTS.contains(&name.as_str()) {
                        return Err(at(start, format!("holds <{name}>, which a logo may not")));
                    }
                } else if !metadata {
                    return Err(at(start, format!("holds <{name}> {}", namespace(&ns))));
                }
                if name == "style" && in_svg && matches!(event, Event::Start(_)) {
                    style = Some((start, String::new()));
                }
                for attr in e.attributes().with_checks(true) {
                    let attr =
                        attr.map_err(|e| at(start, format!("a malformed attribute: {e}")))?;
                    let raw_key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    if raw_key == "xmlns" || raw_key.starts_with("xmlns:") {
                        continue; // a declaration: its URI is a name, never fetched
                    }
                    let value = attr
                        .decoded_and_normalized_value(
                            quick_xml::XmlVersion::Implicit1_0,
                            reader.decoder(),
                        )
                        .map_err(|e| at(start, format!("attribute `{raw_key}`: {e}")))?;
                    let (ans, alocal) = reader.resolver().resolve_attribute(attr.key);
                    let key = String::from_utf8_lossy(alocal.as_ref()).to_ascii_lowercase();
                    let allowed = match &ans {
                        ResolveResult::Unbound => true,
                        ResolveResult::Bound(n) if n.as_ref() == XLINK_NS => [
                            "href", "title", "type", "role", "arcrole", "show", "actuate",
                        ]
                        .contains(&key.as_str()),
                        ResolveResult::Bound(n) if n.as_ref() == XML_NS => {
                            key == "space" || key == "lang"
                        }
                        ResolveResult::Bound(n) => METADATA_NS.contains(&n.as_ref()),
                        ResolveResult::Unknown(_) => false,
                    };
                    if !allowed {
                        return Err(at(
                            start,
                            format!("the attribute `{raw_key}` on <{name}> {}", namespace(&ans)),
                        ));
                    }
                    // Attributes without a namespace are presentation attributes read as
                    // CSS (`fill="url(…)"`); editors' metadata is not rendered.
                    let css = matches!(ans, ResolveResult::Unbound);
                    check_attribute(&name, &key, &value, css).map_err(|why| at(start, why))?;
                }
            }
            Event::End(_) => {
                if let Some((from, css)) = style.take()
                    && let Some(why) = css_reference(&css)
                {
                    return Err(at(from, format!("{why} in <style>")));
                }
            }
            Event::Text(t) => {
                if let Some((_, css)) = &mut style {
                    css.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Event::CData(t) => {
                if let Some((_, css)) = &mut style {
                    css.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Event::GeneralRef(_) if style.is_some() => {
                return Err(at(start, "a character reference inside <style>".into()));
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

/// "(no namespace)", "in http://…".
fn namespace(ns: &quick_xml::name::ResolveResult<'_>) -> String {
    use quick_xml::name::ResolveResult;
    match ns {
        ResolveResult::Unbound => "(no namespace)".into(),
        ResolveResult::Bound(n) => format!("in {}", String::from_utf8_lossy(n.as_ref())),
        ResolveResult::Unknown(p) => {
            format!(
                "with the undeclared prefix `{}`",
                String::from_utf8_lossy(p)
            )
        }
    }
}

/// One attribute of element `element` (both lowercase local names): no script, no reference
/// outside the file.
fn check_attribute(element: &str, key: &str, value: &str, css: bool) -> Result<(), String> {
    let url = url_form(value);
    if key.starts_with("on") {
        return Err(format!("an event handler attribute `{key}`"));
    }
    if [
        "javascript:",
        "vbscript:",
        "data:text/",
        "data:application/",
    ]
    .iter()
    .any(|p| url.contains(p))
    {
        return Err(format!("script in attribute `{key}`"));
    }
    if key == "href" || key == "src" {
        let embedded_raster = element == "image" && RASTER_DATA.iter().any(|p| url.starts_with(p));
        if !url.starts_with('#') && !embedded_raster {
            return Err(format!(
                "an external reference `{key}=\"{}\"` on <{element}>",
                short(value.trim())
            ));
        }
    }
    if URL_ATTRIBUTES.contains(&key) {
        return Err(format!("an address attribute `{key}` on <{element}>"));
    }
    if css && let Some(why) = css_reference(value) {
        return Err(format!("{why} in attribute `{key}`"));
    }
    Ok(())
}

fn short(value: &str) -> String {
    let mut s: String = value.chars().take(60).collect();
    if s.len() < value.len() {
        s.push('…');
    }
    s
}

/// A way out of the document in CSS text: `@import`, `url(…)` to anything but a fragment of
/// this document, `image-set(…)` / `image(…)` / `src(…)`, legacy script hooks, or an escape
/// (`u\72l(`) that could hide one. Comments are removed first (`@imp/**/ort`).
fn css_reference(css: &str) -> Option<String> {
    let mut text = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        rest = rest[i + 2..]
            .find("*/")
            .map_or("", |j| &rest[i + 2 + j + 2..]);
    }
    text.push_str(rest);
    if text.contains('\\') {
        return Some("a CSS escape".into());
    }
    let lower = text.to_ascii_lowercase();
    for (needle, what) in [
        ("@import", "an `@import`"),
        ("image-set(", "an `image-set(…)`"),
        ("image(", "an `image(…)`"),
        ("src(", "a `src(…)`"),
        ("expression(", "a CSS `expression(…)`"),
        ("-moz-binding", "a `-moz-binding`"),
        ("behavior:", "a `behavior:`"),
    ] {
        if lower.contains(needle) {
            return Some(what.into());
        }
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
        const NS: &str = "xmlns=\"http://www.w3.org/2000/svg\"";
        let ok = [
            format!(
                r##"<svg {NS} viewBox="0 0 10 10"><title>Acme</title><rect width="10" height="10" fill="#1f4e79"/></svg>"##
            ),
            format!(
                r##"<?xml version="1.0" encoding="UTF-8"?><!-- Inkscape --><svg {NS} xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" inkscape:version="1.3" inkscape:export-filename="C:\logo.png"><defs><linearGradient id="g"/></defs><use xlink:href="#g"/><rect style="fill:url(#g)" fill="url( '#g' )"/><style>.a{{fill:url('#g')}}/* c */</style></svg>"##
            ),
            format!(r##"<svg {NS}><image href="data:image/png;base64,iVBORw0KGgo="/></svg>"##),
            r##"<svg:svg xmlns:svg="http://www.w3.org/2000/svg"><svg:path d="M0 0h1"/></svg:svg>"##
                .to_string(),
        ];
        for svg in &ok {
            assert_eq!(check_svg(svg), Ok(()), "{svg}");
        }
        // (svg, where the problem is (its first occurrence), what the message says)
        let refused: &[(String, &str, &str)] = &[
            (
                format!("<svg {NS}><script>alert(1)</script></svg>"),
                "<script>",
                "holds <script>",
            ),
            (
                format!("<svg {NS}>\n  <foreignObject><div/></foreignObject></svg>"),
                "<foreignObject>",
                "holds <foreignobject>",
            ),
            (
                format!("<svg {NS}><SCRIPT/></svg>"),
                "<SCRIPT/>",
                "holds <script>",
            ),
            (
                format!("<svg {NS} xmlns:x=\"http://www.w3.org/2000/svg\"><x:script/></svg>"),
                "<x:script/>",
                "holds <script>",
            ),
            (
                format!("<svg {NS} onload=\"alert(1)\"/>"),
                "<svg",
                "event handler attribute `onload`",
            ),
            (
                format!("<svg {NS}><a href=\"https://x.example\"><rect/></a></svg>"),
                "<a ",
                "holds <a>",
            ),
            (
                format!("<svg {NS}><image href=\"https://cdn.example.com/logo.png\"/></svg>"),
                "<image",
                "external reference `href=\"https://cdn.example.com/logo.png\"`",
            ),
            (
                format!(
                    "<svg {NS} xmlns:xlink=\"http://www.w3.org/1999/xlink\"><use xlink:href=\"other.svg#a\"/></svg>"
                ),
                "<use",
                "external reference",
            ),
            (
                format!("<svg {NS}><image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/></svg>"),
                "<image",
                "external reference",
            ),
            (
                format!("<svg {NS}><rect style=\"fill:url(https://x.example/p.svg#a)\"/></svg>"),
                "<rect",
                "external reference `url(https://x.example/p.svg#a)`",
            ),
            (
                format!("<svg {NS}><rect fill=\"u\\72l(https://x.example/p)\"/></svg>"),
                "<rect",
                "a CSS escape in attribute `fill`",
            ),
            (
                format!("<svg {NS}><style>@import url(https://fonts.example/f.css);</style></svg>"),
                "<style>",
                "`@import`",
            ),
            (
                format!(
                    "<svg {NS}><style><![CDATA[.a{{background:url(//x.example/a)}}]]></style></svg>"
                ),
                "<style>",
                "external reference",
            ),
            (
                format!(
                    "<svg {NS}><style>@imp<!---->ort \"https://x.example/a.css\";</style></svg>"
                ),
                "<style>",
                "`@import`",
            ),
            (
                format!(
                    "<svg {NS}><style>svg{{background:u&#114;l(https://x.example/p)}}</style></svg>"
                ),
                "&#114;",
                "character reference inside <style>",
            ),
            (
                format!(
                    "<svg {NS}><style><g/>svg{{background:url(https://x.example/p)}}</style></svg>"
                ),
                "<g/>",
                "an element inside <style>",
            ),
            (
                format!(
                    "<svg {NS}><style>a{{b:image-set(\"https://x.example/p\" 1x)}}</style></svg>"
                ),
                "<style>",
                "image-set",
            ),
            (
                format!("<svg {NS}><set attributeName=\"href\" to=\"javascript:alert(1)\"/></svg>"),
                "<set",
                "holds <set>",
            ),
            (
                format!(
                    "<svg {NS}><a><set attributeName=\"xlink:href\" to=\"java&#9;script:alert(1)\"/></a></svg>"
                ),
                "<a>",
                "holds <a>",
            ),
            (
                format!("<svg {NS}><feImage href=\"https://x.example/p\"/></svg>"),
                "<feImage",
                "holds <feimage>",
            ),
            (
                format!("<svg {NS}><rect xml:base=\"https://x.example/\"/></svg>"),
                "<rect",
                "the attribute `xml:base`",
            ),
            (
                format!("<svg {NS}><rect filter=\"java&#9;script:alert(1)\"/></svg>"),
                "<rect",
                "script in attribute `filter`",
            ),
            (
                format!(
                    "<svg {NS} xmlns:h=\"http://www.w3.org/1999/xhtml\"><h:img srcset=\"https://t.example/p.png\"/></svg>"
                ),
                "<h:img",
                "holds <img> in http://www.w3.org/1999/xhtml",
            ),
            (
                format!("<svg {NS}><rect srcset=\"https://t.example/p.png\"/></svg>"),
                "<rect",
                "address attribute `srcset`",
            ),
            (
                "<svg xmlns=\"http://www.w3.org/1999/xhtml\"><meta http-equiv=\"refresh\"/></svg>"
                    .into(),
                "<svg",
                "not <svg> in the SVG namespace",
            ),
            ("<svg><rect/></svg>".into(), "<svg", "(no namespace)"),
            (
                format!("<svg {NS}><x:rect/></svg>"),
                "<x:rect",
                "undeclared prefix `x`",
            ),
            (
                "<!DOCTYPE svg [<!ENTITY x \"y\">]><svg>&x;</svg>".into(),
                "<!DOCTYPE",
                "DOCTYPE",
            ),
            (
                "<?xml-stylesheet href=\"https://x.example/a.css\"?><svg/>".into(),
                "<?xml",
                "processing instruction",
            ),
            (
                "<?xml version=\"1.0\" encoding=\"UTF-7\"?><svg/>".into(),
                "<?xml",
                "declared in UTF-7",
            ),
            (
                "<html><svg/></html>".into(),
                "<html>",
                "the root element is <html>",
            ),
            (
                format!("<svg {NS}><rect></svg>"),
                "</svg>",
                "not well-formed",
            ),
            (String::new(), "", "no <svg> element"),
        ];
        for (svg, needle, what) in refused {
            let p = check_svg(svg).expect_err(svg);
            assert!(p.what.contains(what), "{svg}: {p}");
            let offset = svg
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} in {svg}"));
            let line = svg[..offset].matches('\n').count() as u64 + 1;
            let column = svg[..offset].rsplit('\n').next().unwrap().chars().count() as u64 + 1;
            assert_eq!((p.line, p.column), (line, column), "{svg}: {p}");
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
