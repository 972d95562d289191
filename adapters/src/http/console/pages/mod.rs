//! What support reads in the console. Pages show ids, codes, counts, types and field
//! names; message content and event values appear only for a token with the phi scope
//! (the raw view is an audited action, see `actions`).
//!
//! - `dashboard`: the tenants, and a tenant's last hour;
//! - `letters`: dead letters by code, one letter masked with its actions;
//! - `messages`: the message browser;
//! - `history`: one stream's events, the mapping versions, the audit log.

mod dashboard;
mod history;
mod letters;
mod messages;

pub use dashboard::{dashboard, home};
pub use history::{audit, mappings, stream};
pub use letters::{dead_letter, dead_letters};
pub use messages::{messages, search};

use super::html::{esc, url};
use super::problem;
use axum::http::StatusCode;
use axum::response::Response;

pub(super) fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The event store did not answer. Try again.",
    )
}

pub(super) fn link(tenant: &str, rest: &str, text: &str) -> String {
    format!(
        "<a href=\"/console/t/{}{rest}\">{}</a>",
        url(tenant),
        esc(text)
    )
}

pub(super) fn opt(v: &Option<String>) -> String {
    esc(v.as_deref().unwrap_or("—"))
}
