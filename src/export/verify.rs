//! `trellis verify-bundle`: checks a bundle offline — the signature of `manifest.json`, every
//! file's SHA-256 and size, nothing missing, nothing added, and each run attestation's own
//! signature.

use std::io::{Read, Seek};

use sha2::{Digest, Sha256};

use super::{BundleManifest, FORMAT, read_entry};
use crate::integrity::PublicKey;

/// The first thing wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleProblem {
    #[error("not a readable zip: {0}")]
    Unreadable(String),
    #[error("{0} is missing")]
    Missing(String),
    #[error("manifest.json is not a Trellis bundle manifest: {0}")]
    BadManifest(String),
    #[error(
        "manifest.sig does not verify with key {key}: the manifest was changed, or signed by another key"
    )]
    BadSignature { key: String },
    #[error("the bundle was signed by {found}, not by the expected key {expected}")]
    WrongKey { expected: String, found: String },
    #[error("{path} was modified: its SHA-256 is {actual}, the manifest says {expected}")]
    Modified {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{0} is in the bundle but not in its manifest")]
    Unlisted(String),
    #[error("attestations/{run}.sig does not verify with any key the manifest names")]
    BadAttestation { run: String },
}

/// What a good bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub key_id: String,
    pub files: usize,
    pub runs: usize,
    pub attestations: usize,
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    /// Evidence the manifest says was missing from the store when the bundle was made.
    pub missing_evidence: usize,
}

/// Checks a bundle. With `key`, the bundle must be signed by it (get it from the trust page);
/// without, the key in the manifest is used — which proves the bundle is intact, not who made
/// it: compare the printed key id with the one the company publishes.
pub fn verify_bundle<R: Read + Seek>(
    reader: R,
    key: Option<&PublicKey>,
    former_keys: &[PublicKey],
) -> Result<Verified, BundleProblem> {
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| BundleProblem::Unreadable(e.to_string()))?;
    let read = |zip: &mut zip::ZipArchive<R>, path: &str| {
        read_entry(zip, path).map_err(|_| BundleProblem::Missing(path.to_string()))
    };
    let manifest_bytes = read(&mut zip, "manifest.json")?;
    let signature = read(&mut zip, "manifest.sig")?;
    let manifest: BundleManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| BundleProblem::BadManifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(BundleProblem::BadManifest(format!(
            "format `{}`",
            manifest.format
        )));
    }
    let embedded = PublicKey::parse(&manifest.public_key).map_err(BundleProblem::BadManifest)?;
    let signer = match key {
        Some(k) if *k != embedded => {
            return Err(BundleProblem::WrongKey {
                expected: k.fingerprint(),
                found: embedded.fingerprint(),
            });
        }
        Some(k) => k.clone(),
        None => embedded,
    };
    let signature = String::from_utf8_lossy(&signature).trim().to_string();
    if !signer.verify(&manifest_bytes, &signature) {
        return Err(BundleProblem::BadSignature {
            key: signer.fingerprint(),
        });
    }
    // Every listed file, as listed.
    for f in &manifest.files {
        let mut entry = zip
            .by_name(&f.path)
            .map_err(|_| BundleProblem::Missing(f.path.clone()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(|e| BundleProblem::Modified {
                path: f.path.clone(),
                expected: f.sha256.clone(),
                actual: format!("unreadable ({e})"),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let actual = hex::encode(hasher.finalize());
        if actual != f.sha256 || size != f.size {
            return Err(BundleProblem::Modified {
                path: f.path.clone(),
                expected: f.sha256.clone(),
                actual,
            });
        }
    }
    // Nothing added.
    let listed: std::collections::HashSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    for name in zip.file_names() {
        if !listed.contains(name) && name != "manifest.json" && name != "manifest.sig" {
            return Err(BundleProblem::Unlisted(name.to_string()));
        }
    }
    // Each run's own signature, by the bundle's key or a former one.
    let mut keys = vec![signer.clone()];
    keys.extend(former_keys.iter().cloned());
    let mut attestations = 0;
    for run in manifest.runs.iter().filter(|r| r.signed_by.is_some()) {
        let text = read(&mut zip, &format!("attestations/{}.json", run.id))?;
        let sig = read(&mut zip, &format!("attestations/{}.sig", run.id))?;
        let sig = String::from_utf8_lossy(&sig).trim().to_string();
        if !keys.iter().any(|k| k.verify(&text, &sig)) {
            return Err(BundleProblem::BadAttestation {
                run: run.id.clone(),
            });
        }
        attestations += 1;
    }
    Ok(Verified {
        key_id: signer.fingerprint(),
        files: manifest.files.len(),
        runs: manifest.runs.len(),
        attestations,
        from: manifest.period.from,
        to: manifest.period.to,
        missing_evidence: manifest.missing_evidence.len(),
    })
}
