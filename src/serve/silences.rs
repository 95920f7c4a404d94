//! Alertmanager's API v2 for the built-in notifier, shaped as Alertmanager
//! 0.25 answers so amtool and Grafana manage sonde's silences and read its
//! alerts: `/api/v2/silences`, `/api/v2/silence/{id}`, `/api/v2/alerts`
//! and `/api/v2/alerts/groups` (read only: alerts come from sonde's own
//! rules) and a minimal `/api/v2/status`. Errors are a JSON string with the status, as
//! Alertmanager's are: 400 for a bad request (what is wrong named), 404 for
//! an unknown silence.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::alert::notify::silence::{PostableSilence, SilenceError};
use crate::alert::notify::{fingerprint_hex, labels_json, rfc3339_millis, AlertStatus, Notifier};
use crate::collect::now_ms;
use crate::model::Matcher;

/// The version clients are told (amtool warns when it differs from its
/// own): the Alertmanager release whose API and semantics sonde follows.
const ALERTMANAGER_VERSION: &str = "0.25.0";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/silences", get(list_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/alerts", get(list_alerts))
        .route("/api/v2/alerts/groups", get(list_alert_groups))
        .route("/api/v2/status", get(status))
}

/// An error answer: its status and message (sent as a JSON string).
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<SilenceError> for ApiError {
    fn from(err: SilenceError) -> ApiError {
        let status = match err {
            SilenceError::NotFound => StatusCode::NOT_FOUND,
            SilenceError::Invalid(_) => StatusCode::BAD_REQUEST,
            SilenceError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.0, &serde_json::Value::String(self.1))
    }
}

type Answer = Result<Response, ApiError>;

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The notifier, or the 404 that says sonde runs none.
fn notifier(state: &AppState) -> Result<&Notifier, ApiError> {
    state.notifier.as_ref().ok_or(ApiError(
        StatusCode::NOT_FOUND,
        "the built-in notifier is not running".into(),
    ))
}

/// The query's parameters, in order, repeated ones kept.
fn params(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The `filter` parameters as matchers.
fn filters(params: &[(String, String)]) -> Result<Vec<Matcher>, ApiError> {
    params
        .iter()
        .filter(|(name, _)| name == "filter")
        .map(|(_, text)| {
            crate::alert::notify::parse_matcher(text).map_err(|err| {
                ApiError::bad_request(format!("invalid parameter \"filter\": {err}"))
            })
        })
        .collect()
}

async fn list_silences(State(state): State<AppState>, RawQuery(query): RawQuery) -> Answer {
    let notifier = notifier(&state)?;
    let filter = filters(&params(query))?;
    let now = now_ms();
    let listed: Vec<serde_json::Value> = notifier
        .silences()
        .list(now)
        .iter()
        .filter(|s| s.matches_filter(&filter))
        .map(|s| s.to_json(now))
        .collect();
    Ok(json(StatusCode::OK, &listed.into()))
}

async fn post_silence(State(state): State<AppState>, body: Bytes) -> Answer {
    let notifier = notifier(&state)?;
    let posted: PostableSilence = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad_request(format!("invalid silence: {err}")))?;
    let id = notifier.silences().set(posted, now_ms())?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "silenceID": id }),
    ))
}

async fn get_silence(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let silence = notifier(&state)?
        .silences()
        .get(&id)
        .ok_or(SilenceError::NotFound)?;
    Ok(json(StatusCode::OK, &silence.to_json(now_ms())))
}

async fn delete_silence(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    notifier(&state)?.silences().expire(&id, now_ms())?;
    Ok(StatusCode::OK.into_response())
}

/// Which alerts `GET /api/v2/alerts` lists: its `active`, `silenced`,
/// `inhibited` switches (all on by default), `filter` matchers and
/// `receiver` regex.
struct AlertQuery {
    active: bool,
    silenced: bool,
    inhibited: bool,
    filter: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

impl AlertQuery {
    fn parse(query: Option<String>) -> Result<AlertQuery, ApiError> {
        let params = params(query);
        let last = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let switch = |name: &str| match last(name) {
            None => Ok(true),
            Some(value) => value.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid parameter {name:?}: expected true or false, got {value:?}"
                ))
            }),
        };
        let receiver = last("receiver")
            .map(|pattern| regex::Regex::new(&format!("^(?:{pattern})$")))
            .transpose()
            .map_err(|err| {
                ApiError::bad_request(format!("invalid parameter \"receiver\": {err}"))
            })?;
        Ok(AlertQuery {
            active: switch("active")?,
            silenced: switch("silenced")?,
            inhibited: switch("inhibited")?,
            filter: filters(&params)?,
            receiver,
        })
    }

    fn wants(&self, status: &AlertStatus) -> bool {
        let silenced = !status.silenced_by.is_empty();
        let inhibited = !status.inhibited_by.is_empty();
        let state_wanted = (self.active || silenced || inhibited)
            && (self.silenced || !silenced)
            && (self.inhibited || !inhibited);
        let receiver_wanted = self
            .receiver
            .as_ref()
            .is_none_or(|re| status.receivers.iter().any(|r| re.is_match(r)));
        state_wanted
            && receiver_wanted
            && self.filter.iter().all(|m| m.matches(&status.alert.labels))
    }
}

async fn list_alerts(State(state): State<AppState>, RawQuery(query): RawQuery) -> Answer {
    let notifier = notifier(&state)?;
    let query = AlertQuery::parse(query)?;
    let listed: Vec<serde_json::Value> = notifier
        .alerts()
        .iter()
        .filter(|status| query.wants(status))
        .map(alert_json)
        .collect();
    Ok(json(StatusCode::OK, &listed.into()))
}

/// The aggregation groups with the alerts the query wants; a group left
/// with none is not listed.
async fn list_alert_groups(State(state): State<AppState>, RawQuery(query): RawQuery) -> Answer {
    let notifier = notifier(&state)?;
    let query = AlertQuery::parse(query)?;
    let listed: Vec<serde_json::Value> = notifier
        .alert_groups()
        .iter()
        .filter_map(|group| {
            let alerts: Vec<serde_json::Value> = group
                .alerts
                .iter()
                .filter(|status| query.wants(status))
                .map(alert_json)
                .collect();
            (!alerts.is_empty()).then(|| {
                serde_json::json!({
                    "labels": labels_json(&group.labels),
                    "receiver": { "name": group.receiver },
                    "alerts": alerts,
                })
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &listed.into()))
}

/// An alert as Alertmanager lists it (`gettableAlert`). sonde does not
/// keep when an alert was last received: `updatedAt` is its start.
fn alert_json(status: &AlertStatus) -> serde_json::Value {
    let alert = &status.alert;
    let receivers: Vec<serde_json::Value> = status
        .receivers
        .iter()
        .map(|name| serde_json::json!({ "name": name }))
        .collect();
    let inhibited_by: Vec<String> = status
        .inhibited_by
        .iter()
        .map(|fp| fingerprint_hex(*fp))
        .collect();
    serde_json::json!({
        "labels": labels_json(&alert.labels),
        "annotations": labels_json(&alert.annotations),
        "startsAt": rfc3339_millis(alert.starts_at_ms),
        "endsAt": rfc3339_millis(alert.ends_at_ms),
        "updatedAt": rfc3339_millis(alert.starts_at_ms),
        "generatorURL": alert.generator_url,
        "fingerprint": fingerprint_hex(status.fingerprint),
        "receivers": receivers,
        "status": {
            "state": status.state(),
            "silencedBy": status.silenced_by,
            "inhibitedBy": inhibited_by,
        },
    })
}

/// Enough of Alertmanager's status for clients that ask before they work.
async fn status(State(state): State<AppState>) -> Answer {
    let notifier = notifier(&state)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "cluster": { "status": "disabled", "peers": [] },
            "config": { "original": "" },
            "uptime": rfc3339_millis(notifier.started_ms()),
            "versionInfo": {
                "version": ALERTMANAGER_VERSION,
                "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": "",
            },
        }),
    ))
}
