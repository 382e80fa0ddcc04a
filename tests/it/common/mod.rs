//! Helpers shared by the integration tests.

pub mod app;
pub mod aws;
pub mod http;
pub mod idp;
pub mod moto;
pub mod staff;
