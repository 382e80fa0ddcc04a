//! The integration tests, in one binary: it links once instead of once per file.
//! Each module was a test binary of its own; `cargo test --test it MODULE::` runs one.

mod common;

mod a11y;
mod access;
mod analytics;
mod architecture;
mod aws_accounts;
mod aws_data_moto;
mod aws_data_wiremock;
mod aws_moto;
mod aws_watch;
mod aws_wiremock;
mod brand;
mod browser;
mod catalog;
mod cli;
mod crash;
mod dashboard;
mod export;
mod export_stream;
mod github_budget;
mod github_wiremock;
mod http_pages;
mod http_tls;
mod identity;
mod instances;
mod metrics;
mod notify;
mod oidc;
mod pipeline;
mod registers;
mod schemathesis;
mod serve;
mod staff_hardening;
mod store;
mod store_sso;
mod subscribe;
mod trust_site;
mod web;
