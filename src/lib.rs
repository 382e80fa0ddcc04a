//! Trellis: continuous compliance monitoring.
//!
//! Data flows one way: [`config`] → [`catalog`] (parse and validate every control, compile
//! CEL) → [`scheduler`] → [`probes`] `collect` → [`evaluate`] (pure) → [`store`] →
//! [`web`] / export. See ARCHITECTURE.md for the code map and the invariants.

pub mod access;
pub mod actions;
pub mod allocator;
pub mod auth;
pub mod brand;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod diag;
pub mod duration;
pub mod evaluate;
pub mod exceptions;
pub mod export;
pub mod integrity;
pub mod metrics;
pub mod model;
pub mod net;
pub mod notify;
pub mod oidc;
pub mod probes;
pub mod queue;
pub mod registers;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod startup;
pub mod store;
pub mod web;
