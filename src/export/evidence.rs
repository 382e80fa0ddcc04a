//! The raw evidence files and their OSCAL observations.
//!
//! A year holds tens of thousands of small evidence files; compressing them one after the
//! other on one thread was a fifth of an export. Pages of evidence rows are read, formatted
//! and compressed (each page into a small zip of its own) several at a time on the blocking
//! pool, and merged into the bundle as they are, in id order.

use std::io::{Cursor, Write};

use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use super::{Bundle, ExportError, FileEntry, evidence_path, json_err, oscal};
use crate::model::Evidence;
use crate::store::Store;

/// Evidence rows read per page.
const PER_PAGE: usize = 500;
/// Pages read and compressed ahead of the one being merged.
const PAGES_AHEAD: usize = 4;
/// Smaller files are stored as they are: setting up deflate for a file (zlib-rs zeroes 256 KiB
/// of tables and window) costs more than compressing a few hundred bytes of JSON saves, and
/// a year holds tens of thousands of them.
const STORE_BELOW: usize = 4096;

/// What [`write`] left: the OSCAL observations (a JSON array's items, in a temporary file)
/// and how many evidence files it wrote.
pub(super) struct Written {
    pub observations: std::fs::File,
    pub files: usize,
}

/// A page of evidence, compressed.
struct Page {
    zip: Vec<u8>,
    entries: Vec<FileEntry>,
    /// Its observations, each preceded by `,\n`.
    observations: Vec<u8>,
}

/// Writes the evidence with these ids (ascending) into the bundle.
pub(super) async fn write<W: Write + std::io::Seek>(
    bundle: &mut Bundle<W>,
    store: &Store,
    ids: &[i64],
) -> Result<Written, ExportError> {
    let options = bundle.options;
    let mut observations = tempfile::tempfile()?;
    let mut out = std::io::BufWriter::new(&mut observations);
    let mut files = 0;
    let mut pages = futures::stream::iter(ids.chunks(PER_PAGE))
        .map(|ids| tokio::spawn(page(store.clone(), ids.to_vec(), options)))
        .buffered(PAGES_AHEAD);
    while let Some(done) = pages.next().await {
        let page = done.map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))??;
        bundle
            .zip
            .merge_archive(zip::ZipArchive::new(Cursor::new(page.zip))?)?;
        // The array's first item has no comma.
        let skip = usize::from(files == 0 && !page.observations.is_empty());
        out.write_all(&page.observations[skip..])?;
        files += page.entries.len();
        bundle.files.extend(page.entries);
    }
    out.flush()?;
    drop(out);
    Ok(Written {
        observations,
        files,
    })
}

async fn page(
    store: Store,
    ids: Vec<i64>,
    options: zip::write::SimpleFileOptions,
) -> Result<Page, ExportError> {
    let rows = store.evidence_rows(&ids).await?;
    tokio::task::spawn_blocking(move || compress(rows, options))
        .await
        .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))?
}

fn compress(
    rows: Vec<(i64, Evidence)>,
    options: zip::write::SimpleFileOptions,
) -> Result<Page, ExportError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut entries = Vec::with_capacity(rows.len());
    let mut observations = Vec::new();
    for (id, e) in rows {
        let bytes = serde_json::to_vec_pretty(&serde_json::json!({
            "id": id,
            "probe": e.probe,
            "params": e.params,
            "collected_at": crate::integrity::time_text(e.collected_at),
            "sha256": e.sha256,
            "error": e.error,
            "content": e.content,
        }))
        .map_err(json_err("evidence"))?;
        let path = evidence_path(id);
        let options = if bytes.len() < STORE_BELOW {
            options
                .compression_method(zip::CompressionMethod::Stored)
                .compression_level(None)
        } else {
            options
        };
        zip.start_file(path.as_str(), options)?;
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
        observations,
    })
}
