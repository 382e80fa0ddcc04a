//! Tamper evidence: every stored evidence row and control result carries the SHA-256 of its
//! content and a chain hash over the previous row of its table; each run's manifest (the
//! control definitions' hashes, the evidence hashes, the verdicts and the chains' heads) is
//! signed with an ed25519 key.
//!
//! Pure functions and value types: the store computes the hashes as it writes (and `trellis
//! verify` as it reads) with exactly these functions; the runner signs manifests with a
//! [`Signer`]. Editing a row changes its digest; deleting or reordering rows breaks the chain;
//! deleting the newest rows (or rewriting everything) contradicts the signed manifests.

use std::path::Path;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The chain hash before the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Timestamps as hashed: UTC, microseconds (what both databases keep).
pub fn time_text(t: DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    let (year, nanos) = (t.year(), t.nanosecond());
    if (0..=9999).contains(&year) && nanos < 1_000_000_000 {
        // The same text as the format below, without parsing the format each time (an
        // export writes this a million times).
        format!(
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            nanos / 1000
        )
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// Length-prefixed fields, so that no two different rows hash the same bytes.
fn digest_fields(kind: &str, fields: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for f in fields {
        h.update(b"\n");
        h.update(f.len().to_string().as_bytes());
        h.update(b":");
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The digest of an evidence row. `content_sha256` is the SHA-256 of the stored content text
/// (recomputed by `verify`, so an edited content shows).
#[allow(clippy::too_many_arguments)]
pub fn evidence_digest(
    id: i64,
    run_id: &str,
    probe: &str,
    params: &str,
    collected_at: DateTime<Utc>,
    content_sha256: &str,
    error: Option<&str>,
) -> String {
    digest_fields(
        "evidence/1",
        &[
            &id.to_string(),
            run_id,
            probe,
            params,
            &time_text(collected_at),
            content_sha256,
            error.unwrap_or("\u{0}none"),
        ],
    )
}

/// One finding as hashed into its result's digest.
pub struct FindingFields<'a> {
    pub check: i32,
    pub resource: &'a str,
    pub status: &'a str,
    pub message: &'a str,
    pub actual: &'a str,
}

/// The digest of a result's findings, in stored order.
pub fn findings_digest<'a>(findings: impl IntoIterator<Item = FindingFields<'a>>) -> String {
    let mut h = Sha256::new();
    for f in findings {
        h.update(
            digest_fields(
                "finding/1",
                &[
                    &f.check.to_string(),
                    f.resource,
                    f.status,
                    f.message,
                    f.actual,
                ],
            )
            .as_bytes(),
        );
    }
    hex::encode(h.finalize())
}

/// The columns of a control result, as stored, that its digest covers.
pub struct ResultFields<'a> {
    pub id: i64,
    pub run_id: &'a str,
    pub control_id: &'a str,
    pub status: &'a str,
    pub summary: &'a str,
    pub evaluated_at: DateTime<Utc>,
    pub definition_sha256: &'a str,
    pub checks: &'a str,
    pub evidence_ids: &'a str,
    pub finding_counts: &'a str,
    pub exceptions: &'a str,
    pub findings_digest: &'a str,
}

pub fn result_digest(r: &ResultFields<'_>) -> String {
    digest_fields(
        "control_result/1",
        &[
            &r.id.to_string(),
            r.run_id,
            r.control_id,
            r.status,
            r.summary,
            &time_text(r.evaluated_at),
            r.definition_sha256,
            r.checks,
            r.evidence_ids,
            r.finding_counts,
            r.exceptions,
            r.findings_digest,
        ],
    )
}

/// The chain hash of a row: over the previous row's chain hash and this row's digest.
pub fn chain(previous: &str, row_digest: &str) -> String {
    sha256_hex(format!("{previous}\n{row_digest}").as_bytes())
}

/// The head of a chain: its newest row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The newest row's id (0: no row yet).
    pub last_id: i64,
    pub chain_hash: String,
}

/// What a run's signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    pub version: u32,
    pub run_id: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: String,
    pub controls: Vec<ManifestResult>,
    pub evidence: Vec<ManifestEvidence>,
    /// The chains' heads when the run finished.
    pub evidence_chain: ChainHead,
    pub results_chain: ChainHead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestResult {
    pub result_id: i64,
    pub control_id: String,
    pub definition_sha256: String,
    pub status: String,
    pub row_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEvidence {
    pub evidence_id: i64,
    pub probe: String,
    pub sha256: String,
    pub row_hash: String,
}

impl RunManifest {
    /// The bytes signed: the manifest as compact JSON (field order fixed by the struct).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An ed25519 signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id())
    }
}

/// A public key that signatures are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// `ed25519:<base64>` or bare base64 (32 bytes).
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        use base64::Engine as _;
        let b64 = text.trim().trim_start_matches("ed25519:");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("public key: not base64: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "public key: expected 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| format!("public key: {e}"))
    }

    /// `ed25519:<base64>`: how the key is published and passed to `verify-bundle --key`.
    pub fn to_text(&self) -> String {
        use base64::Engine as _;
        format!(
            "ed25519:{}",
            base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes())
        )
    }

    /// `SHA256:<hex>` of the raw key: the key id in manifests.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", &sha256_hex(self.0.as_bytes())[..32])
    }

    /// Whether `signature` (hex) is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else {
            return false;
        };
        self.0
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

impl Signer {
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Reads the key file (the 32-byte seed, hex), or creates it (mode 0600, folder created)
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Signer> {
        use anyhow::Context as _;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let seed = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .with_context(|| {
                        format!(
                            "signing key {}: expected 64 hex characters (an ed25519 seed)",
                            path.display()
                        )
                    })?;
                Ok(Signer::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let seed = crate::auth::random_bytes::<32>()
                    .map_err(|e| anyhow::anyhow!("cannot generate a signing key: {e}"))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                crate::access::write_private(path, hex::encode(seed).as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let signer = Signer::from_seed(seed);
                tracing::info!(path = %path.display(), key = %signer.key_id(), "created the evidence signing key");
                Ok(signer)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    pub fn key_id(&self) -> String {
        self.public_key().fingerprint()
    }

    /// The signature (hex) of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_is_the_strftime_text() {
        // Hashes cover this text: the fast path must not change a byte of it.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        for t in [
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(),
            DateTime::from_timestamp(1_735_689_599, 999_999_999).unwrap(),
            DateTime::from_timestamp(-62_167_219_200, 1_000).unwrap(), // year 0
            DateTime::from_timestamp(-62_167_219_201, 0).unwrap(),     // year -1
            DateTime::from_timestamp(253_402_300_800, 0).unwrap(),     // year 10000
            leap,
        ] {
            assert_eq!(
                time_text(t),
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "{t:?}"
            );
        }
    }

    #[test]
    fn digests_cover_every_field_and_chains_link_rows() {
        let t = DateTime::from_timestamp(1_800_000_000, 123_456_000).unwrap();
        let base = evidence_digest(1, "r", "hr.people", "{}", t, "ab", None);
        // Any field changed, the digest changes; a missing error differs from an empty one.
        for other in [
            evidence_digest(2, "r", "hr.people", "{}", t, "ab", None),
            evidence_digest(1, "s", "hr.people", "{}", t, "ab", None),
            evidence_digest(1, "r", "hr.peoplE", "{}", t, "ab", None),
            evidence_digest(1, "r", "hr.people", "{ }", t, "ab", None),
            evidence_digest(
                1,
                "r",
                "hr.people",
                "{}",
                t + chrono::Duration::microseconds(1),
                "ab",
                None,
            ),
            evidence_digest(1, "r", "hr.people", "{}", t, "ac", None),
            evidence_digest(1, "r", "hr.people", "{}", t, "ab", Some("")),
        ] {
            assert_ne!(base, other);
        }
        // Fields cannot be shifted into each other.
        assert_ne!(
            digest_fields("k", &["ab", "c"]),
            digest_fields("k", &["a", "bc"])
        );
        assert_eq!(time_text(t), "2027-01-15T08:00:00.123456Z");
        let c1 = chain(GENESIS, &base);
        assert_ne!(chain(GENESIS, &base), chain(&c1, &base));
        assert_eq!(c1.len(), 64);
    }

    #[test]
    fn signatures_verify_with_the_public_key_only() {
        let signer = Signer::from_seed([9; 32]);
        let other = Signer::from_seed([8; 32]);
        let sig = signer.sign(b"manifest");
        let key = signer.public_key();
        assert!(key.verify(b"manifest", &sig));
        assert!(!key.verify(b"manifesT", &sig));
        assert!(!other.public_key().verify(b"manifest", &sig));
        assert!(!key.verify(b"manifest", "zz"));
        let text = key.to_text();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(PublicKey::parse(&text).unwrap(), key);
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
        assert!(signer.key_id().starts_with("SHA256:"));
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.key");
        let a = Signer::load_or_create(&path).unwrap();
        let b = Signer::load_or_create(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
