//! Helpers shared by the integration tests.

pub mod app;
pub mod aws;
pub mod http;
pub mod idp;
pub mod moto;
pub mod staff;

/// Evidence as the runner hands it to the store (its content as text).
pub fn new_evidence(evidence: &[trellis::model::Evidence]) -> Vec<trellis::model::NewEvidence> {
    evidence.iter().map(Into::into).collect()
}
