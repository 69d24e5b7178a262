//! The one integration-test binary. Every test starts the real server in-process on
//! 127.0.0.1:0 with its own temporary data directory (see `harness`), talks real HTTP to it, and
//! uses the real Docker engine where the feature needs one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod harness;
mod kabuto_client;

mod access;
mod accounts;
mod admin;
mod backup;
mod builds;
mod client;
mod client_flow;
mod client_images;
mod config;
mod dashboard;
mod dashboard_access;
mod dashboard_admin;
mod dashboard_kabuto;
mod dashboard_servables;
mod engine;
mod fuzz;
mod jobs;
mod kabuto;
mod limits;
mod manifest;
mod metrics;
mod oidc;
mod openapi;
mod packaging;
mod python_sdk;
mod recovery;
mod registry;
mod scale;
mod security;
mod servables;
mod tls;
mod v1_api;
