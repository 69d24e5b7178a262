//! The access pages (being built).

use crate::faces::state::App;
use axum::Router;

pub fn routes() -> Router<App> {
    Router::new()
}
