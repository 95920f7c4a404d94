//! The Kernel view at `/kernel`: what the eBPF collectors saw, for "why is
//! it slow" questions. Latency heatmaps ([`heatmap`]: time × log2 bucket,
//! p50 and p99 drawn over them) for syscalls (all, or the one chosen with
//! `?syscall=`), block I/O per device and operation, run-queue waits and
//! TCP connects; syscall errors by syscall and errno and by process; TCP retransmits,
//! resets and connects; and a strip of process events (execs, exits by
//! reason, OOM kills) as counts per step.
//!
//! Everything is PromQL over the store, each card linking its queries to
//! the Graph view. A histogram the machine never filled (no eBPF, a
//! collector turned off) shows what to check instead of a picture.

use std::collections::HashMap;
use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::card::{self, range_series, ranked, Card, Panel};
use super::charts::Unit;
use super::frame::{self, Frame, View};
use super::heatmap::{self, Heatmap, Histogram, Overlay};
use super::range::{Range, TimeParams};
use crate::query::Source;

/// Block I/O heatmaps drawn at most (the busiest device and op pairs).
const BLOCK_MAPS: usize = 4;
/// Syscalls offered in the chooser, the busiest first.
const SYSCALL_CHOICES: usize = 60;
/// Rows of each errors table.
const ERROR_ROWS: usize = 15;

const NO_BPF: &str =
    "Nothing counted: this needs the eBPF collectors (see the Status view and `sonde doctor`).";

/// A heatmap as the template shows it.
pub struct HeatCard {
    pub id: String,
    pub title: String,
    pub svg: Option<String>,
    pub empty: &'static str,
    pub lines: Vec<Overlay>,
    /// The highest count in one cell, as the colour scale's top.
    pub max: String,
    pub promql: Vec<(String, String)>,
}

impl HeatCard {
    fn new(
        id: String,
        title: String,
        map: Heatmap,
        promql: Vec<String>,
        range: &Range,
        empty: &'static str,
    ) -> HeatCard {
        let grid = range.grid();
        let svg = (!map.is_empty()).then(|| heatmap::svg(&title, &grid, &map));
        HeatCard {
            id,
            max: super::units::digits(map.max()),
            svg,
            title,
            empty,
            lines: map.lines,
            promql: promql
                .into_iter()
                .map(|expr| {
                    let href = card::graph_href(&expr, range);
                    (expr, href)
                })
                .collect(),
        }
    }

    /// The heatmap of a latency histogram, with its quantiles' PromQL.
    fn latency(
        store: &dyn Source,
        id: String,
        title: String,
        metric: &str,
        sel: &str,
        range: &Range,
        empty: &'static str,
    ) -> anyhow::Result<HeatCard> {
        HeatCard::histogram(
            store,
            id,
            title,
            (metric, sel),
            range,
            empty,
            heatmap::seconds,
        )
    }

    /// The heatmap of histogram `metric`'s series matching `sel`, its
    /// bounds and quantiles written by `format`, with its quantiles'
    /// PromQL.
    pub fn histogram(
        store: &dyn Source,
        id: String,
        title: String,
        (metric, sel): (&str, &str),
        range: &Range,
        empty: &'static str,
        format: fn(f64) -> String,
    ) -> anyhow::Result<HeatCard> {
        let grid = range.grid();
        let (histogram, promql) = Histogram::read(store, metric, sel, &grid)?;
        let quantile = |q: f64| {
            format!(
                "histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{sel}}}[{}])))",
                card::rate_window(&grid)
            )
        };
        let promql = vec![promql, quantile(0.5), quantile(0.99)];
        Ok(HeatCard::new(
            id,
            title,
            histogram.heatmap(&grid, format),
            promql,
            range,
            empty,
        ))
    }
}

/// A choice in the syscall chooser.
pub struct SyscallChoice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct ErrorRow {
    /// The process (its name, where it runs, its Who page); None in the
    /// table by syscall.
    pub process: Option<(String, String, String)>,
    pub syscall: String,
    pub errno: String,
    pub count: String,
}

/// A table of syscall errors over the range.
pub struct ErrorTable {
    pub id: &'static str,
    pub title: &'static str,
    /// What the rows are summed by, as the PromQL shown under the table says.
    pub by: &'static str,
    pub rows: Vec<ErrorRow>,
    pub href: String,
}

/// One recent kernel event as the table shows it.
pub struct EventRow {
    pub time: String,
    pub kind: &'static str,
    pub pid: u32,
    pub comm: String,
    pub place: String,
    pub detail: String,
}

/// Events the table shows, newest first.
const RECENT_EVENTS: usize = 30;

/// The last events of the stream, clean exits left out (one per process
/// that ran: they would push the rest off the table).
fn recent_events() -> Vec<EventRow> {
    use crate::collect::events::{stream, Kind};
    stream()
        .recent(None, usize::MAX)
        .into_iter()
        .filter(|e| !(e.kind == Kind::Exit && e.exit_code == Some(0)))
        .take(RECENT_EVENTS)
        .map(|e| {
            let detail = match e.kind {
                Kind::Exec => e.args.join(" "),
                Kind::Connect | Kind::Accept => e.peer.map(|p| p.to_string()).unwrap_or_default(),
                Kind::Listen => e
                    .local_port
                    .map(|p| format!("port {p}"))
                    .unwrap_or_default(),
                Kind::OpenWrite => e.path.clone().unwrap_or_default(),
                Kind::Signal | Kind::Exit => match (e.signal, e.exit_code) {
                    (Some(signal), _) => crate::collect::bpf::process::signal_name(signal),
                    (None, Some(code)) => format!("exit code {code}"),
                    (None, None) => String::new(),
                },
                Kind::OomKill => String::new(),
            };
            EventRow {
                time: crate::civil::rfc3339(e.time_ms)
                    .get(11..23)
                    .unwrap_or_default()
                    .to_string(),
                kind: e.kind.name(),
                pid: e.process.id.pid,
                comm: e.process.comm.clone(),
                place: e
                    .process
                    .unit
                    .clone()
                    .or_else(|| e.process.container.clone())
                    .unwrap_or_default(),
                detail,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "kernel.html")]
struct Page {
    frame: Frame,
    range: String,
    syscalls: Vec<SyscallChoice>,
    latency: Vec<HeatCard>,
    events: HeatCard,
    charts: Vec<Card>,
    errors: [ErrorTable; 2],
    recent: Vec<EventRow>,
    elapsed_ms: u128,
}

/// The line charts, under the heatmaps.
const PANELS: &[Panel] = &[
    Panel {
        title: "Syscall errors by errno",
        unit: Unit::PerSecond("errors"),
        lines: &[(
            "{syscall} {errno}",
            "topk(8, sum by (syscall, errno) (rate(sonde_syscall_errors_total[$w])))",
        )],
        dashed: None,
        empty: NO_BPF,
    },
    Panel {
        title: "TCP retransmits",
        unit: Unit::PerSecond("segments"),
        lines: &[(
            "{comm}",
            "topk(8, sum by (comm) (rate(sonde_tcp_retransmits_total[$w])))",
        )],
        dashed: None,
        empty: "No TCP segment was retransmitted.",
    },
    Panel {
        title: "TCP resets",
        unit: Unit::PerSecond("resets"),
        lines: &[(
            "{comm}",
            "topk(8, sum by (comm) (rate(sonde_tcp_resets_total[$w])))",
        )],
        dashed: None,
        empty: "No TCP reset was sent or received.",
    },
    Panel {
        title: "TCP connects",
        unit: Unit::PerSecond("connects"),
        lines: &[(
            "{result}",
            "sum by (result) (rate(sonde_tcp_connects_total[$w]))",
        )],
        dashed: None,
        empty: "No TCP connect was made.",
    },
];

/// The event strip's rows, top to bottom: legend and counter selection.
const EVENTS: &[(&str, &str)] = &[
    ("OOM kills", "sonde_oom_kills_total"),
    (
        "killed by a signal",
        "sonde_process_exits_total{reason=~\"SIG.*\"}",
    ),
    (
        "exits non-zero",
        "sonde_process_exits_total{reason=\"non-zero\"}",
    ),
    ("exits 0", "sonde_process_exits_total{reason=\"0\"}"),
    ("execs", "sonde_process_execs_total"),
];

/// `GET /kernel`.
pub async fn page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let time = match TimeParams::parse(&pairs, &["syscall"], crate::collect::now_ms()) {
        Ok(time) => time,
        Err(message) => return frame::bad_request(message),
    };
    let syscall = pairs
        .iter()
        .find(|(name, _)| name == "syscall")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    if !syscall
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return frame::bad_request(format!(
            "syscall: expected a syscall's name such as read, got {syscall:?}"
        ));
    }
    frame::draw("the Kernel view", move || {
        let started = Instant::now();
        let store = state.store_source();
        let range = time.range;
        let keep = if syscall.is_empty() {
            Vec::new()
        } else {
            vec![("syscall".to_string(), syscall.clone())]
        };
        let mut page = Page {
            frame: Frame::over(View::Kernel, &state, "/kernel", &time, keep),
            range: range.describe(),
            syscalls: syscall_choices(store, &range, &syscall)?,
            latency: latency_cards(store, &range, &syscall)?,
            events: events(store, &range)?,
            charts: PANELS
                .iter()
                .map(|panel| panel.draw(store, "", &range))
                .collect::<anyhow::Result<_>>()?,
            errors: errors(store, &range)?,
            recent: recent_events(),
            elapsed_ms: 0,
        };
        page.elapsed_ms = started.elapsed().as_millis();
        Ok(page.render()?)
    })
    .await
}

fn syscall_choices(
    store: &dyn Source,
    range: &Range,
    chosen: &str,
) -> anyhow::Result<Vec<SyscallChoice>> {
    let promql = format!(
        "sum by (syscall) (increase(sonde_syscall_duration_seconds_count[{}]))",
        range.promql_window()
    );
    let mut choices = vec![SyscallChoice {
        value: String::new(),
        label: "all syscalls".to_string(),
        selected: chosen.is_empty(),
    }];
    for sample in ranked(store, &promql, range.end_ms)?
        .into_iter()
        .take(SYSCALL_CHOICES)
    {
        let name = sample.labels.get("syscall").unwrap_or("?").to_string();
        choices.push(SyscallChoice {
            label: format!("{name} ({})", super::units::digits(sample.value.round())),
            selected: name == chosen,
            value: name,
        });
    }
    if !chosen.is_empty() && !choices.iter().any(|c| c.selected) {
        choices.push(SyscallChoice {
            value: chosen.to_string(),
            label: format!("{chosen} (none in range)"),
            selected: true,
        });
    }
    Ok(choices)
}

fn latency_cards(
    store: &dyn Source,
    range: &Range,
    syscall: &str,
) -> anyhow::Result<Vec<HeatCard>> {
    let (sel, title) = if syscall.is_empty() {
        (String::new(), "Syscall latency, all syscalls".to_string())
    } else {
        (
            format!("syscall=\"{syscall}\""),
            format!("Syscall latency, {syscall}"),
        )
    };
    let mut cards = vec![HeatCard::latency(
        store,
        "syscall-latency".into(),
        title,
        "sonde_syscall_duration_seconds",
        &sel,
        range,
        NO_BPF,
    )?];
    let devices = format!(
        "sum by (device, op) (increase(sonde_block_io_duration_seconds_count[{}]))",
        range.promql_window()
    );
    let pairs = ranked(store, &devices, range.end_ms)?;
    for sample in pairs.iter().take(BLOCK_MAPS) {
        let device = sample.labels.get("device").unwrap_or("");
        let op = sample.labels.get("op").unwrap_or("");
        cards.push(HeatCard::latency(
            store,
            format!("block-{device}-{op}"),
            format!("Block I/O latency, {device} {op}"),
            "sonde_block_io_duration_seconds",
            &format!("device=\"{device}\", op=\"{op}\""),
            range,
            NO_BPF,
        )?);
    }
    if pairs.is_empty() {
        cards.push(HeatCard::latency(
            store,
            "block".into(),
            "Block I/O latency".into(),
            "sonde_block_io_duration_seconds",
            "",
            range,
            "No block I/O completed in this range.",
        )?);
    }
    cards.push(HeatCard::latency(
        store,
        "runqueue".into(),
        "Run-queue latency".into(),
        "sonde_runqueue_latency_seconds",
        "",
        range,
        NO_BPF,
    )?);
    cards.push(HeatCard::latency(
        store,
        "tcp-connect".into(),
        "TCP connect latency".into(),
        "sonde_tcp_connect_duration_seconds",
        "",
        range,
        "No TCP connect completed in this range.",
    )?);
    Ok(cards)
}

/// The strip of process events: one row per kind, counts per step.
fn events(store: &dyn Source, range: &Range) -> anyhow::Result<HeatCard> {
    let grid = range.grid();
    let step_s = grid.step_ms as f64 / 1000.0;
    let window = card::rate_window(&grid);
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    let mut promql = Vec::new();
    // Bottom-up, as heatmap rows go.
    for (legend, select) in EVENTS.iter().rev() {
        let expr = format!("sum(rate({select}[{window}])) * {step_s}");
        let mut row = vec![0.0; grid.len];
        for series in range_series(store, &expr, &grid)? {
            for (t, v) in series.points {
                if let Some(cell) = row.get_mut(((t - grid.start_ms) / grid.step_ms) as usize) {
                    // Rates of a counter that moved once read as a fraction
                    // of an event spread over the window; below a tenth is
                    // extrapolation noise, not an event.
                    *cell = if v >= 0.1 { v } else { 0.0 };
                }
            }
        }
        rows.push(legend.to_string());
        counts.push(row);
        promql.push(expr);
    }
    let map = Heatmap {
        rows,
        counts,
        lines: Vec::new(),
    };
    Ok(HeatCard::new(
        "events".into(),
        "Process events".into(),
        map,
        promql,
        range,
        NO_BPF,
    ))
}

/// What the errors tables sum by: by syscall and errno, and also by process.
const BY_SYSCALL: &str = "syscall, errno";
const BY_PROCESS: &str = "comm, unit, container, syscall, errno";

fn errors_promql(by: &str, range: &Range) -> String {
    format!(
        "sum by ({by}) (increase(sonde_syscall_errors_total[{}]))",
        range.promql_window()
    )
}

/// The syscall errors over the whole range, most frequent first: by syscall
/// and errno, and by process. One query by process serves both: the sum of
/// its rows per (syscall, errno) is the by-syscall query's answer, as both
/// sum the same increases.
fn errors(store: &dyn Source, range: &Range) -> anyhow::Result<[ErrorTable; 2]> {
    let by_process = ranked(store, &errors_promql(BY_PROCESS, range), range.end_ms)?;
    let mut sums: HashMap<(&str, &str), f64> = HashMap::new();
    for sample in &by_process {
        let syscall = sample.labels.get("syscall").unwrap_or("?");
        let errno = sample.labels.get("errno").unwrap_or("?");
        *sums.entry((syscall, errno)).or_default() += sample.value;
    }
    let mut by_syscall: Vec<_> = sums.into_iter().collect();
    by_syscall.sort_by(|a, b| b.1.total_cmp(&a.1));
    let count = |value: f64| super::units::digits(value.round());
    let table = |id, title, by, rows| ErrorTable {
        id,
        title,
        by,
        rows,
        href: card::graph_href(&errors_promql(by, range), range),
    };
    let query = range.query();
    Ok([
        table(
            "errors",
            "Syscall errors over the range",
            BY_SYSCALL,
            by_syscall
                .into_iter()
                .take(ERROR_ROWS)
                .map(|((syscall, errno), value)| ErrorRow {
                    process: None,
                    syscall: syscall.to_string(),
                    errno: errno.to_string(),
                    count: count(value),
                })
                .collect(),
        ),
        table(
            "errors-by-process",
            "Syscall errors by process",
            BY_PROCESS,
            by_process
                .iter()
                .take(ERROR_ROWS)
                .map(|sample| ErrorRow {
                    process: Some(super::who::process_link(&sample.labels, &query)),
                    syscall: sample.labels.get("syscall").unwrap_or("?").to_string(),
                    errno: sample.labels.get("errno").unwrap_or("?").to_string(),
                    count: count(sample.value),
                })
                .collect(),
        ),
    ])
}
