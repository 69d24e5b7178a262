//! The overview at `/ui` (being built).

use super::html;
use super::page::{Layout, Viewer};
use crate::core::error::Result;
use askama::Template;
use axum::response::Html;

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview {
    layout: Layout,
}

pub async fn page(viewer: Viewer) -> Result<Html<String>> {
    html(&Overview {
        layout: viewer.layout("Overview", "overview"),
    })
}
