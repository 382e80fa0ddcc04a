//! The OpenID Connect relying party behind single sign-on (`dashboard.oidc`): discovery,
//! the authorization request (code flow, PKCE S256, `state`, `nonce`), the code exchange, and
//! the ID token's verification (signature against the provider's JWKS, issuer, audience,
//! expiry, nonce) — with the `openidconnect` crate.
//!
//! The discovery document and the JWKS are cached (the document for an hour); a token whose
//! key id the cached JWKS does not know makes Trellis fetch the JWKS again once (the provider
//! rotated its keys). [`Oidc::decide`] turns verified claims into a role by the configured
//! rules (allowed email domains, `role_map`, trusted `amr`/`acr`): pure, so tested alone.
//! The dashboard's handlers (`web::dashboard::oidc`) keep the sign-ins under way in the store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IdTokenVerifier, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::config::{OidcConfig, Secret};

/// The path of the callback (the redirect URI registered at the provider).
pub const CALLBACK_PATH: &str = "/dashboard/login/oidc/callback";

/// How long the discovery document is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Each request to the provider gives up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every claim of the ID token beyond the standard ones (`groups`, `roles`…).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdTokenResponse = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type RpClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    IdTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why single sign-on failed. The `Display` text is for the log; [`OidcError::kind`] is what
/// the audit log and the page may say.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider cannot be reached or read: {0}")]
    Provider(String),
    #[error("the code exchange failed: {0}")]
    Token(String),
    #[error("the ID token is not valid ({kind}): {detail}")]
    IdToken { kind: &'static str, detail: String },
}

impl OidcError {
    /// A short, token-free reason: `provider`, `token`, `audience`, `expired`, `signature`,
    /// `nonce`, `issuer`, `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            OidcError::Provider(_) => "provider",
            OidcError::Token(_) => "token",
            OidcError::IdToken { kind, .. } => kind,
        }
    }
}

fn id_token_error(error: &openidconnect::ClaimsVerificationError) -> OidcError {
    use openidconnect::ClaimsVerificationError as E;
    let kind = match error {
        E::Expired(_) => "expired",
        E::InvalidAudience(_) => "audience",
        E::InvalidIssuer(_) => "issuer",
        E::InvalidNonce(_) => "nonce",
        E::SignatureVerification(_) => "signature",
        _ => "invalid",
    };
    OidcError::IdToken {
        kind,
        detail: error.to_string(),
    }
}

/// An authorization request to send the browser to.
#[derive(Debug)]
pub struct Start {
    pub url: url::Url,
    /// Random; the callback must bring it back.
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What a verified ID token says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified`, when the token says.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    /// The values of `role_claim` (a string or a list of strings).
    pub role_values: Vec<String>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
}

/// Why verified claims do not sign anyone in (each a clear page and a `login.failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No email address, or one marked unverified.
    NoEmail,
    /// The email's domain is not in `allowed_domains`.
    Domain(String),
    /// No value of `role_claim` is in `role_map`.
    NoRole,
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoEmail => "no verified email",
            Refusal::Domain(_) => "domain not allowed",
            Refusal::NoRole => "no role",
        }
    }
}

/// What signs in: the user (by email), their role, and whether the provider's MFA counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub idp_mfa: bool,
}

struct Discovered {
    metadata: CoreProviderMetadata,
    jwks: CoreJsonWebKeySet,
    at: Instant,
}

/// The configured identity provider.
pub struct Oidc {
    config: OidcConfig,
    issuer: IssuerUrl,
    secret: Secret,
    redirect_url: Option<RedirectUrl>,
    http: reqwest::Client,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for the provider: system roots, no redirects followed, no idle connections
/// kept, bounded time.
fn http_client() -> Result<reqwest::Client, String> {
    crate::net::https_client(HTTP_TIMEOUT)?
        // Sign-ins are rare: a pooled connection would mostly be one the provider (or its
        // load balancer) has closed by then, and the token request would fail on it.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

impl Oidc {
    /// Checks the configuration and reads the client secret; the provider is contacted on
    /// the first sign-in, not here (Trellis starts while the provider is down).
    pub fn from_config(config: &OidcConfig, base_dir: &Path) -> Result<Oidc, String> {
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| format!("dashboard.oidc.issuer: not a URL: {e}"))?;
        let secret = client_secret(config, base_dir)?;
        let redirect_url = config
            .redirect_url
            .as_ref()
            .map(|u| RedirectUrl::new(u.clone()))
            .transpose()
            .map_err(|e| format!("dashboard.oidc.redirect_url: not a URL: {e}"))?;
        Ok(Oidc {
            config: config.clone(),
            issuer,
            secret,
            redirect_url,
            http: http_client()?,
            discovered: tokio::sync::Mutex::new(None),
        })
    }

    /// What the sign-in button says after "Sign in with".
    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    /// The redirect URI: configured, or this request's origin with [`CALLBACK_PATH`].
    pub fn redirect_url(&self, request_origin: &str) -> String {
        match &self.redirect_url {
            Some(u) => u.as_str().to_string(),
            None => format!("{}{CALLBACK_PATH}", request_origin.trim_end_matches('/')),
        }
    }

    /// The discovery document and JWKS, fetched when missing or old (or `refresh_jwks`).
    async fn provider(&self, refresh_jwks: bool) -> Result<Arc<Discovered>, OidcError> {
        let mut cached = self.discovered.lock().await;
        if let Some(d) = cached.as_ref()
            && d.at.elapsed() < DISCOVERY_TTL
        {
            if !refresh_jwks {
                return Ok(d.clone());
            }
            let jwks = CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), &self.http)
                .await
                .map_err(|e| OidcError::Provider(format!("JWKS: {e}")))?;
            tracing::info!(
                issuer = self.issuer.as_str(),
                "oidc: fetched the JWKS again"
            );
            let fresh = Arc::new(Discovered {
                metadata: d.metadata.clone(),
                jwks,
                at: d.at,
            });
            *cached = Some(fresh.clone());
            return Ok(fresh);
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery: {e}")))?;
        let jwks = metadata.jwks().clone();
        let fresh = Arc::new(Discovered {
            metadata,
            jwks,
            at: Instant::now(),
        });
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    fn client(&self, d: &Discovered, redirect_url: &str) -> Result<RpClient, OidcError> {
        let redirect = RedirectUrl::new(redirect_url.to_string())
            .map_err(|e| OidcError::Provider(format!("redirect URL: {e}")))?;
        Ok(RpClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.expose().to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// The authorization request (code flow, PKCE S256, fresh `state` and `nonce`).
    pub async fn start(&self, redirect_url: &str) -> Result<Start, OidcError> {
        let d = self.provider(false).await?;
        let client = self.client(&d, redirect_url)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.config.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Start {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token: signature
    /// (fetching the JWKS again once for an unknown key id), issuer, audience, expiry, nonce.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        redirect_url: &str,
    ) -> Result<Identity, OidcError> {
        let d = self.provider(false).await?;
        let client = self.client(&d, redirect_url)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Token(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Token(error_chain(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Token("the response has no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verify = |jwks: &CoreJsonWebKeySet| {
            let verifier = self.verifier(&d.metadata, jwks.clone());
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&d.jwks) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) => {
                let fresh = self.provider(true).await?;
                verify(&fresh.jwks)
            }
            other => other,
        }
        .map_err(|e| id_token_error(&e))?;
        Ok(self.identity(&claims))
    }

    /// A verifier of ID tokens for this client. Public-client style on purpose: signatures
    /// must be the provider's asymmetric ones (no HMAC with the client secret).
    fn verifier<'a>(
        &self,
        metadata: &CoreProviderMetadata,
        jwks: CoreJsonWebKeySet,
    ) -> IdTokenVerifier<'a, CoreJsonWebKey> {
        let algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| {
                !matches!(
                    a,
                    CoreJwsSigningAlgorithm::HmacSha256
                        | CoreJwsSigningAlgorithm::HmacSha384
                        | CoreJwsSigningAlgorithm::HmacSha512
                        | CoreJwsSigningAlgorithm::None
                )
            })
            .cloned()
            .collect();
        IdTokenVerifier::new_public_client(
            ClientId::new(self.config.client_id.clone()),
            self.issuer.clone(),
            jwks,
        )
        .set_allowed_algs(algs)
    }

    fn identity(
        &self,
        claims: &openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>,
    ) -> Identity {
        let role_values = match claims
            .additional_claims()
            .claims
            .get(&self.config.role_claim)
        {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()));
        Identity {
            issuer: claims.issuer().as_str().to_string(),
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified(),
            name,
            role_values,
            amr: claims
                .auth_method_refs()
                .map(|a| a.iter().map(|m| m.as_str().to_string()).collect())
                .unwrap_or_default(),
            acr: claims.auth_context_ref().map(|a| a.as_str().to_string()),
        }
    }

    /// Applies the configured rules to a verified identity.
    pub fn decide(&self, identity: &Identity) -> Result<Decision, Refusal> {
        decide(&self.config, identity)
    }
}

/// The rules: a verified email, in an allowed domain; the highest role its `role_claim`
/// values map to; the provider's MFA counts when `amr`/`acr` match `trust_idp_mfa`.
pub fn decide(config: &OidcConfig, identity: &Identity) -> Result<Decision, Refusal> {
    let email = identity
        .email
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| e.contains('@') && identity.email_verified != Some(false))
        .ok_or(Refusal::NoEmail)?;
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d).to_string();
    let allowed = config.allowed_domains.is_empty()
        || config.allowed_domains.iter().any(|d| {
            d.trim()
                .trim_start_matches('@')
                .eq_ignore_ascii_case(&domain)
        });
    if !allowed {
        return Err(Refusal::Domain(domain));
    }
    let role = identity
        .role_values
        .iter()
        .filter_map(|v| config.role_map.get(v))
        .max()
        .copied()
        .ok_or(Refusal::NoRole)?;
    let idp_mfa = config.trust_idp_mfa.as_ref().is_some_and(|t| {
        identity.amr.iter().any(|m| t.amr.contains(m))
            || identity.acr.as_ref().is_some_and(|a| t.acr.contains(a))
    });
    let display_name = identity
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| email.clone());
    Ok(Decision {
        email,
        display_name,
        role,
        idp_mfa,
    })
}

/// An error with its causes (`request failed: connection refused`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The client secret from the environment variable or file the configuration names.
fn client_secret(config: &OidcConfig, base_dir: &Path) -> Result<Secret, String> {
    if let Some(var) = &config.client_secret_env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_string())),
            _ => Err(format!(
                "environment variable `{var}` (dashboard.oidc.client_secret_env) is not set"
            )),
        };
    }
    if let Some(file) = &config.client_secret_file {
        let path = base_dir.join(file);
        return std::fs::read_to_string(&path)
            .map(|t| Secret::new(t.trim().to_string()))
            .map_err(|e| format!("cannot read the client secret {}: {e}", path.display()));
    }
    Err("dashboard.oidc: no client_secret_env or client_secret_file".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrustIdpMfa;

    fn config() -> OidcConfig {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example",
            "client_id": "trellis",
            "client_secret_env": "X",
            "role_map": {"sec": "security", "admins": "admin", "all": "viewer"},
            "allowed_domains": ["example.com"],
        }))
        .unwrap()
    }

    fn identity(groups: &[&str]) -> Identity {
        Identity {
            issuer: "https://idp.example".into(),
            subject: "1".into(),
            email: Some("Sam@Example.com".into()),
            email_verified: Some(true),
            name: Some("Sam".into()),
            role_values: groups.iter().map(|g| g.to_string()).collect(),
            amr: vec!["pwd".into()],
            acr: None,
        }
    }

    #[test]
    fn the_highest_mapped_role_wins_and_none_is_refused() {
        let c = config();
        let d = decide(&c, &identity(&["all", "admins", "sec", "other"])).unwrap();
        assert_eq!(d.role, Role::Admin);
        assert_eq!(d.email, "sam@example.com");
        assert_eq!(decide(&c, &identity(&["all"])).unwrap().role, Role::Viewer);
        assert_eq!(decide(&c, &identity(&["other"])), Err(Refusal::NoRole));
        assert_eq!(decide(&c, &identity(&[])), Err(Refusal::NoRole));
    }

    #[test]
    fn email_must_be_verified_and_in_an_allowed_domain() {
        let c = config();
        let mut i = identity(&["sec"]);
        i.email = Some("sam@evil.example".into());
        assert_eq!(decide(&c, &i), Err(Refusal::Domain("evil.example".into())));
        // A subdomain is another domain.
        i.email = Some("sam@x.example.com".into());
        assert!(matches!(decide(&c, &i), Err(Refusal::Domain(_))));
        i.email = Some("sam@example.com".into());
        i.email_verified = Some(false);
        assert_eq!(decide(&c, &i), Err(Refusal::NoEmail));
        i.email_verified = None;
        assert!(decide(&c, &i).is_ok());
        i.email = None;
        assert_eq!(decide(&c, &i), Err(Refusal::NoEmail));
    }

    #[test]
    fn idp_mfa_counts_only_when_trusted_and_matching() {
        let mut c = config();
        let mut i = identity(&["sec"]);
        i.amr = vec!["pwd".into(), "otp".into()];
        assert!(!decide(&c, &i).unwrap().idp_mfa, "not trusted by default");
        c.trust_idp_mfa = Some(TrustIdpMfa {
            amr: vec!["mfa".into(), "otp".into()],
            acr: vec!["urn:gold".into()],
        });
        assert!(decide(&c, &i).unwrap().idp_mfa);
        i.amr = vec!["pwd".into()];
        assert!(!decide(&c, &i).unwrap().idp_mfa);
        i.acr = Some("urn:gold".into());
        assert!(decide(&c, &i).unwrap().idp_mfa);
    }
}
