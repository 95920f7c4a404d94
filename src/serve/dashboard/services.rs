//! The Services view at `/services`: every HTTP or gRPC service sonde's
//! RED collector saw over the range, with its request rate, error ratio and
//! p50/p95/p99 latency; per service its routes and gRPC methods, the calls
//! it made by peer (a service that only calls is listed for those), and
//! its slowest recent requests from the request log
//! ([`crate::collect::http::log`]).
//!
//! Numbers come from the store, from Beyla's histograms
//! (`http_server_request_duration_seconds`, `rpc_server_duration_seconds`):
//! what their counters and buckets grew by over the whole range, a series
//! born in the range counted from zero; a service that serves both has
//! them added (the two have the same buckets). Errors are what
//! OpenTelemetry's server semantics count: 5xx responses (a 4xx is the
//! client's mistake), and the gRPC codes a server is to blame for
//! ([`crate::collect::http::log::is_server_error`]); of calls made, as
//! OpenTelemetry's client semantics count them, 4xx too and every gRPC
//! code but OK (`http_client_request_duration_seconds`,
//! `rpc_client_duration_seconds`).

use std::collections::BTreeMap;
use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::card::graph_href;
use super::charts::Unit;
use super::frame::{self, Frame, View};
use super::range::{Range, TimeParams};
use super::who::{counter_growth, quoted};
use crate::collect::http::log::{
    status_text, Entry, Filter, Order, RequestLog, GRPC_SERVER_ERRORS,
};
use crate::model::Labels;
use crate::query::{self, Source};

/// The histogram of HTTP requests, and the one of gRPC calls.
const DURATION: &str = "http_server_request_duration_seconds";
const RPC_DURATION: &str = "rpc_server_duration_seconds";
/// Routes shown per service, busiest first.
const TOP_ROUTES: usize = 20;
/// Slow requests shown per service.
const SLOWEST: usize = 10;
/// The latency percentiles shown.
const QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];

/// Rate, errors and latency of one service, or of one of its routes.
struct Red {
    /// Requests per second over the range.
    rate: f64,
    /// Errors per second over the range (5xx, a server's gRPC codes).
    errors: f64,
    /// p50, p95, p99 in seconds (NaN without requests).
    quantiles: [f64; 3],
}

impl Default for Red {
    fn default() -> Red {
        Red {
            rate: 0.0,
            errors: 0.0,
            quantiles: [f64::NAN; 3],
        }
    }
}

/// What one histogram says of its calls: HTTP requests or gRPC calls,
/// served or made.
struct Calls {
    histogram: &'static str,
    /// The name of a series' row under its service: its route, its gRPC
    /// method, the peer it calls.
    row: fn(&Labels) -> String,
    /// Whether a series counts errors.
    is_error: fn(&Labels) -> bool,
}

/// A label's value, empty when the series has none.
fn label<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).unwrap_or("")
}

/// The peer a client's series calls, `address:port`.
fn peer(labels: &Labels) -> String {
    format!(
        "{}:{}",
        label(labels, "server_address"),
        label(labels, "server_port")
    )
}

/// A series' HTTP status class: its status code's first digit.
fn status_class(labels: &Labels) -> u8 {
    label(labels, "http_response_status_code")
        .as_bytes()
        .first()
        .copied()
        .unwrap_or(b'0')
}

/// A gRPC series' status code.
fn grpc_code(labels: &Labels) -> Option<u16> {
    label(labels, "rpc_grpc_status_code").parse().ok()
}

const HTTP: Calls = Calls {
    histogram: DURATION,
    row: |labels| {
        format!(
            "{} {}",
            label(labels, "http_request_method"),
            label(labels, "http_route")
        )
    },
    is_error: |labels| status_class(labels) == b'5',
};

const GRPC: Calls = Calls {
    histogram: RPC_DURATION,
    row: |labels| format!("gRPC {}", label(labels, "rpc_method")),
    is_error: |labels| grpc_code(labels).is_some_and(|code| GRPC_SERVER_ERRORS.contains(&code)),
};

/// Calls a service made, by peer. OpenTelemetry's client semantics: a 4xx
/// is an error too (the call failed), and every gRPC code but OK.
const HTTP_OUT: Calls = Calls {
    histogram: "http_client_request_duration_seconds",
    row: peer,
    is_error: |labels| matches!(status_class(labels), b'4' | b'5'),
};

const GRPC_OUT: Calls = Calls {
    histogram: "rpc_client_duration_seconds",
    row: peer,
    is_error: |labels| grpc_code(labels).is_some_and(|code| code != 0),
};

/// What a service's (or a route's) series grew by over the range.
#[derive(Default)]
struct Tally {
    calls: f64,
    errors: f64,
    /// Every bucket's growth; equal bounds add up in the quantile.
    buckets: Vec<(f64, f64)>,
}

/// Adds what `calls`'s series grew by over the range to `tallies`, by
/// service (`routes` false) or by service and route name
/// ([`super::who::counter_growth`]: a service that started serving inside
/// the range counts whole, where `rate()` would miss its first requests).
fn tally(
    store: &dyn Source,
    calls: &Calls,
    routes: bool,
    range: &Range,
    tallies: &mut BTreeMap<Vec<String>, Tally>,
) -> Result<(), query::QueryError> {
    let key = |labels: &Labels| -> Vec<String> {
        let service = label(labels, "service_name").to_string();
        match routes {
            true => vec![service, (calls.row)(labels)],
            false => vec![service],
        }
    };
    let counts = counter_growth(store, &format!("{}_count", calls.histogram), "", range)?;
    for (labels, grown) in counts {
        let tally = tallies.entry(key(&labels)).or_default();
        tally.calls += grown;
        if (calls.is_error)(&labels) {
            tally.errors += grown;
        }
    }
    let buckets = counter_growth(store, &format!("{}_bucket", calls.histogram), "", range)?;
    for (labels, grown) in buckets {
        let upper = match labels.get("le") {
            Some("+Inf") => f64::INFINITY,
            Some(le) => le.parse().unwrap_or(f64::NAN),
            None => continue,
        };
        if let Some(tally) = tallies.get_mut(&key(&labels)) {
            tally.buckets.push((upper, grown));
        }
    }
    Ok(())
}

/// The figures of every service (`routes` false) or of every service's
/// rows, of the histograms `calls` together, over the range.
fn red_by(
    store: &dyn Source,
    calls: [&Calls; 2],
    routes: bool,
    range: &Range,
) -> Result<BTreeMap<Vec<String>, Red>, query::QueryError> {
    let mut tallies = BTreeMap::new();
    for calls in calls {
        tally(store, calls, routes, range, &mut tallies)?;
    }
    let seconds = range.duration_ms() as f64 / 1000.0;
    Ok(tallies
        .into_iter()
        .map(|(key, mut tally)| {
            let red = Red {
                rate: tally.calls / seconds,
                errors: tally.errors / seconds,
                quantiles: QUANTILES.map(|q| match tally.buckets.is_empty() {
                    true => f64::NAN,
                    false => query::bucket_quantile(q, &mut tally.buckets),
                }),
            };
            (key, red)
        })
        .collect())
}

/// One row of a table: its name and its figures as text.
struct Row {
    name: String,
    cells: Vec<String>,
}

fn red_cells(red: &Red) -> Vec<String> {
    let ratio = if red.rate > 0.0 {
        red.errors / red.rate * 100.0
    } else {
        0.0
    };
    let mut cells = vec![
        Unit::PerSecond("requests").format(red.rate),
        Unit::Percent.format(ratio),
    ];
    cells.extend(red.quantiles.iter().map(|q| seconds(*q)));
    cells
}

/// A duration in seconds as ms or s; a dash when there is none.
fn seconds(value: f64) -> String {
    if !value.is_finite() {
        "–".to_string()
    } else if value < 1.0 {
        format!("{} ms", super::units::digits(value * 1000.0))
    } else {
        format!("{} s", super::units::digits(value))
    }
}

/// A slow request as the table shows it.
struct Slow {
    time: String,
    method: &'static str,
    path: String,
    status: String,
    duration: String,
    sizes: String,
    pid: u32,
}

impl Slow {
    fn of(entry: &Entry) -> Slow {
        Slow {
            time: crate::civil::rfc3339(entry.time_ms),
            method: entry.method,
            path: entry.path.clone(),
            status: status_text(entry.status, entry.grpc_status),
            duration: seconds(entry.duration_seconds),
            sizes: format!(
                "{} / {}",
                Unit::Bytes.format(entry.request_body_bytes as f64),
                Unit::Bytes.format(entry.response_body_bytes as f64)
            ),
            pid: entry.pid,
        }
    }
}

struct Service {
    name: String,
    /// Its figures over time, as links to the Graph view.
    graphs: Vec<Graph>,
    /// What it served (0/s, no percentiles, when it only calls).
    summary: Vec<String>,
    routes: Vec<Row>,
    /// The calls it made, by peer.
    calls: Vec<Row>,
    slowest: Vec<Slow>,
}

struct Graph {
    label: &'static str,
    href: String,
}

/// The Graph view's links for `service`: its requests and gRPC calls by
/// status, the error ratio (5xx, a server's gRPC codes) and the
/// percentiles, over `range`. Both histograms at once: a rate drops the
/// metric's name, and their series never share a label set (HTTP's have
/// HTTP's labels, gRPC's gRPC's).
fn graphs(service: &str, range: &Range) -> Vec<Graph> {
    let sel = format!("service_name={}", quoted(service));
    let both = |suffix: &str| {
        format!("{{__name__=~\"{DURATION}_{suffix}|{RPC_DURATION}_{suffix}\",{sel}}}")
    };
    let calls = format!("rate({}[1m])", both("count"));
    let errors = format!(
        "rate({DURATION}_count{{{sel},http_response_status_code=~\"5..\"}}[1m]) \
         or rate({RPC_DURATION}_count{{{sel},rpc_grpc_status_code=~\"{}\"}}[1m])",
        GRPC_SERVER_ERRORS.map(|code| code.to_string()).join("|")
    );
    let quantiles = QUANTILES.map(|q| {
        format!(
            "histogram_quantile({q}, sum by (le) (rate({}[1m])))",
            both("bucket")
        )
    });
    [
        (
            "requests by status",
            format!("sum by (http_response_status_code, rpc_grpc_status_code) ({calls})"),
        ),
        (
            "error ratio",
            format!("(sum({errors}) or vector(0)) / sum({calls})"),
        ),
        ("p50", quantiles[0].clone()),
        ("p95", quantiles[1].clone()),
        ("p99", quantiles[2].clone()),
    ]
    .into_iter()
    .map(|(label, expr)| Graph {
        label,
        href: graph_href(&expr, range),
    })
    .collect()
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    frame: Frame,
    range: String,
    headings: [&'static str; 5],
    services: Vec<Service>,
    elapsed_ms: u128,
}

/// `GET /services?range=…` (or from/to).
pub async fn page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    frame::draw_over(&pairs, "the Services view", move |time| {
        services(&state, &time)
    })
    .await
}

/// The busiest rows of `service` in `by_row` (keyed by service and row).
fn rows_of(by_row: &BTreeMap<Vec<String>, Red>, service: &str) -> Vec<Row> {
    let mut rows: Vec<(&Vec<String>, &Red)> =
        by_row.iter().filter(|(key, _)| key[0] == service).collect();
    rows.sort_by(|a, b| b.1.rate.total_cmp(&a.1.rate));
    rows.into_iter()
        .take(TOP_ROUTES)
        .map(|(key, red)| Row {
            name: key[1].clone(),
            cells: red_cells(red),
        })
        .collect()
}

fn services(state: &crate::serve::Shared, time: &TimeParams) -> anyhow::Result<String> {
    let started = Instant::now();
    let range = &time.range;
    let store = state.store_source();
    let by_service = red_by(store, [&HTTP, &GRPC], false, range)?;
    let by_route = red_by(store, [&HTTP, &GRPC], true, range)?;
    let by_peer = red_by(store, [&HTTP_OUT, &GRPC_OUT], true, range)?;
    // Every service that served or called, busiest server first.
    let served = |name: &str| by_service.get(&vec![name.to_string()]);
    let mut names: Vec<&str> = by_service
        .keys()
        .chain(by_peer.keys())
        .map(|key| key[0].as_str())
        .collect();
    names.sort_by(|a, b| {
        let rate = |name: &str| served(name).map_or(0.0, |red| red.rate);
        rate(b).total_cmp(&rate(a)).then(a.cmp(b))
    });
    names.dedup();
    let log = RequestLog::shared();
    let services: Vec<Service> = names
        .into_iter()
        .map(|name| {
            let filter = Filter {
                service: Some(name.to_string()),
                order: Order::Slowest,
                limit: SLOWEST,
                ..Filter::default()
            };
            let red = served(name);
            Service {
                graphs: match red {
                    Some(_) => graphs(name, range),
                    None => Vec::new(),
                },
                summary: red_cells(red.unwrap_or(&Red::default())),
                routes: rows_of(&by_route, name),
                calls: rows_of(&by_peer, name),
                slowest: log
                    .query(&filter, crate::collect::now_ms())
                    .iter()
                    .map(Slow::of)
                    .collect(),
                name: name.to_string(),
            }
        })
        .collect();
    let page = ServicesPage {
        frame: Frame::over(View::Services, state, "/services", time, Vec::new()),
        range: range.describe(),
        headings: ["Requests", "Errors", "p50", "p95", "p99"],
        services,
        elapsed_ms: started.elapsed().as_millis(),
    };
    Ok(page.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_rates_ratios_and_durations() {
        let red = Red {
            rate: 2.0,
            errors: 0.5,
            quantiles: [0.004, 0.25, f64::NAN],
        };
        let cells = red_cells(&red);
        assert_eq!(cells[0], "2/s");
        assert!(cells[1].starts_with("25"), "{}", cells[1]);
        assert_eq!(cells[2], "4 ms");
        assert_eq!(cells[3], "250 ms");
        assert_eq!(cells[4], "–");
        assert_eq!(seconds(1.5), "1.5 s");
    }
}
