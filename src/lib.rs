//! dtaas: a single-node Data Trust appliance.
//!
//! One way through the house, bottom to top; each layer imports only from those below it
//! (`ARCHITECTURE.md` is the map, and `layering` checks the rule):
//!
//! | layer | holds |
//! | --- | --- |
//! | [`core`] | ids, clock, config, the domain error, the store |
//! | [`domains`] | authz, accounts, trusts, images, jobs, logs, servables, registry storage |
//! | [`engine`] | the Docker engine, the one container supervisor, and what runs on it |
//! | [`faces`] | kabuto, /v1, /v2, the app proxy, health, the admin socket |
//! | [`server`] | wiring, listeners, life cycle |
//! | [`cli`] | the command line |

pub mod cli;
pub mod core;
pub mod domains;
pub mod engine;
pub mod faces;
pub mod server;

#[cfg(test)]
mod layering;
