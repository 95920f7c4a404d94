//! `GET /api/v1/events`: the kernel events sonde keeps in memory
//! ([`crate::collect::events`]), newest first, in the API's envelope.
//! Parameters: `kind` (exec, exit, signal, oom_kill, connect, accept,
//! listen, open_write; any when absent) and `limit` (100 when absent).

use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::api::{success, ApiError, Params};
use super::AppState;
use crate::collect::events::{stream, Event, Kind};

const DEFAULT_LIMIT: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(events))
}

async fn events(params: Params) -> Result<Response, ApiError> {
    let kind = match params.get("kind").filter(|k| !k.is_empty()) {
        None => None,
        Some(name) => Some(Kind::from_name(name).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"kind\": {name:?}: expected one of {}",
                Kind::ALL.map(Kind::name).join(", ")
            ))
        })?),
    };
    let limit = match params.get("limit").filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"limit\": {text:?}: expected a whole number"
            ))
        })?,
    };
    let events = stream().recent(kind, limit);
    let events: Vec<&Event> = events.iter().map(AsRef::as_ref).collect();
    let data = serde_json::to_string(&events).map_err(|err| ApiError::bad_data(err.to_string()))?;
    Ok(success(&data))
}
