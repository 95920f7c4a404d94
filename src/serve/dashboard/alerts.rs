//! The Alerts view at `/alerts`: every alerting rule, firing ones first,
//! each with its alerts (labels, annotations, value, since when) and a link
//! to its expression on the Graph view; rules that failed say why.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::frame::{Frame, View};
use crate::alert::group::graph_link;
use crate::alert::rule::{AlertState, Health, Rule};
use crate::alert::rulefile::RuleKind;
use crate::model::format_float;

struct RuleView {
    name: String,
    state: &'static str,
    group: String,
    expr: String,
    graph_href: String,
    hold: String,
    error: Option<String>,
    alerts: Vec<AlertView>,
}

struct AlertView {
    state: &'static str,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    value: String,
    since: String,
    active_at: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct Page {
    frame: Frame,
    firing: usize,
    pending: usize,
    inactive: usize,
    rules: Vec<RuleView>,
    reload_error: Option<String>,
}

/// `GET /alerts`.
pub async fn page(State(state): State<crate::serve::AppState>) -> Response {
    let now = crate::collect::now_ms();
    let frame = Frame::new(View::Alerts, &state);
    let (mut rules, reload_error) = match &state.alerting {
        Some(alerting) => {
            let loaded = alerting.rules.loaded();
            let rules: Vec<RuleView> = loaded
                .groups
                .iter()
                .flat_map(|group| group.rules.iter().map(move |rule| (group, rule)))
                .filter(|(_, rule)| matches!(rule.spec.kind, RuleKind::Alerting { .. }))
                .map(|(group, rule)| rule_view(&group.spec.name, rule, now))
                .collect();
            (rules, loaded.reload_error.clone())
        }
        None => (Vec::new(), None),
    };
    let count = |state: &str| rules.iter().filter(|r| r.state == state).count();
    let (firing, pending, inactive) = (count("firing"), count("pending"), count("inactive"));
    let rank = |state: &str| {
        ["firing", "pending", "inactive"]
            .iter()
            .position(|s| *s == state)
    };
    rules.sort_by_key(|r| rank(r.state));
    let page = Page {
        frame,
        firing,
        pending,
        inactive,
        rules,
        reload_error,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw the alerts: {err}\n"),
        )
            .into_response(),
    }
}

fn rule_view(group: &str, rule: &Rule, now: i64) -> RuleView {
    let RuleKind::Alerting { for_ms, .. } = rule.spec.kind else {
        unreachable!("only alerting rules are shown")
    };
    let mut alerts: Vec<AlertView> = rule
        .alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .map(|alert| AlertView {
            state: alert.state.as_str(),
            labels: pairs(&alert.labels),
            annotations: pairs(&alert.annotations),
            value: format_float(alert.value),
            since: ago(now - alert.active_at_ms),
            active_at: crate::alert::rfc3339(alert.active_at_ms),
        })
        .collect();
    alerts.sort_by_key(|a| a.state != "firing");
    RuleView {
        name: rule.spec.name().to_string(),
        state: rule.state().as_str(),
        group: group.to_string(),
        expr: rule.spec.expr.clone(),
        graph_href: graph_link("", &rule.spec.expr),
        hold: if for_ms > 0 {
            humantime::format_duration(std::time::Duration::from_millis(for_ms as u64)).to_string()
        } else {
            String::new()
        },
        error: match &rule.health {
            Health::Err(err) => Some(err.clone()),
            _ => None,
        },
        alerts,
    }
}

fn pairs(labels: &crate::model::Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// `3m 20s ago`, to the second.
fn ago(ms: i64) -> String {
    let seconds = (ms.max(0) / 1000) as u64;
    format!(
        "{} ago",
        humantime::format_duration(std::time::Duration::from_secs(seconds))
    )
}
