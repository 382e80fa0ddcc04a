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
            error.unwrap_or(NONE),
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

/// The digest of a result's findings, in stored order, taken a finding at a time (findings are
/// written and read in chunks).
#[derive(Default)]
pub struct FindingsDigest(Sha256);

impl FindingsDigest {
    /// Adds the next finding, in stored order.
    pub fn add(&mut self, f: &FindingFields<'_>) {
        self.0.update(
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

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
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
///
/// Version 1 (runs closed before runs were chained) stops at `results_chain`; version 2 adds
/// `closed`: the run row as closed, the runs chain before it and the legacy boundary. Both
/// are read back from the stored text, so a version 1 manifest still parses.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<ClosedRun>,
}

/// The manifest version that [`RunManifest::closed`] is part of.
pub const MANIFEST_VERSION: u32 = 2;

/// A run as it was closed (version 2 manifests): the rest of its row, and where it sits in
/// the runs chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedRun {
    /// `completed` or `interrupted`.
    pub state: String,
    pub error: Option<String>,
    pub controls_total: i32,
    pub controls_done: i32,
    /// The runs chain's head before this run was appended to it: the run's own chain hash
    /// covers this manifest, so the manifest covers the chain up to the run before it.
    pub runs_chain: RunChainHead,
    /// The runs chained when runs chains began (they may be unsigned); see
    /// `Store::verify`.
    pub legacy: RunChainHead,
}

/// A position in the runs chain: the run at `seq` (1, 2, …; 0: none yet) and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunChainHead {
    pub seq: i64,
    pub run_id: String,
    pub chain_hash: String,
}

impl RunChainHead {
    pub fn genesis() -> RunChainHead {
        RunChainHead {
            seq: 0,
            run_id: String::new(),
            chain_hash: GENESIS.to_string(),
        }
    }
}

/// The columns of a closed run, as stored, that its digest covers.
pub struct RunFields<'a> {
    pub id: &'a str,
    pub trigger: &'a str,
    pub state: &'a str,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub controls_total: i32,
    pub controls_done: i32,
    pub error: Option<&'a str>,
    pub manifest: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub chain_seq: i64,
}

const NONE: &str = "\u{0}none";

pub fn run_digest(r: &RunFields<'_>) -> String {
    digest_fields(
        "run/1",
        &[
            r.id,
            r.trigger,
            r.state,
            &time_text(r.started_at),
            &r.finished_at.map_or_else(|| NONE.to_string(), time_text),
            &r.controls_total.to_string(),
            &r.controls_done.to_string(),
            r.error.unwrap_or(NONE),
            r.manifest.unwrap_or(NONE),
            r.signature.unwrap_or(NONE),
            r.key_id.unwrap_or(NONE),
            &r.chain_seq.to_string(),
        ],
    )
}

/// Where a run row differs from what its (signature-checked) manifest says: the names of the
/// differing fields, with both values. A version 1 manifest was only ever signed for a
/// `completed` run and does not hold the rest of the row.
pub fn run_differences(manifest: &RunManifest, row: &RunFields<'_>) -> Vec<String> {
    fn differ(out: &mut Vec<String>, field: &str, signed: &str, stored: &str) {
        if signed != stored {
            out.push(format!("{field} is {stored:?}, signed as {signed:?}"));
        }
    }
    let mut out = Vec::new();
    differ(&mut out, "id", &manifest.run_id, row.id);
    differ(&mut out, "trigger", &manifest.trigger, row.trigger);
    differ(
        &mut out,
        "started_at",
        &manifest.started_at,
        &time_text(row.started_at),
    );
    differ(
        &mut out,
        "finished_at",
        &manifest.finished_at,
        &row.finished_at.map(time_text).unwrap_or_default(),
    );
    let Some(c) = &manifest.closed else {
        differ(&mut out, "state", "completed", row.state);
        return out;
    };
    differ(&mut out, "state", &c.state, row.state);
    if c.error.as_deref() != row.error {
        let show = |e: Option<&str>| e.map_or("none".to_string(), |e| format!("{e:?}"));
        out.push(format!(
            "error is {}, signed as {}",
            show(row.error),
            show(c.error.as_deref())
        ));
    }
    for (field, signed, stored) in [
        ("controls_total", c.controls_total, row.controls_total),
        ("controls_done", c.controls_done, row.controls_done),
    ] {
        differ(&mut out, field, &signed.to_string(), &stored.to_string());
    }
    out
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

    /// Reads the key file (the 32-byte seed, hex); `None` when it does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Option<Signer>> {
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
                Ok(Some(Signer::from_seed(seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Reads the key file (the 32-byte seed, hex), or creates it (mode 0600, folder created)
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Signer> {
        use anyhow::Context as _;
        if let Some(signer) = Signer::load(path)? {
            return Ok(signer);
        }
        let seed = crate::auth::random_bytes::<32>()
            .map_err(|e| anyhow::anyhow!("cannot generate a signing key: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // Written aside, then linked into place: several instances starting together on one
        // configuration end up with one key (the first link wins; the others read it), and
        // nobody reads a key file half written.
        let aside = path.with_extension(format!("new-{}", std::process::id()));
        crate::access::write_private(&aside, hex::encode(seed).as_bytes())
            .with_context(|| format!("cannot write {}", aside.display()))?;
        let linked = std::fs::hard_link(&aside, path);
        if let Err(e) = std::fs::remove_file(&aside) {
            tracing::warn!(path = %aside.display(), error = %e, "cannot remove the key's temporary file");
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Signer::load(path)?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} appeared and vanished while it was created",
                        path.display()
                    )
                });
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot write {}", path.display()));
            }
        }
        let signer = Signer::from_seed(seed);
        tracing::info!(path = %path.display(), key = %signer.key_id(), "created the evidence signing key");
        Ok(signer)
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

    fn closed_row<'a>(manifest: &'a str) -> RunFields<'a> {
        RunFields {
            id: "r1",
            trigger: "schedule",
            state: "completed",
            started_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            finished_at: DateTime::from_timestamp(1_800_000_060, 0),
            controls_total: 2,
            controls_done: 2,
            error: None,
            manifest: Some(manifest),
            signature: Some("sig"),
            key_id: Some("SHA256:k"),
            chain_seq: 4,
        }
    }

    #[test]
    fn a_run_digest_covers_every_column() {
        let base = run_digest(&closed_row("{}"));
        let t = DateTime::from_timestamp(1_800_000_001, 0).unwrap();
        let edits: [fn(&mut RunFields<'_>); 12] = [
            |r| r.id = "r2",
            |r| r.trigger = "manual",
            |r| r.state = "interrupted",
            |r| r.started_at += chrono::Duration::microseconds(1),
            |r| r.finished_at = None,
            |r| r.controls_total = 3,
            |r| r.controls_done = 1,
            |r| r.error = Some(""),
            |r| r.manifest = None,
            |r| r.signature = None,
            |r| r.key_id = None,
            |r| r.chain_seq = 5,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut row = closed_row("{}");
            edit(&mut row);
            assert_ne!(run_digest(&row), base, "edit {i}");
        }
        let mut moved = closed_row("{}");
        moved.finished_at = Some(t);
        assert_ne!(run_digest(&moved), base);
    }

    #[test]
    fn run_differences_name_each_field_that_is_not_as_signed() {
        let head = RunChainHead::genesis();
        let manifest = |closed: Option<ClosedRun>| RunManifest {
            version: if closed.is_some() { 2 } else { 1 },
            run_id: "r1".into(),
            trigger: "schedule".into(),
            started_at: "2027-01-15T08:00:00.000000Z".into(),
            finished_at: "2027-01-15T08:01:00.000000Z".into(),
            controls: vec![],
            evidence: vec![],
            evidence_chain: ChainHead {
                last_id: 0,
                chain_hash: GENESIS.into(),
            },
            results_chain: ChainHead {
                last_id: 0,
                chain_hash: GENESIS.into(),
            },
            closed,
        };
        let v2 = manifest(Some(ClosedRun {
            state: "completed".into(),
            error: None,
            controls_total: 2,
            controls_done: 2,
            runs_chain: head.clone(),
            legacy: head,
        }));
        let v1 = manifest(None);
        type Edit = fn(&mut RunFields<'_>);
        let cases: [(&str, &RunManifest, Edit, &[&str]); 7] = [
            ("as signed", &v2, |_| {}, &[]),
            ("as signed, version 1", &v1, |_| {}, &[]),
            (
                "another end",
                &v2,
                |r| r.finished_at = DateTime::from_timestamp(1_800_000_000, 0),
                &[
                    "finished_at is \"2027-01-15T08:00:00.000000Z\", signed as \"2027-01-15T08:01:00.000000Z\"",
                ],
            ),
            (
                "another state and error",
                &v2,
                |r| {
                    r.state = "interrupted";
                    r.error = Some("boom");
                },
                &[
                    "state is \"interrupted\", signed as \"completed\"",
                    "error is \"boom\", signed as none",
                ],
            ),
            (
                "a version 1 manifest was signed for a completed run",
                &v1,
                |r| r.state = "interrupted",
                &["state is \"interrupted\", signed as \"completed\""],
            ),
            (
                "another trigger and count",
                &v2,
                |r| {
                    r.trigger = "manual";
                    r.controls_done = 1;
                },
                &[
                    "trigger is \"manual\", signed as \"schedule\"",
                    "controls_done is \"1\", signed as \"2\"",
                ],
            ),
            (
                "another run's manifest",
                &v2,
                |r| r.id = "r9",
                &["id is \"r9\", signed as \"r1\""],
            ),
        ];
        for (name, manifest, edit, expect) in cases {
            let mut row = closed_row("{}");
            edit(&mut row);
            assert_eq!(run_differences(manifest, &row), expect, "{name}");
        }
        // A version 1 manifest reads back as it was written (its bytes are what was signed).
        let text = String::from_utf8(v1.to_bytes()).unwrap();
        assert!(!text.contains("closed"));
        assert_eq!(serde_json::from_str::<RunManifest>(&text).unwrap(), v1);
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
