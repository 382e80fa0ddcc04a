//! SeaORM entities mirroring the tables created by the `migration` crate.
//!
//! Private to the store: nothing outside `crate::store` sees these types. Relations are
//! declared in the migrations (foreign keys) and not modelled here, since the store only runs
//! flat queries.

pub(crate) mod access_downloads;
pub(crate) mod access_requests;
pub(crate) mod control_results;
pub(crate) mod evidence;
pub(crate) mod findings;
pub(crate) mod runs;
