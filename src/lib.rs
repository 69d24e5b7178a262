//! dtaas: a single-node Data Trust appliance.
//!
//! The crate is split by domain; `ARCHITECTURE.md` at the top of the repository is the map.
//! Every domain owns its redb tables through a small typed API, HTTP handlers stay thin, and
//! one authorization check ([`authz::authorize`]) guards every face.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod id;
pub mod images;
pub mod jobs;
pub mod logs;
pub mod proxy;
pub mod registry;
pub mod servables;
pub mod server;
pub mod store;
pub mod trusts;

pub use error::{Error, Result};

#[cfg(test)]
mod layering;
