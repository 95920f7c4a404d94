//! The Alerts view at `/alerts`: every alerting rule and event rule, firing
//! ones first, each with its alerts (labels, annotations, value, since
//! when, whether a silence of the built-in notifier mutes it) and a link to
//! its expression on the Graph view (an event rule's steps link to the
//! Kernel view's recent events); rules that failed say why. Below, the silences. Plain
//! HTML forms silence an alert (every label matched, for a chosen time) and
//! expire a silence; both answer with a redirect back to the view. Last,
//! the actions configured (`[[alerting.actions]]`) and their last runs:
//! when, for which alert, how each ended and what it printed.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::frame::{Frame, View};
use crate::alert::action::{Action, Run};
use crate::alert::group::graph_link;
use crate::alert::notify::silence::{PostableSilence, SilenceMatcher, SilenceState};
use crate::alert::notify::Notifier;
use crate::alert::rule::{AlertState, Health, Rule};
use crate::alert::rulefile::RuleKind;
use crate::alert::sequence::spec::EventRuleSpec;
use crate::alert::Alert;
use crate::model::{format_float, Labels};

/// How long a silence made from the view lasts: the choices offered.
const SILENCE_FOR: [&str; 4] = ["1h", "4h", "1d", "1w"];

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
    /// Ids of the silences that mute it.
    silenced_by: Vec<String>,
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
    silence_for: [&'static str; 4],
    silences: Vec<SilenceView>,
    actions: Vec<ActionView>,
    runs: Vec<RunView>,
}

struct ActionView {
    name: String,
    matchers: String,
    command: String,
    timeout: String,
    min_interval: String,
    dry_run: bool,
}

struct RunView {
    when: String,
    at: String,
    action: String,
    alert: String,
    result: &'static str,
    detail: String,
    took: String,
    output: String,
}

struct SilenceView {
    id: String,
    state: &'static str,
    matchers: String,
    until: String,
    created_by: String,
    comment: String,
}

/// `GET /alerts`.
pub async fn page(State(state): State<crate::serve::AppState>) -> Response {
    let now = crate::collect::now_ms();
    let frame = Frame::new(View::Alerts, &state);
    let notifier = state.notifier.as_ref();
    let (mut rules, reload_error) = match &state.alerting {
        Some(alerting) => {
            let loaded = alerting.rules.loaded();
            let external = &loaded.settings.external_labels;
            let mut rules: Vec<RuleView> = loaded
                .groups
                .iter()
                .flat_map(|group| group.rules.iter().map(move |rule| (group, rule)))
                .filter(|(_, rule)| matches!(rule.spec.kind, RuleKind::Alerting { .. }))
                .map(|(group, rule)| rule_view(&group.spec.name, rule, now, notifier, external))
                .collect();
            let firing = alerting.firing_event_alerts(now);
            let event_rules = loaded.groups.iter().flat_map(|group| {
                let name = &group.spec.name;
                group.spec.event_rules.iter().map(move |rule| (name, rule))
            });
            rules.extend(event_rules.map(|(group, rule)| {
                event_rule_view(group, rule, &firing, now, notifier, external)
            }));
            (rules, loaded.reload_error.clone())
        }
        None => (Vec::new(), None),
    };
    let (actions, runs) = match &state.alerting {
        Some(alerting) => (
            alerting
                .actions
                .configured()
                .iter()
                .map(action_view)
                .collect(),
            alerting
                .actions
                .recent()
                .into_iter()
                .map(|run| run_view(run, now))
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
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
        silence_for: SILENCE_FOR,
        silences: notifier.map(|n| silence_views(n, now)).unwrap_or_default(),
        actions,
        runs,
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

fn rule_view(
    group: &str,
    rule: &Rule,
    now: i64,
    notifier: Option<&Notifier>,
    external: &Labels,
) -> RuleView {
    let RuleKind::Alerting { for_ms, .. } = rule.spec.kind else {
        unreachable!("only alerting rules are shown")
    };
    let shown = Shown {
        now,
        notifier,
        external,
    };
    let mut alerts: Vec<AlertView> = rule
        .alerts
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .map(|alert| {
            let (labels, annotations) = (&alert.labels, &alert.annotations);
            shown.alert(
                alert.state,
                labels,
                annotations,
                alert.value,
                alert.active_at_ms,
            )
        })
        .collect();
    alerts.sort_by_key(|a| a.state != "firing");
    RuleView {
        name: rule.spec.name().to_string(),
        state: rule.state().as_str(),
        group: group.to_string(),
        expr: rule.spec.expr.clone(),
        graph_href: graph_link("", &crate::alert::baseline::graph_expr(&rule.spec)),
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

/// What an alert is shown against: the time, and the silences that may
/// mute it (they match the labels as sent, external ones included).
struct Shown<'a> {
    now: i64,
    notifier: Option<&'a Notifier>,
    external: &'a Labels,
}

impl Shown<'_> {
    fn alert(
        &self,
        state: AlertState,
        labels: &Labels,
        annotations: &Labels,
        value: f64,
        active_at_ms: i64,
    ) -> AlertView {
        AlertView {
            state: state.as_str(),
            silenced_by: self.notifier.map_or_else(Vec::new, |n| {
                n.silences()
                    .silenced_by(&with_external(labels, self.external), self.now)
            }),
            labels: pairs(labels),
            annotations: pairs(annotations),
            value: format_float(value),
            since: ago(self.now - active_at_ms),
            active_at: crate::alert::rfc3339(active_at_ms),
        }
    }
}

/// An event rule beside the alerting rules: its steps in place of an
/// expression (linked to the Kernel view's recent events), firing while a
/// match's alert has not resolved.
fn event_rule_view(
    group: &str,
    rule: &EventRuleSpec,
    firing: &[Alert],
    now: i64,
    notifier: Option<&Notifier>,
    external: &Labels,
) -> RuleView {
    let shown = Shown {
        now,
        notifier,
        external,
    };
    let alerts: Vec<AlertView> = firing
        .iter()
        .filter(|alert| alert.labels.get("alertname") == Some(rule.alert.as_str()))
        .map(|alert| {
            let (labels, annotations) = (&alert.labels, &alert.annotations);
            shown.alert(
                AlertState::Firing,
                labels,
                annotations,
                alert.value,
                alert.starts_at_ms,
            )
        })
        .collect();
    let state = if alerts.is_empty() {
        AlertState::Inactive
    } else {
        AlertState::Firing
    };
    RuleView {
        name: rule.alert.clone(),
        state: state.as_str(),
        group: group.to_string(),
        expr: rule.describe(),
        graph_href: "/kernel#recent-events".to_string(),
        hold: String::new(),
        error: None,
        alerts,
    }
}

fn action_view(action: &Action) -> ActionView {
    let span = |d: std::time::Duration| humantime::format_duration(d).to_string();
    ActionView {
        name: action.name.clone(),
        matchers: action
            .matchers
            .iter()
            .map(crate::alert::notify::format_matcher)
            .collect::<Vec<_>>()
            .join(", "),
        command: action
            .command
            .iter()
            .map(|argument| format!("{argument:?}"))
            .collect::<Vec<_>>()
            .join(" "),
        timeout: span(action.timeout),
        min_interval: span(action.min_interval),
        dry_run: action.dry_run,
    }
}

fn run_view(run: Run, now: i64) -> RunView {
    RunView {
        when: ago(now - run.at_ms),
        at: crate::alert::rfc3339(run.at_ms),
        result: run.outcome.as_str(),
        took: run.took.map_or_else(String::new, |s| format!("{s:.3} s")),
        action: run.action,
        alert: run.alert,
        detail: run.detail,
        output: run.output,
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

/// An alert's labels as the notifier sees them: with the external labels.
fn with_external(labels: &Labels, external: &Labels) -> Labels {
    let mut all = labels.clone();
    for (name, value) in external.iter() {
        if all.get(name).is_none() {
            all.set(name.to_string(), value.to_string());
        }
    }
    all
}

fn silence_views(notifier: &Notifier, now: i64) -> Vec<SilenceView> {
    notifier
        .silences()
        .list(now)
        .into_iter()
        .filter(|s| s.state(now) != SilenceState::Expired)
        .map(|silence| SilenceView {
            state: match silence.state(now) {
                SilenceState::Active => "active",
                SilenceState::Pending => "pending",
                SilenceState::Expired => "expired",
            },
            matchers: silence
                .matchers
                .iter()
                .map(|m| {
                    let op = match (m.is_equal, m.is_regex) {
                        (true, false) => "=",
                        (false, false) => "!=",
                        (true, true) => "=~",
                        (false, true) => "!~",
                    };
                    format!("{}{op}{:?}", m.name, m.value)
                })
                .collect::<Vec<_>>()
                .join(", "),
            until: crate::alert::rfc3339(silence.ends_at_ms),
            created_by: silence.created_by,
            comment: silence.comment,
            id: silence.id,
        })
        .collect()
}

/// `POST /alerts/silence`: silences the alert whose labels the form lists
/// (`label` fields, `name=value`), for `for` (one of [`SILENCE_FOR`]).
pub async fn silence(
    State(state): State<crate::serve::AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(notifier) = &state.notifier else {
        return not_running();
    };
    let field = |name: &str| form_field(&fields, name);
    let matchers: Vec<SilenceMatcher> = fields
        .iter()
        .filter(|(n, _)| n == "label")
        .filter_map(|(_, pair)| pair.split_once('='))
        .map(|(name, value)| SilenceMatcher {
            name: name.to_string(),
            value: value.to_string(),
            is_regex: false,
            is_equal: true,
        })
        .collect();
    let span = field("for").unwrap_or("");
    if !SILENCE_FOR.contains(&span) {
        let message = format!(
            "bad for {span:?}: choose one of {}\n",
            SILENCE_FOR.join(", ")
        );
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let now = crate::collect::now_ms();
    let span_ms = crate::serve::api::parse_duration(span).expect("the choices parse");
    let posted = PostableSilence {
        id: None,
        matchers,
        starts_at: crate::alert::rfc3339(now),
        ends_at: crate::alert::rfc3339(now + span_ms),
        created_by: field("created_by")
            .filter(|c| !c.is_empty())
            .unwrap_or("dashboard")
            .to_string(),
        comment: field("comment")
            .filter(|c| !c.is_empty())
            .unwrap_or("silenced from the dashboard")
            .to_string(),
    };
    match notifier.silences().set(posted, now) {
        Ok(_) => Redirect::to("/alerts").into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, format!("cannot silence: {err}\n")).into_response(),
    }
}

/// `POST /alerts/expire`: expires the silence `id`.
pub async fn expire(
    State(state): State<crate::serve::AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(notifier) = &state.notifier else {
        return not_running();
    };
    let id = form_field(&fields, "id").unwrap_or("");
    match notifier.silences().expire(id, crate::collect::now_ms()) {
        Ok(()) => Redirect::to("/alerts").into_response(),
        Err(err) => (
            StatusCode::BAD_REQUEST,
            format!("cannot expire silence {id:?}: {err}\n"),
        )
            .into_response(),
    }
}

fn not_running() -> Response {
    (
        StatusCode::NOT_FOUND,
        "the built-in notifier is not running\n",
    )
        .into_response()
}

fn form_field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
