//! SeaORM entities mirroring the tables created by the `migration` crate.
//!
//! Private to the store: nothing outside `crate::store` sees these types. Relations are
//! declared in the migrations (foreign keys) and not modelled here, since the store only runs
//! flat queries.

pub(crate) mod access_downloads;
pub(crate) mod access_requests;
pub(crate) mod api_tokens;
pub(crate) mod audit_log;
pub(crate) mod chain_heads;
pub(crate) mod control_days;
pub(crate) mod control_results;
pub(crate) mod definitions;
pub(crate) mod evidence;
pub(crate) mod findings;
pub(crate) mod http_validators;
pub(crate) mod login_attempts;
pub(crate) mod managed_exceptions;
pub(crate) mod runs;
pub(crate) mod sessions;
pub(crate) mod settings;
pub(crate) mod sso_identities;
pub(crate) mod sso_logins;
pub(crate) mod sso_sessions;
pub(crate) mod users;
