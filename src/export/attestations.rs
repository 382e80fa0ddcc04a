//! Each signed run's manifest and signature (`attestations/<run>.json`, `.sig`), as stored.
//!
//! A year of hourly runs is thousands of manifests of tens of KiB each: they are read a page
//! at a time and compressed on the blocking pool, each page into a small zip of its own in a
//! temporary file, and merged into the bundle in order — all while the populations are read
//! (they sort first, so the bundle can take them before anything else).

use std::io::Write;

use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use super::{Bundle, ExportError, FileEntry, options_for};
use crate::store::Store;

/// Runs read per page.
const PER_PAGE: usize = 250;

/// A page of attestations, compressed.
struct Page {
    zip: std::fs::File,
    entries: Vec<FileEntry>,
}

/// Writes the attestations of these runs (signed ones, in bundle order) into the bundle,
/// which must not have taken any other file yet.
pub(super) async fn write<W: Write + std::io::Seek>(
    bundle: &mut Bundle<W>,
    store: &Store,
    runs: &[String],
) -> Result<(), ExportError> {
    let options = bundle.options;
    let mut pages = futures::stream::iter(runs.chunks(PER_PAGE))
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
        .buffered(2);
    while let Some(page) = pages.next().await {
        let page = page?;
        bundle
            .raw()
            .merge_archive(zip::ZipArchive::new(page.zip)?)?;
        bundle.files.extend(page.entries);
    }
    Ok(())
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
