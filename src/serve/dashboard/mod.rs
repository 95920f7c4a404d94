//! The dashboard: views in one [`frame`] — the Overview at `/`, [`who`]
//! uses the machine, the HTTP [`services`], the [`alerts`] and the
//! [`graph`] — all server-rendered HTML without script.
//!
//! The Overview at `/`: the Status view ([`status`]: what sonde lost or
//! failed lately, shown only then), six server-rendered SVG charts read from
//! the store, a time-range selector and a refresh, in plain HTML (no script).
//!
//! A request runs in four steps, one submodule each: [`charts`] says what to
//! show and evaluates it against the store on a grid of instants (using the
//! math of [`series`]), [`render`] draws each chart, [`units`] writes its
//! numbers, and the askama template `web/templates/dashboard.html` lays the
//! page out. Static assets under `web/static/` are embedded in the binary and
//! served under `/static/`.

pub mod alerts;
pub mod charts;
pub mod frame;
pub mod graph;
pub mod render;
pub mod series;
pub mod services;
pub mod status;
pub mod units;
pub mod who;

use std::time::Instant;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use self::charts::{Chart, CHARTS};
use self::render::{Plotted, PALETTE};
use self::series::Grid;

/// The time ranges offered, with the step each is drawn at: about 200
/// instants per chart whatever the range, so a day costs no more to draw
/// than a quarter of an hour (reading the samples is what grows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Minutes15,
    Hour1,
    Hours6,
    Hours24,
}

impl Range {
    pub const ALL: [Range; 4] = [
        Range::Minutes15,
        Range::Hour1,
        Range::Hours6,
        Range::Hours24,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Range::Minutes15 => "15m",
            Range::Hour1 => "1h",
            Range::Hours6 => "6h",
            Range::Hours24 => "24h",
        }
    }

    pub fn duration_ms(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            Range::Minutes15 => 15 * MINUTE,
            Range::Hour1 => 60 * MINUTE,
            Range::Hours6 => 6 * 60 * MINUTE,
            Range::Hours24 => 24 * 60 * MINUTE,
        }
    }

    pub fn step_ms(self) -> i64 {
        match self {
            Range::Minutes15 => 5_000,
            Range::Hour1 => 20_000,
            Range::Hours6 => 120_000,
            Range::Hours24 => 480_000,
        }
    }

    fn parse(text: &str) -> Result<Range, String> {
        Range::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| {
                format!(
                    "bad range {text:?}: choose one of {}",
                    Range::ALL.map(Range::name).join(", ")
                )
            })
    }
}

/// Auto-refresh periods offered (seconds; 0 is off).
const REFRESHES: [(&str, u32); 5] = [
    ("off", 0),
    ("10s", 10),
    ("30s", 30),
    ("1m", 60),
    ("5m", 300),
];

/// What the query string asks for: `range` and `refresh`, both optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params {
    range: Range,
    refresh: (&'static str, u32),
}

impl Params {
    fn parse(pairs: &[(String, String)]) -> Result<Params, String> {
        let mut params = Params {
            range: Range::Hour1,
            refresh: REFRESHES[0],
        };
        for (name, value) in pairs {
            match name.as_str() {
                "range" => params.range = Range::parse(value)?,
                "refresh" => {
                    params.refresh =
                        REFRESHES
                            .into_iter()
                            .find(|(n, _)| n == value)
                            .ok_or_else(|| {
                                format!(
                                    "bad refresh {value:?}: choose one of {}",
                                    REFRESHES.map(|(n, _)| n).join(", ")
                                )
                            })?
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: the dashboard takes range and refresh"
                    ))
                }
            }
        }
        Ok(params)
    }

    fn href(range: Range, refresh: &str) -> String {
        if refresh == REFRESHES[0].0 {
            format!("/?range={}", range.name())
        } else {
            format!("/?range={}&refresh={refresh}", range.name())
        }
    }
}

/// One chart evaluated over a range: its definition, the grid and a value
/// per instant for each of its lines, in legend order.
pub struct ChartData {
    pub chart: &'static Chart,
    pub grid: Grid,
    pub lines: Vec<Plotted>,
}

/// Evaluates every chart over `range` ending at `now_ms`.
pub fn evaluate(
    store: &impl crate::query::Source,
    range: Range,
    now_ms: i64,
) -> anyhow::Result<Vec<ChartData>> {
    let grid = Grid::ending_at(now_ms, range.duration_ms(), range.step_ms());
    CHARTS
        .iter()
        .map(|chart| {
            let mut lines = Vec::new();
            for line in chart.lines {
                for curve in charts::evaluate(store, &line.expr, &grid)? {
                    if curve.points.iter().any(Option::is_some) {
                        let legend = charts::legend(line.legend, &curve.labels);
                        lines.push((legend, line.dashed, curve.points));
                    }
                }
            }
            let place = |legend: &str| {
                let known = chart.order.iter().position(|o| *o == legend);
                known.unwrap_or(chart.order.len())
            };
            lines.sort_by_key(|(legend, _, _)| place(legend));
            let lines = lines
                .into_iter()
                .zip(PALETTE.iter().cycle())
                .map(|((legend, dashed, points), &color)| Plotted {
                    legend,
                    color,
                    dashed,
                    points,
                })
                .collect();
            Ok(ChartData { chart, grid, lines })
        })
        .collect()
}

/// A chart as the template shows it.
struct ChartView {
    id: &'static str,
    title: &'static str,
    /// The SVG, or `None` when the chart has no data in the range.
    svg: Option<String>,
    empty: &'static str,
    legend: Vec<LegendEntry>,
    promql: Vec<String>,
}

struct LegendEntry {
    name: String,
    color: String,
    dashed: bool,
    last: String,
    max: String,
}

impl ChartView {
    fn new(data: &ChartData) -> anyhow::Result<ChartView> {
        let chart = data.chart;
        let svg = if data.lines.is_empty() {
            None
        } else {
            Some(render::svg(
                chart.title,
                chart.unit,
                chart.style,
                &data.grid,
                &data.lines,
            )?)
        };
        let legend = data
            .lines
            .iter()
            .map(|line| {
                let values = line.points.iter().flatten();
                let last = values.clone().next_back().copied().unwrap_or(f64::NAN);
                let max = values.fold(f64::NEG_INFINITY, |max, &v| max.max(v));
                LegendEntry {
                    name: line.legend.clone(),
                    color: line.css_color(),
                    dashed: line.dashed,
                    last: chart.unit.format(last),
                    max: chart.unit.format(max),
                }
            })
            .collect();
        Ok(ChartView {
            id: chart.id,
            title: chart.title,
            svg,
            empty: chart.empty,
            legend,
            promql: chart.lines.iter().map(|l| l.expr.to_string()).collect(),
        })
    }
}

/// A link in a selector.
struct Choice {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Page {
    frame: frame::Frame,
    range: &'static str,
    ranges: Vec<Choice>,
    refreshes: Vec<Choice>,
    refresh_seconds: u32,
    reload_href: String,
    step: String,
    charts: Vec<ChartView>,
    status: Vec<status::Problem>,
    rendered_at: String,
    elapsed_ms: u128,
}

/// `GET /`: the dashboard. A bad parameter is a 400 saying what is allowed.
pub async fn page(
    State(state): State<super::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let params = match Params::parse(&pairs) {
        Ok(params) => params,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let rendered = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let now_ms = crate::collect::now_ms();
        let data = evaluate(&state.store, params.range, now_ms)?;
        let problems = status::problems(&state.store, now_ms)?;
        let frame = frame::Frame::new(frame::View::Overview, &state);
        render_page(frame, params, &data, problems, now_ms, started)
    })
    .await;
    match rendered {
        Ok(Ok(html)) => Html(html).into_response(),
        Ok(Err(err)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw the dashboard: {err:#}\n"),
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw the dashboard: {err}\n"),
        )
            .into_response(),
    }
}

fn render_page(
    frame: frame::Frame,
    params: Params,
    data: &[ChartData],
    status: Vec<status::Problem>,
    now_ms: i64,
    started: Instant,
) -> anyhow::Result<String> {
    let charts = data
        .iter()
        .map(ChartView::new)
        .collect::<anyhow::Result<_>>()?;
    let (refresh_name, refresh_seconds) = params.refresh;
    let page = Page {
        frame,
        range: params.range.name(),
        ranges: Range::ALL
            .into_iter()
            .map(|r| Choice {
                label: r.name(),
                href: Params::href(r, refresh_name),
                current: r == params.range,
            })
            .collect(),
        refreshes: REFRESHES
            .into_iter()
            .map(|(name, _)| Choice {
                label: name,
                href: Params::href(params.range, name),
                current: name == refresh_name,
            })
            .collect(),
        refresh_seconds,
        reload_href: Params::href(params.range, refresh_name),
        step: humantime::format_duration(std::time::Duration::from_millis(
            params.range.step_ms() as u64
        ))
        .to_string(),
        charts,
        status,
        rendered_at: format!("{} UTC", render::clock_seconds(now_ms)),
        elapsed_ms: started.elapsed().as_millis(),
    };
    Ok(page.render()?)
}

#[derive(rust_embed::Embed)]
#[folder = "web/static/"]
struct Assets;

/// `GET /static/{file}`: an embedded asset.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = Assets::get(&file) else {
        return (StatusCode::NOT_FOUND, format!("no asset {file:?}\n")).into_response();
    };
    let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; an hour spares reloads.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        asset.data,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn params_default_to_an_hour_without_refresh() {
        let params = Params::parse(&[]).unwrap();
        assert_eq!(params.range, Range::Hour1);
        assert_eq!(params.refresh.1, 0);
        let params = Params::parse(&pairs(&[("range", "24h"), ("refresh", "30s")])).unwrap();
        assert_eq!(params.range, Range::Hours24);
        assert_eq!(params.refresh, ("30s", 30));
    }

    #[test]
    fn bad_params_say_what_is_allowed() {
        let err = Params::parse(&pairs(&[("range", "banana")])).unwrap_err();
        assert_eq!(err, "bad range \"banana\": choose one of 15m, 1h, 6h, 24h");
        let err = Params::parse(&pairs(&[("refresh", "1s")])).unwrap_err();
        assert!(err.contains("off, 10s, 30s, 1m, 5m"), "{err}");
        assert!(Params::parse(&pairs(&[("zoom", "2")])).is_err());
    }

    #[test]
    fn every_range_is_drawn_at_a_few_hundred_instants() {
        for range in Range::ALL {
            let points = range.duration_ms() / range.step_ms();
            assert!((150..=250).contains(&points), "{range:?}: {points}");
        }
    }
}
