//! The dashboard: views in one [`frame`] — the Overview at `/`, the
//! [`kernel`] view, [`who`] uses the machine, the HTTP [`services`], the
//! [`alerts`], the [`graph`] and sonde's own [`status`] — all
//! server-rendered HTML, readable without script; `web/static/dashboard.js`
//! only adds hover read-outs, a crosshair, legend toggling and drag-to-zoom.
//!
//! Shared by every view: the range in the URL ([`range`]), the frame with
//! its range picker and the one way a view is drawn ([`frame`]), the chart
//! card ([`card`]: SVG, legend, PromQL linked to the Graph view) and the
//! heatmaps ([`heatmap`]).
//!
//! The Overview at `/`: a health line and the top offenders now
//! ([`overview`]), what sonde lost or failed lately ([`status::problems`],
//! shown only then), and six charts. [`charts`] says what they show and
//! evaluates it against the store on a grid of instants (using the math of
//! [`series`]), [`render`] draws each one, [`units`] writes its numbers, and
//! the askama template `web/templates/dashboard.html` lays the page out.
//! Static assets under `web/static/` are embedded in the binary and served
//! under `/static/`.

pub mod alerts;
pub mod card;
pub mod charts;
pub mod frame;
pub mod graph;
pub mod heatmap;
pub mod kernel;
pub mod overview;
pub mod programs;
pub mod range;
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
use axum::response::{IntoResponse, Response};

use self::card::Card;
use self::charts::{Chart, CHARTS};
use self::frame::{Frame, View};
use self::range::TimeParams;
use self::render::{Plotted, PALETTE};
use self::series::Grid;

pub use self::range::{Preset, Range};

/// One chart evaluated over a range: its definition, the grid and a value
/// per instant for each of its lines, in legend order.
pub struct ChartData {
    pub chart: &'static Chart,
    pub grid: Grid,
    pub lines: Vec<Plotted>,
}

/// Evaluates every chart over `range`.
pub fn evaluate(
    store: &impl crate::query::Source,
    range: &Range,
) -> anyhow::Result<Vec<ChartData>> {
    let grid = range.grid();
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

impl ChartData {
    /// The chart's card; its PromQL with the windows this range draws at.
    fn card(self, range: &Range) -> anyhow::Result<Card> {
        let chart = self.chart;
        let promql = chart
            .lines
            .iter()
            .map(|line| {
                line.expr
                    .to_string()
                    .replace("$__rate_interval", &card::rate_window(&self.grid))
                    .replace("$__range", &range.promql_window())
                    .replace("$__interval", &format!("{}s", self.grid.step_ms / 1000))
            })
            .collect();
        Card::new(
            chart.id,
            chart.title,
            chart.unit,
            chart.style,
            &self.grid,
            self.lines,
            promql,
            range,
            chart.empty,
        )
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Page {
    frame: Frame,
    range: String,
    step: String,
    charts: Vec<Card>,
    status: Vec<status::Problem>,
    offenders: Vec<overview::Offenders>,
    firing: Vec<overview::Firing>,
    health: Vec<overview::Health>,
    rendered_at: String,
    elapsed_ms: u128,
}

/// `GET /`: the Overview. A bad parameter is a 400 saying what is allowed.
pub async fn page(
    State(state): State<super::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let now_ms = crate::collect::now_ms();
    let time = match TimeParams::parse(&pairs, &[], now_ms) {
        Ok(time) => time,
        Err(message) => return frame::bad_request(message),
    };
    frame::draw("the dashboard", move || {
        let started = Instant::now();
        let range = time.range;
        let charts = evaluate(&state.store, &range)?
            .into_iter()
            .map(|data| data.card(&range))
            .collect::<anyhow::Result<_>>()?;
        let mut page = Page {
            frame: Frame::over(View::Overview, &state, "/", &time, Vec::new()),
            range: range.describe(),
            step: humantime::format_duration(std::time::Duration::from_millis(
                range.step_ms() as u64
            ))
            .to_string(),
            charts,
            status: status::problems(&state.store, range.end_ms)?,
            offenders: overview::offenders(state.store_source(), &range)?,
            firing: overview::firing(&state),
            health: overview::health(&state, now_ms)?,
            rendered_at: format!("{} UTC", render::clock_seconds(range.end_ms)),
            elapsed_ms: 0,
        };
        page.elapsed_ms = started.elapsed().as_millis();
        Ok(page.render()?)
    })
    .await
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
        Some("js") => "text/javascript; charset=utf-8",
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
