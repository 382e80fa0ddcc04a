//! The frame of every public page: the stylesheets, the brand (logo, favicon, accent colour),
//! whether search engines may index it, and the footer links.
//!
//! Brand files are read and checked once at start ([`BrandAssets::load`]) and served by
//! Trellis itself under content-hashed paths (`assets/brand/logo-<hash>.svg`), like the
//! stylesheet: cached for a year, nothing external, the Content-Security-Policy unchanged. The
//! accent colours go in a small stylesheet of their own, so no page needs inline style.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::brand::{Image, ImageKind};
use crate::config::{BrandConfig, TrustPageConfig};

/// Where brand files are served, under the site's root.
pub const BRAND_DIR: &str = "assets/brand/";

/// One brand file, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// `assets/brand/logo-<12 hex>.svg`.
    pub path: String,
    /// The first 12 hex digits of the content's SHA-256 (in the path; the ETag).
    pub hash: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Pixel size (PNG).
    pub size: Option<(u32, u32)>,
}

impl Asset {
    fn new(stem: &str, kind: ImageKind, image: Image) -> Asset {
        Asset::from_bytes(stem, kind.extension(), kind.mime(), image.bytes, image.size)
    }

    fn from_bytes(
        stem: &str,
        extension: &str,
        content_type: &'static str,
        body: Vec<u8>,
        size: Option<(u32, u32)>,
    ) -> Asset {
        let digest = hex::encode(Sha256::digest(&body));
        let hash = digest[..12].to_string();
        Asset {
            path: format!("{BRAND_DIR}{stem}-{hash}.{extension}"),
            hash,
            content_type,
            body,
            size,
        }
    }
}

/// The brand's files: logos, favicon, and the stylesheet with the accent colours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandAssets {
    pub logo: Option<Asset>,
    pub logo_dark: Option<Asset>,
    pub favicon: Option<Asset>,
    pub stylesheet: Option<Asset>,
}

impl BrandAssets {
    /// Reads and checks the configured files (paths resolved by `resolve`, relative to the
    /// configuration file). Problems are (configuration path, message).
    pub fn load(
        brand: &BrandConfig,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<BrandAssets, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut image = |field: &str, stem: &str, path: &Option<PathBuf>, favicon: bool| {
            let path = path.as_ref()?;
            match crate::brand::load_image(&resolve(path), favicon) {
                Ok(image) => Some(Asset::new(stem, image.kind, image)),
                Err(why) => {
                    problems.push((format!("trust_page.brand.{field}"), why));
                    None
                }
            }
        };
        let logo = image("logo", "logo", &brand.logo, false);
        let logo_dark = image("logo_dark", "logo-dark", &brand.logo_dark, false);
        let favicon = image("favicon", "favicon", &brand.favicon, true);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(BrandAssets {
            logo,
            logo_dark,
            favicon,
            stylesheet: stylesheet(brand).map(|css| {
                Asset::from_bytes(
                    "brand",
                    "css",
                    "text/css; charset=utf-8",
                    css.into_bytes(),
                    None,
                )
            }),
        })
    }

    /// Every file, to serve and to export.
    pub fn files(&self) -> impl Iterator<Item = &Asset> {
        [&self.logo, &self.logo_dark, &self.favicon, &self.stylesheet]
            .into_iter()
            .flatten()
    }
}

/// The accent colours as a stylesheet loaded after Trellis's own: the light one only outside
/// dark mode (where Trellis's dark accent stays unless `accent_color_dark` is set).
fn stylesheet(brand: &BrandConfig) -> Option<String> {
    if brand.accent_color.is_none() && brand.accent_color_dark.is_none() {
        return None;
    }
    let mut css = String::from("/* trust_page.brand */\n");
    if let Some(light) = brand.accent_color {
        css.push_str(&format!(
            "@media not all and (prefers-color-scheme: dark) {{\n  :root {{ --accent: {light}; }}\n}}\n"
        ));
    }
    if let Some(dark) = brand.accent_color_dark {
        css.push_str(&format!(
            "@media (prefers-color-scheme: dark) {{\n  :root {{ --accent: {dark}; }}\n}}\n"
        ));
    }
    Some(css)
}

/// What the layout shows around every public page (a view model: hrefs and text only).
#[derive(Debug, Clone, Serialize)]
pub struct Chrome {
    /// Trellis's stylesheet.
    pub css: String,
    /// The brand's stylesheet (accent colours), after Trellis's.
    pub brand_css: Option<String>,
    pub favicon: Option<IconView>,
    pub logo: Option<LogoView>,
    /// `<meta name="robots" content="noindex, nofollow">`.
    pub noindex: bool,
    pub footer_links: Vec<LinkView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IconView {
    pub href: String,
    pub mime: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogoView {
    pub href: String,
    /// The dark-mode logo (a `<source>` for `prefers-color-scheme: dark`).
    pub dark_href: Option<String>,
    /// The PNG's pixel size, so the page does not shift while it loads.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    pub label: String,
    pub url: String,
}

impl Chrome {
    /// The frame of pages whose links start with `root`: `""` for the site's own files
    /// (relative, so a static export works under any path), `"/"` for pages served at other
    /// paths (the request form, the subscribe pages).
    pub fn new(brand: &BrandAssets, trust: &TrustPageConfig, root: &str) -> Chrome {
        let href = |a: &Asset| format!("{root}{}", a.path);
        Chrome {
            css: format!("{root}{}?v={}", super::CSS_FILE, super::css_version()),
            brand_css: brand.stylesheet.as_ref().map(href),
            favicon: brand.favicon.as_ref().map(|a| IconView {
                href: href(a),
                mime: a.content_type,
            }),
            logo: brand.logo.as_ref().map(|a| LogoView {
                href: href(a),
                dark_href: brand.logo_dark.as_ref().map(href),
                width: a.size.map(|s| s.0),
                height: a.size.map(|s| s.1),
            }),
            noindex: !trust.indexing,
            footer_links: trust
                .footer_links
                .iter()
                .map(|l| LinkView {
                    label: l.label.clone(),
                    url: l.url.trim().to_string(),
                })
                .collect(),
        }
    }
}

/// `/robots.txt`: everything disallowed when `indexing: false`; else the page allowed and the
/// pages that are nobody's search result (forms, links, the dashboards) disallowed.
pub fn robots_txt(trust: &TrustPageConfig) -> String {
    if trust.indexing {
        "# The trust center: its page may be indexed; forms, personal links and the\n\
         # dashboards are nobody's search result.\n\
         User-agent: *\n\
         Disallow: /dashboard\n\
         Disallow: /api/\n\
         Disallow: /access/\n\
         Disallow: /request-access\n\
         Disallow: /subscribe\n\
         Disallow: /unsubscribe\n"
            .to_string()
    } else {
        "# trust_page.indexing is false: no page of this site is to be indexed. Pages also\n\
         # carry `noindex`, for crawlers that fetch them anyway.\n\
         User-agent: *\n\
         Disallow: /\n"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_stylesheet_keeps_the_dark_accent_unless_told() {
        let light = crate::brand::Rgb::parse("#0b5cad");
        let dark = crate::brand::Rgb::parse("#7cc0ff");
        let css = stylesheet(&BrandConfig {
            accent_color: light,
            ..BrandConfig::default()
        })
        .unwrap();
        assert!(
            css.contains(
                "@media not all and (prefers-color-scheme: dark) {\n  :root { --accent: #0b5cad; }"
            ),
            "{css}"
        );
        assert!(
            !css.contains("(prefers-color-scheme: dark) {\n  :root { --accent: #7cc0ff"),
            "{css}"
        );
        let css = stylesheet(&BrandConfig {
            accent_color: light,
            accent_color_dark: dark,
            ..BrandConfig::default()
        })
        .unwrap();
        assert!(
            css.contains("@media (prefers-color-scheme: dark) {\n  :root { --accent: #7cc0ff; }"),
            "{css}"
        );
        assert_eq!(stylesheet(&BrandConfig::default()), None);
    }

    #[test]
    fn asset_paths_change_with_content() {
        let a = Asset::from_bytes("logo", "svg", "image/svg+xml", b"<svg/>".to_vec(), None);
        let b = Asset::from_bytes(
            "logo",
            "svg",
            "image/svg+xml",
            b"<svg></svg>".to_vec(),
            None,
        );
        assert!(a.path.starts_with("assets/brand/logo-") && a.path.ends_with(".svg"));
        assert_eq!(a.path.len(), "assets/brand/logo-".len() + 12 + 4);
        assert_ne!(a.path, b.path);
    }
}
