//! Staff authentication and authorization rules: roles and what each may do, passwords
//! (argon2id), TOTP second factors (RFC 6238) with one-time recovery codes, and the random
//! tokens behind sessions, CSRF protection and API access.
//!
//! Pure rules and value types. The store keeps users, sessions and tokens (hashed); the
//! dashboard and the API apply these rules; `trellis user` manages users.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a user is allowed to do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read dashboards (no raw evidence, no audit log).
    Viewer,
    /// Read everything, export evidence.
    Auditor,
    /// Review: exceptions, access requests, run controls now; and everything an auditor may.
    Security,
    /// Users and settings; and everything else.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Security, Role::Auditor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Security => "security",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may do `action`.
    pub fn can(self, action: Permission) -> bool {
        self >= action.least_role()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of action the dashboard and the API guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Dashboards: controls, results, findings, runs.
    Read,
    /// Raw evidence and the audit log.
    ReadEvidence,
    /// Evidence exports.
    Export,
    /// Exceptions, access requests, "run now".
    Review,
    /// Users, API tokens of others, settings.
    Administer,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Read,
        Permission::ReadEvidence,
        Permission::Export,
        Permission::Review,
        Permission::Administer,
    ];

    /// The least role allowed to do it (roles are ordered: each can do what those below can).
    pub fn least_role(self) -> Role {
        match self {
            Permission::Read => Role::Viewer,
            Permission::ReadEvidence | Permission::Export => Role::Auditor,
            Permission::Review => Role::Security,
            Permission::Administer => Role::Admin,
        }
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (hashing cost is bounded).
pub const MAX_PASSWORD_LEN: usize = 256;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_LEN} characters")]
    TooLong,
    #[error("the password must not contain the user name")]
    ContainsUsername,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password against the policy and hashes it (a PHC string).
pub fn hash_password(username: &str, password: &str) -> Result<String, PasswordError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if len > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(PasswordError::ContainsUsername);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash. A malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.chars().count() > MAX_PASSWORD_LEN {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that a login for an unknown
/// name takes as long as one for a known name.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        hash_password("", "not-a-real-password-0000").unwrap_or_default()
    });
    &DUMMY
}

/// `n` random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)?;
    Ok(b)
}

/// A random secret token (URL-safe) and the SHA-256 (hex) the store keeps of it.
pub fn new_token(prefix: &str) -> Result<(String, String), getrandom::Error> {
    let raw = random_bytes::<32>()?;
    let token = format!("{prefix}{}", base32_lower(&raw));
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The SHA-256 (hex) of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn base32_lower(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// API tokens start with this, so they can be recognised (and revoked) when leaked.
pub const API_TOKEN_PREFIX: &str = "trellis_";

/// TOTP second factors (RFC 6238: SHA-1, 6 digits, 30-second steps — what authenticator
/// apps expect).
pub mod totp {
    use totp_rs::{Algorithm, TOTP};

    /// Steps either side of now accepted (clock drift).
    const SKEW: u8 = 1;
    const STEP: u64 = 30;

    fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<TOTP> {
        TOTP::new(
            Algorithm::SHA1,
            6,
            SKEW,
            STEP,
            secret.to_vec(),
            Some(issuer.to_string()),
            account.to_string(),
        )
        .ok()
    }

    /// A new random secret (20 bytes, as RFC 4226 recommends), base32.
    pub fn new_secret() -> Result<String, getrandom::Error> {
        Ok(data_encoding::BASE32_NOPAD.encode(&super::random_bytes::<20>()?))
    }

    fn decode(secret: &str) -> Option<Vec<u8>> {
        data_encoding::BASE32_NOPAD
            .decode(secret.trim_end_matches('=').as_bytes())
            .ok()
    }

    /// The `otpauth://` URL an authenticator app scans.
    pub fn url(secret: &str, issuer: &str, account: &str) -> Option<String> {
        // The issuer and account may not contain ':' in otpauth URLs.
        let issuer = issuer.replace(':', " ");
        let account = account.replace(':', " ");
        Some(totp(&decode(secret)?, &issuer, &account)?.get_url())
    }

    /// The QR code of `url`, as an SVG document.
    pub fn qr_svg(url: &str) -> Option<String> {
        let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
        Some(
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build(),
        )
    }

    /// The time step `code` is valid for at `unix_time` (within the allowed drift), if any.
    /// Callers reject a step at or before the last one used, so no code is accepted twice.
    pub fn verify(secret: &str, code: &str, unix_time: u64) -> Option<u64> {
        let code = code.trim().replace(' ', "");
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = totp(&decode(secret)?, "trellis", "user")?;
        let now = unix_time / STEP;
        (now.saturating_sub(u64::from(SKEW))..=now + u64::from(SKEW))
            .rev()
            .find(|&step| {
                let expected = totp.generate(step * STEP);
                constant_time_eq(expected.as_bytes(), code.as_bytes())
            })
    }

    /// The code for `unix_time` (tests and enrolment checks).
    pub fn code(secret: &str, unix_time: u64) -> Option<String> {
        Some(totp(&decode(secret)?, "trellis", "user")?.generate(unix_time))
    }

    fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// One-time recovery codes: `xxxx-xxxx-xxxx` (60 bits each), kept as SHA-256 hashes.
pub mod recovery {
    /// Codes issued at enrolment.
    pub const COUNT: usize = 10;

    /// New codes, and their hashes to store.
    pub fn generate() -> Result<(Vec<String>, Vec<String>), getrandom::Error> {
        let mut codes = Vec::with_capacity(COUNT);
        for _ in 0..COUNT {
            let raw = super::random_bytes::<8>()?;
            let text = super::base32_lower(&raw);
            codes.push(format!("{}-{}-{}", &text[0..4], &text[4..8], &text[8..12]));
        }
        let hashes = codes.iter().map(|c| hash(c)).collect();
        Ok((codes, hashes))
    }

    /// The stored form of a code as typed (case, spaces and dashes do not matter).
    pub fn hash(code: &str) -> String {
        let normal: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        super::token_hash(&normal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        // `check(role, permitted)`: exactly these permissions.
        let check = |role: Role, permitted: &[Permission]| {
            for p in Permission::ALL {
                assert_eq!(role.can(p), permitted.contains(&p), "{role} {p:?}");
            }
        };
        use Permission::*;
        check(Role::Viewer, &[Read]);
        check(Role::Auditor, &[Read, ReadEvidence, Export]);
        check(Role::Security, &[Read, ReadEvidence, Export, Review]);
        check(
            Role::Admin,
            &[Read, ReadEvidence, Export, Review, Administer],
        );
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn passwords_are_argon2id_and_checked() {
        let hash = hash_password("sam", "correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery "));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(
            hash,
            hash_password("sam", "correct horse battery").unwrap(),
            "salted"
        );
        assert_eq!(hash_password("sam", "short"), Err(PasswordError::TooShort));
        assert_eq!(
            hash_password("samuel", "my name is Samuel!"),
            Err(PasswordError::ContainsUsername)
        );
        assert_eq!(
            hash_password("sam", &"x".repeat(MAX_PASSWORD_LEN + 1)),
            Err(PasswordError::TooLong)
        );
        assert!(!verify_password(dummy_hash(), "anything at all"));
    }

    #[test]
    fn totp_follows_rfc_6238() {
        // RFC 6238 appendix B: the SHA-1 key "12345678901234567890", 8 digits; its last six
        // digits are the 6-digit codes.
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (time, rfc) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp::code(&secret, time).unwrap(), rfc[2..], "{time}");
            assert_eq!(totp::verify(&secret, &rfc[2..], time), Some(time / 30));
        }
        // One step of drift either way, not two; never a malformed code.
        let code = totp::code(&secret, 1_000_000_000).unwrap();
        assert!(totp::verify(&secret, &code, 1_000_000_000 + 30).is_some());
        assert!(totp::verify(&secret, &code, 1_000_000_000 - 30).is_some());
        assert!(totp::verify(&secret, &code, 1_000_000_000 + 90).is_none());
        assert!(totp::verify(&secret, "12345", 0).is_none());
        assert!(totp::verify(&secret, "abcdef", 0).is_none());
        let url = totp::url(&secret, "Trellis (Sprout)", "sam").unwrap();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(url.contains(&format!("secret={secret}")), "{url}");
        let svg = totp::qr_svg(&url).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert_eq!(totp::new_secret().unwrap().len(), 32);
    }

    #[test]
    fn recovery_codes_are_random_and_hashed() {
        let (codes, hashes) = recovery::generate().unwrap();
        assert_eq!(codes.len(), recovery::COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), recovery::COUNT);
        for (c, h) in codes.iter().zip(&hashes) {
            assert_eq!(c.len(), 14);
            assert_eq!(&recovery::hash(c), h);
            assert_eq!(&recovery::hash(&c.to_uppercase().replace('-', " ")), h);
        }
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, ha) = new_token(API_TOKEN_PREFIX).unwrap();
        let (b, _) = new_token(API_TOKEN_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("trellis_") && a.len() == 8 + 52, "{a}");
        assert_eq!(token_hash(&a), ha);
        assert_eq!(ha.len(), 64);
    }
}
