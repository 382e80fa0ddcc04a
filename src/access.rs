//! Gated trust-page documents: visitors' access requests, the security team's decisions, and
//! the signed, expiring, revocable download links an approval yields.
//!
//! Plain data and pure rules: the store keeps the requests, `web/documents.rs` takes them from
//! visitors and serves the links, `trellis access` decides. A link is
//! `/access/{request}?expires={unix}&signature={hmac}`: the HMAC-SHA256 (key from
//! `trust_page.documents.link_key_file`) covers the request id and the expiry, so neither can
//! be changed; the request's stored state is checked on every use, so a revoked approval stops
//! working at once.

use std::path::Path;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{DocumentConfig, DocumentsConfig};

type HmacSha256 = Hmac<Sha256>;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessStatus {
    Pending,
    Approved,
    Denied,
    Revoked,
}

impl AccessStatus {
    pub const ALL: [AccessStatus; 4] = [
        AccessStatus::Pending,
        AccessStatus::Approved,
        AccessStatus::Denied,
        AccessStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessStatus::Pending => "pending",
            AccessStatus::Approved => "approved",
            AccessStatus::Denied => "denied",
            AccessStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<AccessStatus> {
        AccessStatus::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for AccessStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision of the security team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve { expires_at: DateTime<Utc> },
    Deny,
    Revoke,
}

impl Decision {
    /// The state the request must be in for this decision, and the state it moves to.
    pub fn transition(self) -> (AccessStatus, AccessStatus) {
        match self {
            Decision::Approve { .. } => (AccessStatus::Pending, AccessStatus::Approved),
            Decision::Deny => (AccessStatus::Pending, AccessStatus::Denied),
            Decision::Revoke => (AccessStatus::Approved, AccessStatus::Revoked),
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Decision::Approve { .. } => "approve",
            Decision::Deny => "deny",
            Decision::Revoke => "revoke",
        }
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessRequest {
    pub id: String,
    pub requested_at: DateTime<Utc>,
    pub name: String,
    pub email: String,
    pub company: String,
    pub documents: Vec<String>,
    /// SHA-256 of the NDA text the requester accepted.
    pub nda_sha256: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub status: AccessStatus,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    /// When an approval's link stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Downloads made through the link.
    pub downloads: usize,
}

/// A new request, checked: what the store records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessRequest {
    pub name: String,
    pub email: String,
    pub company: String,
    pub documents: Vec<String>,
    pub nda_sha256: String,
}

/// The request form as submitted (all fields as text; absent checkboxes are empty).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct RequestForm {
    pub name: String,
    pub email: String,
    pub company: String,
    /// Document ids ticked.
    #[serde(rename = "document")]
    pub documents: Vec<String>,
    /// `yes` when the NDA box is ticked.
    pub nda: String,
    /// The SHA-256 of the NDA text shown with the form (so a changed text is re-read).
    pub nda_sha256: String,
    /// The form token (see [`LinkSigner::form_token`]).
    pub token: String,
    /// A field people never see: bots fill it in.
    pub website: String,
}

/// A problem with one field of the form, shown next to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

const MAX_FIELD: usize = 200;

/// The SHA-256 (hex) of the NDA text.
pub fn nda_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Checks a submitted form against the configured documents and NDA. Every problem is
/// reported, each naming its field.
/// A bare email address (`name@example.com`): display text (`Name <name@example.com>`) is
/// refused, so one inbox is one address and what is stored is what is mailed.
pub fn parse_email(text: &str) -> Result<email_address::EmailAddress, email_address::Error> {
    email_address::EmailAddress::parse_with_options(
        text,
        email_address::Options::default().without_display_text(),
    )
}

pub fn parse_request(
    form: &RequestForm,
    config: &DocumentsConfig,
) -> Result<NewAccessRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut text = |field: &'static str, value: &str, label: &str| -> String {
        let v = value.trim();
        if v.is_empty() {
            errors.push(FieldError {
                field,
                message: format!("Enter your {label}."),
            });
        } else if v.chars().count() > MAX_FIELD || v.chars().any(char::is_control) {
            errors.push(FieldError {
                field,
                message: format!("Enter your {label} on one line, at most {MAX_FIELD} characters."),
            });
        }
        v.to_string()
    };
    let name = text("name", &form.name, "name");
    let company = text("company", &form.company, "company");
    let email = form.email.trim().to_string();
    match parse_email(&email) {
        _ if email.is_empty() => errors.push(FieldError {
            field: "email",
            message: "Enter your work email address.".into(),
        }),
        Err(_) => errors.push(FieldError {
            field: "email",
            message: "Enter a valid email address, like name@company.com.".into(),
        }),
        Ok(addr) => {
            let domain = addr.domain().to_ascii_lowercase();
            if email.chars().count() > MAX_FIELD {
                errors.push(FieldError {
                    field: "email",
                    message: format!("Enter an address of at most {MAX_FIELD} characters."),
                });
            } else if config
                .blocked_email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain))
            {
                errors.push(FieldError {
                    field: "email",
                    message: "Use your work email address: we share these documents with \
                              companies, not personal accounts."
                        .into(),
                });
            }
        }
    }
    let mut documents: Vec<String> = Vec::new();
    for id in &form.documents {
        match config.items.iter().find(|d| &d.id == id) {
            Some(d) if !documents.contains(&d.id) => documents.push(d.id.clone()),
            Some(_) => {}
            None => errors.push(FieldError {
                field: "document",
                message: "Choose from the documents listed.".into(),
            }),
        }
    }
    if documents.is_empty() && !errors.iter().any(|e| e.field == "document") {
        errors.push(FieldError {
            field: "document",
            message: "Choose at least one document.".into(),
        });
    }
    // Keep the configured order, whatever the order submitted.
    documents.sort_by_key(|id| config.items.iter().position(|d| &d.id == id));
    let current_nda = nda_sha256(config.nda.as_deref().unwrap_or_default());
    if form.nda.trim() != "yes" {
        errors.push(FieldError {
            field: "nda",
            message: "Accept the non-disclosure terms to request these documents.".into(),
        });
    } else if form.nda_sha256 != current_nda {
        errors.push(FieldError {
            field: "nda",
            message: "The non-disclosure terms have changed since the form was opened: read \
                      them again and resubmit."
                .into(),
        });
    }
    if errors.is_empty() {
        Ok(NewAccessRequest {
            name,
            email: email.to_ascii_lowercase(),
            company,
            documents,
            nda_sha256: current_nda,
        })
    } else {
        Err(errors)
    }
}

/// The documents a request names that are still configured, in configured order.
pub fn granted_documents<'a>(
    request: &AccessRequest,
    config: &'a DocumentsConfig,
) -> Vec<&'a DocumentConfig> {
    config
        .items
        .iter()
        .filter(|d| request.documents.contains(&d.id))
        .collect()
}

/// Why a download link does not work. The messages are shown to the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not valid")]
    Invalid,
    #[error("this link has expired")]
    Expired,
    #[error("this link has been revoked")]
    Revoked,
}

/// Checks a presented link against the stored request: signature, expiry (the link's and
/// the approval's) and state.
pub fn check_link(
    signer: &LinkSigner,
    request: Option<&AccessRequest>,
    expires: i64,
    signature: &str,
    now: DateTime<Utc>,
) -> Result<(), LinkError> {
    let Some(request) = request else {
        return Err(LinkError::Invalid);
    };
    if !signer.verify(&request.id, expires, signature) {
        return Err(LinkError::Invalid);
    }
    match request.status {
        AccessStatus::Approved => {}
        AccessStatus::Revoked => return Err(LinkError::Revoked),
        AccessStatus::Pending | AccessStatus::Denied => return Err(LinkError::Invalid),
    }
    let approval_ends = request.expires_at.map_or(i64::MIN, |t| t.timestamp());
    if now.timestamp() >= expires.min(approval_ends) {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// Signs and checks download links and form tokens with one secret key.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner([redacted])")
    }
}

/// How long a form token is accepted after the form was served.
const FORM_TOKEN_LIFETIME: i64 = 24 * 3600;

impl LinkSigner {
    pub fn from_key(key: [u8; 32]) -> LinkSigner {
        LinkSigner { key }
    }

    /// Reads the key file, or creates it (32 random bytes, hex, mode 0600, its folder
    /// created) when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<LinkSigner> {
        use anyhow::Context as _;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                let key = bytes.with_context(|| {
                    format!(
                        "link signing key {}: expected 64 hex characters (32 bytes)",
                        path.display()
                    )
                })?;
                Ok(LinkSigner { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("cannot generate a link signing key: {e}"))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                write_private(path, hex::encode(key).as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "created the link signing key");
                Ok(LinkSigner { key })
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn mac(&self, message: &str) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        mac.update(message.as_bytes());
        mac
    }

    /// The signature of a download link.
    pub fn sign(&self, request_id: &str, expires: i64) -> String {
        self.sign_for("access-link", request_id, expires)
    }

    /// Whether `signature` is this key's for the request and expiry (constant time).
    pub fn verify(&self, request_id: &str, expires: i64, signature: &str) -> bool {
        self.verify_for("access-link", request_id, expires, signature)
    }

    /// The signature of a link for `purpose` (`access-link`, `subscribe-confirm`,
    /// `unsubscribe`): a link signed for one purpose is refused for any other.
    pub fn sign_for(&self, purpose: &str, id: &str, expires: i64) -> String {
        hex::encode(
            self.mac(&format!("{purpose}\n{id}\n{expires}"))
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `signature` is this key's for `purpose`, `id` and `expires` (constant time).
    pub fn verify_for(&self, purpose: &str, id: &str, expires: i64, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        self.mac(&format!("{purpose}\n{id}\n{expires}"))
            .verify_slice(&bytes)
            .is_ok()
    }

    /// The path and query of a download link (append to the base URL).
    pub fn link_path(&self, request_id: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        format!(
            "/access/{request_id}?expires={expires}&signature={}",
            self.sign(request_id, expires)
        )
    }

    /// A token for the request form served at `issued`: proves the form came from this
    /// server (a cross-site or scripted post without fetching it fails).
    pub fn form_token(&self, issued: DateTime<Utc>) -> String {
        let t = issued.timestamp();
        let mac = hex::encode(
            self.mac(&format!("request-form\n{t}"))
                .finalize()
                .into_bytes(),
        );
        format!("{t}.{mac}")
    }

    /// Whether a form token is this server's and was issued within the last day.
    pub fn check_form_token(&self, token: &str, now: DateTime<Utc>) -> bool {
        let Some((t, mac)) = token.split_once('.') else {
            return false;
        };
        let (Ok(issued), Ok(bytes)) = (t.parse::<i64>(), hex::decode(mac)) else {
            return false;
        };
        let age = now.timestamp() - issued;
        (-300..=FORM_TOKEN_LIFETIME).contains(&age)
            && self
                .mac(&format!("request-form\n{issued}"))
                .verify_slice(&bytes)
                .is_ok()
    }
}

/// Writes a file readable by its owner only (created with mode 0600 on Unix).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn config() -> DocumentsConfig {
        DocumentsConfig {
            items: vec![
                DocumentConfig {
                    id: "soc2".into(),
                    title: "SOC 2".into(),
                    description: None,
                    file: "soc2.pdf".into(),
                },
                DocumentConfig {
                    id: "pentest".into(),
                    title: "Pen test".into(),
                    description: None,
                    file: "pentest.pdf".into(),
                },
            ],
            nda: Some("Keep it secret.".into()),
            ..DocumentsConfig::default()
        }
    }

    fn form() -> RequestForm {
        RequestForm {
            name: " Ada Lovelace ".into(),
            email: "Ada@Analytical.example".into(),
            company: "Analytical Engines".into(),
            documents: vec!["pentest".into(), "soc2".into()],
            nda: "yes".into(),
            nda_sha256: nda_sha256("Keep it secret."),
            ..RequestForm::default()
        }
    }

    /// `check(edit, expect)`: the form edited by `edit` is accepted, or rejected naming
    /// exactly the fields in `expect`.
    fn check(edit: impl Fn(&mut RequestForm), expect: &[&str]) {
        let mut f = form();
        edit(&mut f);
        match parse_request(&f, &config()) {
            Ok(_) => assert!(expect.is_empty(), "accepted, expected errors on {expect:?}"),
            Err(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
                assert_eq!(fields, expect, "{errors:?}");
            }
        }
    }

    #[test]
    fn request_forms_are_checked_field_by_field() {
        check(|_| {}, &[]);
        check(|f| f.name = "  ".into(), &["name"]);
        check(|f| f.company = "x".repeat(201), &["company"]);
        check(|f| f.name = "a\nb".into(), &["name"]);
        check(|f| f.email = "not an email".into(), &["email"]);
        check(|f| f.email = String::new(), &["email"]);
        check(|f| f.email = "someone@GMAIL.com".into(), &["email"]);
        check(|f| f.documents.clear(), &["document"]);
        check(|f| f.documents = vec!["other".into()], &["document"]);
        check(|f| f.nda = String::new(), &["nda"]);
        check(|f| f.nda_sha256 = nda_sha256("old terms"), &["nda"]);
        check(
            |f| {
                f.name.clear();
                f.email.clear();
                f.nda.clear();
            },
            &["name", "email", "nda"],
        );
        let ok = parse_request(&form(), &config()).unwrap();
        assert_eq!(ok.name, "Ada Lovelace");
        assert_eq!(ok.email, "ada@analytical.example");
        assert_eq!(ok.documents, ["soc2", "pentest"], "configured order");
    }

    fn request(status: AccessStatus, expires_at: Option<DateTime<Utc>>) -> AccessRequest {
        AccessRequest {
            id: "r1".into(),
            requested_at: at(0),
            name: "n".into(),
            email: "e@x.example".into(),
            company: "c".into(),
            documents: vec!["soc2".into()],
            nda_sha256: String::new(),
            client_ip: None,
            user_agent: None,
            status,
            decided_at: None,
            decided_by: None,
            decision_note: None,
            expires_at,
            downloads: 0,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn links_are_signed_expiring_and_revocable() {
        let signer = LinkSigner::from_key([7; 32]);
        let other = LinkSigner::from_key([8; 32]);
        let expires = at(100).timestamp();
        let sig = signer.sign("r1", expires);
        let approved = request(AccessStatus::Approved, Some(at(100)));
        let ok = |r: &AccessRequest, e: i64, s: &str, now: i64| {
            check_link(&signer, Some(r), e, s, at(now))
        };
        assert_eq!(ok(&approved, expires, &sig, 0), Ok(()));
        assert_eq!(ok(&approved, expires, &sig, 100), Err(LinkError::Expired));
        // The expiry cannot be extended, nor the link moved to another request.
        assert_eq!(
            ok(&approved, expires + 1000, &sig, 0),
            Err(LinkError::Invalid)
        );
        let mut other_request = approved.clone();
        other_request.id = "r2".into();
        assert_eq!(
            ok(&other_request, expires, &sig, 0),
            Err(LinkError::Invalid)
        );
        // Another key's signature, or garbage, is refused.
        let foreign = other.sign("r1", expires);
        assert_eq!(ok(&approved, expires, &foreign, 0), Err(LinkError::Invalid));
        assert_eq!(ok(&approved, expires, "zz", 0), Err(LinkError::Invalid));
        // The stored state decides: revoked, denied or pending links do not work.
        let revoked = request(AccessStatus::Revoked, Some(at(100)));
        assert_eq!(ok(&revoked, expires, &sig, 0), Err(LinkError::Revoked));
        let pending = request(AccessStatus::Pending, None);
        assert_eq!(ok(&pending, expires, &sig, 0), Err(LinkError::Invalid));
        // A stored approval shortened after the link was made wins.
        let shortened = request(AccessStatus::Approved, Some(at(50)));
        assert_eq!(ok(&shortened, expires, &sig, 60), Err(LinkError::Expired));
        assert_eq!(
            check_link(&signer, None, expires, &sig, at(0)),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn form_tokens_expire_and_cannot_be_forged() {
        let signer = LinkSigner::from_key([1; 32]);
        let token = signer.form_token(at(0));
        assert!(signer.check_form_token(&token, at(10)));
        assert!(signer.check_form_token(&token, at(FORM_TOKEN_LIFETIME)));
        assert!(!signer.check_form_token(&token, at(FORM_TOKEN_LIFETIME + 1)));
        assert!(!LinkSigner::from_key([2; 32]).check_form_token(&token, at(10)));
        let (t, mac) = token.split_once('.').unwrap();
        let later = format!("{}.{mac}", t.parse::<i64>().unwrap() + 1);
        assert!(!signer.check_form_token(&later, at(10)));
        assert!(!signer.check_form_token("", at(0)));
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/link.key");
        let a = LinkSigner::load_or_create(&path).unwrap();
        let b = LinkSigner::load_or_create(&path).unwrap();
        assert_eq!(a.sign("r", 1), b.sign("r", 1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        let err = LinkSigner::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("expected 64 hex characters"), "{err}");
    }
}
