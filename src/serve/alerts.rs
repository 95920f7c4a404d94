//! The rules and alerts APIs, shaped as Prometheus 2.42 answers them
//! (Grafana's alert views read these), and `POST /-/reload`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::api::{success, Params};
use super::AppState;
use crate::alert::alertmanager::label_object;
use crate::alert::rule::{AlertState, Health, Rule, RuleAlert};
use crate::alert::rulefile::RuleKind;
use crate::alert::sequence::spec::EventRuleSpec;
use crate::alert::{rfc3339, Alert};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rules", get(rules).post(rules))
        .route("/api/v1/alerts", get(alerts).post(alerts))
        .route("/-/reload", post(reload).put(reload))
}

/// Every group with its rules; `type=alert` or `type=record` keeps one kind.
async fn rules(State(state): State<AppState>, params: Params) -> Response {
    let wanted = params.get("type").unwrap_or("");
    let Some(alerting) = &state.alerting else {
        return success(r#"{"groups":[]}"#);
    };
    let loaded = alerting.rules.loaded();
    let firing = alerting.firing_event_alerts(crate::collect::now_ms());
    let groups: Vec<Value> = loaded
        .groups
        .iter()
        .map(|group| {
            let mut rules: Vec<Value> = group
                .rules
                .iter()
                .filter(|rule| {
                    !matches!(
                        (&rule.spec.kind, wanted),
                        (RuleKind::Alerting { .. }, "record")
                            | (RuleKind::Recording { .. }, "alert")
                    )
                })
                .map(rule_json)
                .collect();
            if wanted != "record" {
                let events = &group.spec.event_rules;
                rules.extend(events.iter().map(|rule| event_rule_json(rule, &firing)));
            }
            json!({
                "name": group.spec.name,
                "file": group.spec.file,
                "rules": rules,
                "interval": group.interval_ms as f64 / 1000.0,
                "limit": group.spec.limit,
                "evaluationTime": group.evaluation_seconds,
                "lastEvaluation": evaluated_at(group.last_evaluation_ms),
            })
        })
        .collect();
    success(&json!({ "groups": groups }).to_string())
}

/// Every pending and firing alert: the alerting rules', then the event
/// rules' (firing from their match until they resolve).
async fn alerts(State(state): State<AppState>) -> Response {
    let mut list = Vec::new();
    if let Some(alerting) = &state.alerting {
        let loaded = alerting.rules.loaded();
        for group in &loaded.groups {
            for rule in &group.rules {
                list.extend(active_alerts(rule).map(alert_json));
            }
        }
        let firing = alerting.firing_event_alerts(crate::collect::now_ms());
        list.extend(firing.iter().map(event_alert_json));
    }
    success(&json!({ "alerts": list }).to_string())
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(alerting) = state.alerting.as_ref() else {
        return (StatusCode::OK, "").into_response();
    };
    match alerting.reload() {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {err}\n"),
        )
            .into_response(),
    }
}

fn rule_json(rule: &Rule) -> Value {
    let (health, last_error) = match &rule.health {
        Health::Unknown => ("unknown", None),
        Health::Ok => ("ok", None),
        Health::Err(err) => ("err", Some(err.as_str())),
    };
    let labels: serde_json::Map<String, Value> = rule
        .spec
        .labels
        .iter()
        .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
        .collect();
    let mut out = json!({
        "name": rule.spec.name(),
        "query": printed_query(&rule.spec.expr),
        "labels": labels,
        "health": health,
        "evaluationTime": rule.evaluation_seconds,
        "lastEvaluation": evaluated_at(rule.last_evaluation_ms),
    });
    if let Some(err) = last_error {
        out["lastError"] = Value::from(err);
    }
    match &rule.spec.kind {
        RuleKind::Recording { .. } => {
            out["type"] = Value::from("recording");
        }
        RuleKind::Alerting {
            for_ms,
            keep_firing_for_ms,
            annotations,
            ..
        } => {
            out["type"] = Value::from("alerting");
            out["state"] = Value::from(rule.state().as_str());
            out["duration"] = Value::from(*for_ms as f64 / 1000.0);
            out["keepFiringFor"] = Value::from(*keep_firing_for_ms as f64 / 1000.0);
            out["annotations"] = annotations
                .iter()
                .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
                .collect::<serde_json::Map<_, _>>()
                .into();
            out["alerts"] = active_alerts(rule)
                .map(alert_json)
                .collect::<Vec<_>>()
                .into();
        }
    }
    out
}

/// An event rule as an alerting rule: its steps as the query, firing
/// while one of its matches' alerts has not resolved.
fn event_rule_json(rule: &EventRuleSpec, firing: &[Alert]) -> Value {
    let alerts: Vec<Value> = firing
        .iter()
        .filter(|alert| alert.labels.get("alertname") == Some(rule.alert.as_str()))
        .map(event_alert_json)
        .collect();
    let pairs = |pairs: &[(String, String)]| -> Value {
        pairs
            .iter()
            .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let state = if alerts.is_empty() {
        AlertState::Inactive
    } else {
        AlertState::Firing
    };
    json!({
        "name": rule.alert,
        "query": rule.describe(),
        "labels": pairs(&rule.labels),
        "annotations": pairs(&rule.annotations),
        "health": "ok",
        "type": "alerting",
        "state": state.as_str(),
        "duration": 0.0,
        "keepFiringFor": 0.0,
        "alerts": alerts,
        "evaluationTime": 0.0,
        "lastEvaluation": evaluated_at(None),
    })
}

/// Pending and firing alerts: resolved ones are kept for re-sending only.
fn active_alerts(rule: &Rule) -> impl Iterator<Item = &RuleAlert> {
    rule.alerts
        .values()
        .filter(|alert| alert.state != AlertState::Inactive)
}

fn event_alert_json(alert: &Alert) -> Value {
    json!({
        "labels": label_object(&alert.labels),
        "annotations": label_object(&alert.annotations),
        "state": AlertState::Firing.as_str(),
        "activeAt": rfc3339(alert.starts_at_ms),
        "value": go_exponent_float(alert.value),
    })
}

fn alert_json(alert: &RuleAlert) -> Value {
    let mut out = json!({
        "labels": label_object(&alert.labels),
        "annotations": label_object(&alert.annotations),
        "state": alert.state.as_str(),
        "activeAt": rfc3339(alert.active_at_ms),
        "value": go_exponent_float(alert.value),
    });
    if let Some(since) = alert.keep_firing_since_ms {
        out["keepFiringSince"] = Value::from(rfc3339(since));
    }
    out
}

/// The expression as Prometheus prints it back.
fn printed_query(expr: &str) -> String {
    crate::query::parse(expr).map_or_else(|_| expr.to_string(), |e| e.to_string())
}

/// Go's zero time where there was no evaluation yet.
fn evaluated_at(ms: Option<i64>) -> String {
    ms.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), rfc3339)
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `1.5e+01`, `NaN`.
fn go_exponent_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let rust = format!("{value:e}");
    let (mantissa, exponent) = rust.split_once('e').expect("{:e} writes an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} writes an integer exponent");
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests {
    use super::go_exponent_float;

    #[test]
    fn values_read_as_prometheus_writes_them() {
        assert_eq!(go_exponent_float(1.0), "1e+00");
        assert_eq!(go_exponent_float(15.0), "1.5e+01");
        assert_eq!(go_exponent_float(0.000123), "1.23e-04");
        assert_eq!(go_exponent_float(1e300), "1e+300");
        assert_eq!(go_exponent_float(f64::NEG_INFINITY), "-Inf");
    }
}
