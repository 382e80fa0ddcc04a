//! The raw evidence files and their OSCAL observations.
//!
//! A year holds tens of thousands of small evidence files; compressing them one after the
//! other on one thread was a fifth of an export. Pages of evidence rows are read, formatted
//! and compressed (each page into a small zip of its own) several at a time on the blocking
//! pool, and merged into the bundle as they are, in id order.

use std::io::{Cursor, Write};

use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use super::deflate::{self, Piece};
use super::{Bundle, ExportError, FileEntry, evidence_path, json_err, options_for, oscal};
use crate::model::Evidence;
use crate::store::Store;

/// Evidence rows read per page.
const PER_PAGE: usize = 500;
/// Pages read and compressed ahead of the one being merged.
const PAGES_AHEAD: usize = 4;

/// What [`write`] did: how many evidence files it wrote, and the ids results named that the
/// store no longer holds.
pub(super) struct Written {
    pub files: usize,
    pub missing: Vec<i64>,
}

/// A page of evidence, compressed.
struct Page {
    zip: Vec<u8>,
    entries: Vec<FileEntry>,
    /// Its observations, each preceded by `,\n`, and them compressed.
    observations: Vec<u8>,
    observations_piece: Piece,
    /// Ids asked for that the store does not hold (deleted since the results were stored).
    missing: Vec<i64>,
}

/// Writes the evidence with these ids (ascending) into the bundle, and their observations
/// into the OSCAL document.
pub(super) async fn write<W: Write + std::io::Seek>(
    bundle: &mut Bundle<W>,
    store: &Store,
    ids: &[i64],
    oscal: &mut oscal::Document,
    spool: &mut deflate::Spool,
) -> Result<Written, ExportError> {
    let options = bundle.options;
    let mut files = 0;
    let mut missing = Vec::new();
    let mut pages = futures::stream::iter(ids.chunks(PER_PAGE))
        .map(|ids| tokio::spawn(page(store.clone(), ids.to_vec(), options)))
        .buffered(PAGES_AHEAD);
    while let Some(done) = pages.next().await {
        let page = done.map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))??;
        bundle
            .raw()
            .merge_archive(zip::ZipArchive::new(Cursor::new(page.zip))?)?;
        oscal.observations(spool, &page.observations, page.observations_piece)?;
        files += page.entries.len();
        bundle.files.extend(page.entries);
        missing.extend(page.missing);
    }
    Ok(Written { files, missing })
}

async fn page(
    store: Store,
    ids: Vec<i64>,
    options: zip::write::SimpleFileOptions,
) -> Result<Page, ExportError> {
    let rows = store.evidence_rows(&ids).await?;
    tokio::task::spawn_blocking(move || {
        // Both ascending: what the store returned is a subsequence of what was asked.
        let mut found = rows.iter().map(|(id, _)| *id).peekable();
        let missing = ids
            .iter()
            .copied()
            .filter(|id| found.next_if_eq(id).is_none())
            .collect();
        compress(rows, options, missing)
    })
    .await
    .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))?
}

fn compress(
    rows: Vec<(i64, Evidence)>,
    options: zip::write::SimpleFileOptions,
    missing: Vec<i64>,
) -> Result<Page, ExportError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut entries = Vec::with_capacity(rows.len());
    let mut observations = Vec::new();
    for (id, e) in rows {
        let bytes = file_bytes(id, &e)?;
        let path = evidence_path(id);
        zip.start_file(path.as_str(), options_for(options, bytes.len()))?;
        zip.write_all(&bytes)?;
        oscal::write_observation(&mut observations, &mut false, id, &e, &path)?;
        entries.push(FileEntry {
            path,
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
        });
    }
    Ok(Page {
        zip: zip.finish()?.into_inner(),
        entries,
        observations_piece: deflate::piece_here(&observations)?,
        observations,
        missing,
    })
}

/// An evidence file's text. Keys in alphabetical order, as the first bundles (a `json!` map)
/// had them; borrowed, so nothing is copied on the way.
fn file_bytes(id: i64, e: &Evidence) -> Result<Vec<u8>, ExportError> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        collected_at: String,
        content: &'a serde_json::Value,
        error: &'a Option<String>,
        id: i64,
        params: &'a str,
        probe: &'a str,
        sha256: &'a str,
    }
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer_pretty(
        &mut out,
        &File {
            collected_at: crate::integrity::time_text(e.collected_at),
            content: &e.content,
            error: &e.error,
            id,
            params: &e.params,
            probe: &e.probe,
            sha256: &e.sha256,
        },
    )
    .map_err(json_err("evidence"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_files_are_what_they_always_were() {
        let e = Evidence {
            probe: "aws.iam.users".into(),
            params: r#"{"region":"eu-west-1"}"#.into(),
            collected_at: chrono::DateTime::from_timestamp(1_764_000_000, 123_000)
                .unwrap_or_default(),
            content: serde_json::json!({"users": [{"name": "a\"b", "mfa": true}], "zeta": 1, "alpha": null}),
            sha256: "ab".repeat(32),
            error: Some("throttled: \u{1}".into()),
        };
        let before = serde_json::to_vec_pretty(&serde_json::json!({
            "id": 42,
            "probe": e.probe,
            "params": e.params,
            "collected_at": crate::integrity::time_text(e.collected_at),
            "sha256": e.sha256,
            "error": e.error,
            "content": e.content,
        }))
        .unwrap();
        assert_eq!(
            String::from_utf8(file_bytes(42, &e).unwrap()).unwrap(),
            String::from_utf8(before).unwrap()
        );
    }
}
