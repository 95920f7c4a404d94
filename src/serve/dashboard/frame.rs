//! The frame every dashboard view lives in (`web/templates/base.html`): the
//! bar with the host's name and a tab per view, the firing alerts counted on
//! the Alerts tab so they are seen from any view, and for the views drawn
//! over time the one range picker they share ([`Controls`]: presets, a
//! custom from/to form, auto-refresh), whose state travels in every link.
//! Also the one way a view is drawn: on a blocking thread, a failure being a
//! 500 that says why ([`draw`]).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::range::{minute, Preset, Range, TimeParams, REFRESHES};
use crate::serve::Shared;

/// The dashboard's views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Kernel,
    Who,
    Services,
    Programs,
    Alerts,
    Graph,
    Status,
}

impl View {
    const ALL: [View; 8] = [
        View::Overview,
        View::Kernel,
        View::Who,
        View::Services,
        View::Programs,
        View::Alerts,
        View::Graph,
        View::Status,
    ];

    fn label(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Kernel => "Kernel",
            View::Who => "Who",
            View::Services => "Services",
            View::Programs => "Programs",
            View::Alerts => "Alerts",
            View::Graph => "Graph",
            View::Status => "Status",
        }
    }

    fn href(self) -> &'static str {
        match self {
            View::Overview => "/",
            View::Kernel => "/kernel",
            View::Who => "/who",
            View::Services => "/services",
            View::Programs => "/programs",
            View::Alerts => "/alerts",
            View::Graph => "/graph",
            View::Status => "/status",
        }
    }

    /// Whether the view is drawn over the shared range (its tab carries it).
    fn over_time(self) -> bool {
        !matches!(self, View::Alerts | View::Graph)
    }
}

pub struct Frame {
    pub host: String,
    pub views: Vec<Tab>,
    /// The range picker, on views drawn over time.
    pub controls: Option<Controls>,
}

pub struct Tab {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
    /// A count shown on the tab (firing alerts); 0 shows none.
    pub badge: usize,
}

/// A link in a selector.
pub struct Choice {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// The range picker of a view at `path`.
pub struct Controls {
    pub path: String,
    pub ranges: Vec<Choice>,
    pub refreshes: Vec<Choice>,
    pub refresh_seconds: u32,
    pub reload_href: String,
    /// The custom form's values (`datetime-local`, UTC).
    pub from: String,
    pub to: String,
    /// The view's own parameters, kept by every link and the custom form.
    pub keep: Vec<(String, String)>,
    /// Whether a custom range (not a preset) is shown.
    pub custom: bool,
    /// The time parameters as form fields, for a view's own forms.
    pub fields: Vec<(String, String)>,
}

impl Controls {
    fn new(path: &str, time: &TimeParams, keep: Vec<(String, String)>) -> Controls {
        let own: String = keep
            .iter()
            .map(|(name, value)| {
                let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                format!("&{name}={value}")
            })
            .collect();
        let href = |query: String| format!("{path}?{query}{own}");
        let range = time.range;
        Controls {
            path: path.to_string(),
            ranges: Preset::ALL
                .into_iter()
                .map(|preset| Choice {
                    label: preset.name(),
                    href: href(time.with(Range::last(preset, range.end_ms), time.refresh.0)),
                    current: range.preset == Some(preset),
                })
                .collect(),
            refreshes: REFRESHES
                .into_iter()
                .map(|(name, _)| Choice {
                    label: name,
                    href: href(time.with(range, name)),
                    current: name == time.refresh.0,
                })
                .collect(),
            // A fixed range does not move: reloading it would redraw the same.
            refresh_seconds: if range.preset.is_some() {
                time.refresh.1
            } else {
                0
            },
            reload_href: href(time.query()),
            from: minute(range.start_ms),
            to: minute(range.end_ms),
            keep,
            custom: range.preset.is_none(),
            fields: form_urlencoded::parse(time.query().as_bytes())
                .into_owned()
                .collect(),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".to_string())
}

impl Frame {
    /// The frame of a view not drawn over time (Alerts, Graph).
    pub fn new(current: View, shared: &Shared) -> Frame {
        Frame::build(current, shared, None, None)
    }

    /// The frame of a view drawn over `time`, at `path` with its own
    /// parameters `keep`.
    pub fn over(
        current: View,
        shared: &Shared,
        path: &str,
        time: &TimeParams,
        keep: Vec<(String, String)>,
    ) -> Frame {
        let controls = Controls::new(path, time, keep);
        Frame::build(current, shared, Some(time), Some(controls))
    }

    fn build(
        current: View,
        shared: &Shared,
        time: Option<&TimeParams>,
        controls: Option<Controls>,
    ) -> Frame {
        let firing = shared
            .alerting
            .as_ref()
            .map_or(0, |a| a.rules.firing_count());
        Frame {
            host: hostname(),
            views: View::ALL
                .into_iter()
                .map(|view| Tab {
                    label: view.label(),
                    href: match time {
                        Some(time) if view.over_time() => {
                            format!("{}?{}", view.href(), time.query())
                        }
                        _ => view.href().to_string(),
                    },
                    current: view == current,
                    badge: if view == View::Alerts { firing } else { 0 },
                })
                .collect(),
            controls,
        }
    }
}

/// A 400 whose body says what was wrong.
pub fn bad_request(message: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// Draws a view that takes only the shared range parameters: a 400 naming
/// a bad one, else [`draw`] of `page` over them.
pub async fn draw_over<F>(pairs: &[(String, String)], what: &'static str, page: F) -> Response
where
    F: FnOnce(TimeParams) -> anyhow::Result<String> + Send + 'static,
{
    match TimeParams::parse(pairs, &[], crate::collect::now_ms()) {
        Ok(time) => draw(what, move || page(time)).await,
        Err(message) => bad_request(message),
    }
}

/// Draws a view on a blocking thread (reading the store blocks): its HTML,
/// or a 500 saying why `what` could not be drawn.
pub async fn draw<F>(what: &'static str, page: F) -> Response
where
    F: FnOnce() -> anyhow::Result<String> + Send + 'static,
{
    match tokio::task::spawn_blocking(page).await {
        Ok(Ok(html)) => Html(html).into_response(),
        Ok(Err(err)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw {what}: {err:#}\n"),
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw {what}: {err}\n"),
        )
            .into_response(),
    }
}
