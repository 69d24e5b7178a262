//! core: what every layer stands on, and nothing of any domain: object ids, the clock, the
//! configuration, the domain error, the store (a redb handle that knows no table), secrets,
//! file helpers, the background tasks of a running server, and whole numbers as JSON Schema
//! reads them; the backup format.

pub mod backup;
pub mod clock;
pub mod config;
pub mod error;
pub mod fs;
pub mod id;
pub mod metrics;
pub mod names;
pub mod page;
pub mod secrets;
pub mod store;
pub mod tasks;
pub mod whole;
