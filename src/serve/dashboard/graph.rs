//! The Graph view at `/graph`: a PromQL box, the expression drawn over a
//! range and its value now as a table. It reads Prometheus's own URL
//! parameters (`g0.expr`, `g0.tab`, `g0.range_input`), so an alert's
//! `generatorURL` and links copied from Prometheus open here; parameters it
//! does not use (`g0.stacked`, `g1.*`…) are ignored, as Prometheus does.

use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::charts::{Style, Unit};
use super::frame::{Frame, View};
use super::render::{self, Plotted, PALETTE};
use super::series::Grid;
use super::Preset;
use crate::model::format_float;
use crate::query::{self, Limits, QueryError, QueryValue, Source};

/// Lines drawn at most; the rest are listed as left out.
const MAX_LINES: usize = 30;
/// Instants a range is drawn at.
const POINTS: i64 = 240;

/// What the URL asks for.
struct Request {
    expr: String,
    table: bool,
    range_ms: i64,
    range_text: String,
}

impl Request {
    fn parse(pairs: &[(String, String)]) -> Result<Request, String> {
        let mut request = Request {
            expr: String::new(),
            table: false,
            range_ms: Preset::Hour1.duration_ms(),
            range_text: Preset::Hour1.name().to_string(),
        };
        for (name, value) in pairs {
            match name.as_str() {
                "g0.expr" => request.expr = value.trim().to_string(),
                "g0.tab" => request.table = value == "1",
                "g0.range_input" => {
                    let ms = crate::serve::api::parse_duration(value)
                        .map_err(|err| format!("g0.range_input: {err}"))?;
                    if ms <= 0 {
                        return Err(format!(
                            "g0.range_input: expected a positive duration, got {value:?}"
                        ));
                    }
                    request.range_ms = ms;
                    request.range_text = value.clone();
                }
                _ => {}
            }
        }
        Ok(request)
    }

    fn href(&self, table: bool, range: &str) -> String {
        let expr: String = form_urlencoded::byte_serialize(self.expr.as_bytes()).collect();
        format!(
            "/graph?g0.expr={expr}&g0.tab={}&g0.range_input={range}",
            u8::from(table)
        )
    }
}

struct Choice {
    label: String,
    href: String,
    current: bool,
}

struct LegendEntry {
    name: String,
    color: String,
}

struct Row {
    labels: String,
    value: String,
}

#[derive(Template)]
#[template(path = "graph.html")]
struct Page {
    frame: Frame,
    expr: String,
    table: bool,
    range_input: String,
    tabs: Vec<Choice>,
    ranges: Vec<Choice>,
    error: Option<String>,
    svg: Option<String>,
    legend: Vec<LegendEntry>,
    left_out: usize,
    rows: Vec<Row>,
    elapsed_ms: u128,
}

/// `GET /graph`.
pub async fn page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let rendered = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let frame = Frame::new(View::Graph, &state);
        let (request, error) = match Request::parse(&pairs) {
            Ok(request) => (request, None),
            Err(message) => (
                Request::parse(&[]).expect("the defaults parse"),
                Some((StatusCode::BAD_REQUEST, message)),
            ),
        };
        let mut page = Page {
            frame,
            expr: request.expr.clone(),
            table: request.table,
            range_input: request.range_text.clone(),
            tabs: [("Graph", false), ("Table", true)]
                .into_iter()
                .map(|(label, table)| Choice {
                    label: label.to_string(),
                    href: request.href(table, &request.range_text),
                    current: table == request.table,
                })
                .collect(),
            ranges: Preset::ALL
                .into_iter()
                .map(|range| Choice {
                    label: range.name().to_string(),
                    href: request.href(request.table, range.name()),
                    current: range.name() == request.range_text,
                })
                .collect(),
            error: None,
            svg: None,
            legend: Vec::new(),
            left_out: 0,
            rows: Vec::new(),
            elapsed_ms: 0,
        };
        let status = match error {
            Some((status, message)) => {
                page.error = Some(message);
                status
            }
            None if request.expr.is_empty() => StatusCode::OK,
            None => match fill(&mut page, state.store_source(), &request) {
                Ok(()) => StatusCode::OK,
                Err(err) => {
                    let status = match err {
                        QueryError::BadData(_) => StatusCode::BAD_REQUEST,
                        QueryError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        QueryError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
                        QueryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    page.error = Some(err.to_string());
                    status
                }
            },
        };
        page.elapsed_ms = started.elapsed().as_millis();
        page.render().map(|html| (status, html))
    })
    .await;
    match rendered {
        Ok(Ok((status, html))) => (status, Html(html)).into_response(),
        Ok(Err(err)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw the graph: {err}\n"),
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw the graph: {err}\n"),
        )
            .into_response(),
    }
}

/// Evaluates the expression: over the range for the graph, now for the
/// table.
fn fill(page: &mut Page, source: &dyn Source, request: &Request) -> Result<(), QueryError> {
    let now = crate::collect::now_ms();
    let limits = Limits::default();
    if request.table {
        page.rows = rows(query::instant_query(source, &limits, &request.expr, now)?);
        return Ok(());
    }
    let step = (request.range_ms / POINTS).max(1000);
    let grid = Grid::ending_at(now, request.range_ms, step);
    let value = query::range_query(
        source,
        &limits,
        &request.expr,
        grid.start_ms,
        grid.end_ms(),
        step,
    )?;
    let QueryValue::Matrix(series) = value else {
        page.rows = rows(value);
        return Ok(());
    };
    page.left_out = series.len().saturating_sub(MAX_LINES);
    let plotted: Vec<Plotted> = series
        .iter()
        .take(MAX_LINES)
        .zip(PALETTE.iter().cycle())
        .map(|(series, &color)| {
            Plotted::from_series(series, series.labels.to_string(), color, &grid)
        })
        .collect();
    if plotted.is_empty() {
        return Ok(());
    }
    page.svg = Some(
        render::svg(&request.expr, Unit::Number, Style::Lines, &grid, &plotted)
            .map_err(|err| QueryError::Storage(format!("cannot draw: {err:#}")))?,
    );
    page.legend = plotted
        .iter()
        .map(|line| LegendEntry {
            name: line.legend.clone(),
            color: line.css_color(),
        })
        .collect();
    Ok(())
}

fn rows(value: QueryValue) -> Vec<Row> {
    match value {
        QueryValue::Scalar { value, .. } => vec![Row {
            labels: "scalar".into(),
            value: format_float(value),
        }],
        QueryValue::String { value, .. } => vec![Row {
            labels: "string".into(),
            value,
        }],
        QueryValue::Vector(samples) => samples
            .into_iter()
            .map(|s| Row {
                labels: s.labels.to_string(),
                value: format_float(s.value),
            })
            .collect(),
        QueryValue::Matrix(series) => series
            .into_iter()
            .map(|s| Row {
                labels: s.labels.to_string(),
                value: s
                    .points
                    .iter()
                    .map(|(t, v)| format!("{} @{}", format_float(*v), *t as f64 / 1000.0))
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
            .collect(),
    }
}
