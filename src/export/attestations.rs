//! Each signed run's manifest and signature (`attestations/<run>.json`, `.sig`), as stored.
//!
//! A year of hourly runs is thousands of manifests of tens of KiB each: they are read a page
//! at a time and compressed, each page into a small zip of its own in a temporary file, while
//! the populations are read (the bundle takes them first, as they sort first).

use std::io::Write;

use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use super::{ExportError, FileEntry, options_for};
use crate::store::Store;

/// Runs read per page.
const PER_PAGE: usize = 250;

/// A page of attestations, compressed.
pub(super) struct Page {
    pub zip: std::fs::File,
    pub entries: Vec<FileEntry>,
}

/// The attestations of these runs (signed ones, in bundle order), compressed page by page.
pub(super) async fn prepare(
    store: &Store,
    runs: &[String],
    options: zip::write::SimpleFileOptions,
) -> Result<Vec<Page>, ExportError> {
    futures::stream::iter(runs.chunks(PER_PAGE))
        .map(|ids| {
            let store = store.clone();
            let ids = ids.to_vec();
            async move {
                let seals = store.run_seals(&ids).await?;
                tokio::task::spawn_blocking(move || compress(seals, options))
                    .await
                    .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))?
            }
        })
        .buffered(2)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn compress(
    seals: Vec<(String, String, String)>,
    options: zip::write::SimpleFileOptions,
) -> Result<Page, ExportError> {
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(tempfile::tempfile()?));
    let mut entries = Vec::with_capacity(seals.len() * 2);
    for (run, manifest, signature) in &seals {
        for (path, bytes) in [
            (format!("attestations/{run}.json"), manifest.as_bytes()),
            (format!("attestations/{run}.sig"), signature.as_bytes()),
        ] {
            zip.start_file(path.as_str(), options_for(options, bytes.len()))?;
            zip.write_all(bytes)?;
            entries.push(FileEntry {
                path,
                sha256: hex::encode(Sha256::digest(bytes)),
                size: bytes.len() as u64,
            });
        }
    }
    let zip = zip
        .finish()?
        .into_inner()
        .map_err(|e| ExportError::Io(e.into_error()))?;
    Ok(Page { zip, entries })
}
