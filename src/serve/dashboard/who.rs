//! The Who view at `/who`: which containers, systemd units and processes
//! used the most CPU, memory, disk and network over the range, one table
//! each, sortable by any of the four; and a page for each of them
//! (`/who/cgroup?id=…` for a container or unit, `/who/process?comm=…&unit=…
//! &container=…` for a process) with its charts over the range.
//!
//! Everything is PromQL over the store: containers and units from the
//! cAdvisor-named `container_*` families (`id` is the cgroup), processes
//! from sonde's per-process ones. A table cell covers the whole range: CPU
//! as the average share of one CPU, memory as the highest value seen, disk
//! and network as every byte counted (a short-lived process's first and only
//! sample included, see [`counter_growth`]), so a burst early in the range
//! still ranks.
//! Each chart links its PromQL to the Graph view.

use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::card::{Card, Panel};
use super::charts::Unit;
use super::frame::{self, Frame, View};
use super::range::{Range, TimeParams};
use crate::model::Labels;
use crate::query::{self, Limits, QueryValue, Source};

/// The title of a detail page's own row.
const SUMMARY: &str = "Over the range";
/// Rows per table.
const TOP: usize = 10;

/// The four columns, in order; a table is sorted by one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Cpu,
    Memory,
    Disk,
    Network,
}

impl Resource {
    const ALL: [Resource; 4] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Disk,
        Resource::Network,
    ];

    fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
            Resource::Network => "network",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU",
            Resource::Memory => "Memory",
            Resource::Disk => "Disk",
            Resource::Network => "Network",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Resource::Cpu => Unit::Percent,
            _ => Unit::Bytes,
        }
    }
}

/// What a table's rows are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container,
    Unit,
    Process,
}

/// How a column reads a metric over the range.
enum Measure {
    /// What a counter grew by, summed over the key's series.
    Counter(&'static str),
    /// A gauge's highest value over the range, the highest of the key's series.
    Gauge(&'static str),
}

/// The four columns of a table: the labels that make a row, and per
/// resource the metrics whose measures add up to its cell.
struct ColumnQueries {
    key: &'static [&'static str],
    columns: [&'static [Measure]; 4],
}

const CGROUPS: ColumnQueries = ColumnQueries {
    key: &["id", "name"],
    columns: [
        &[Measure::Counter("container_cpu_usage_seconds_total")],
        &[Measure::Gauge("container_memory_working_set_bytes")],
        &[
            Measure::Counter("container_fs_reads_bytes_total"),
            Measure::Counter("container_fs_writes_bytes_total"),
        ],
        &[
            Measure::Counter("container_network_receive_bytes_total"),
            Measure::Counter("container_network_transmit_bytes_total"),
        ],
    ],
};

const PROCESSES: ColumnQueries = ColumnQueries {
    key: &["comm", "unit", "container"],
    columns: [
        &[Measure::Counter("sonde_process_cpu_seconds_total")],
        &[Measure::Gauge("sonde_process_resident_memory_bytes")],
        &[Measure::Counter("sonde_block_io_bytes_total")],
        &[Measure::Counter("sonde_net_bytes_total")],
    ],
};

/// One container, unit or process with its four values (CPU in percent of
/// one CPU on average, the others in bytes).
struct Entry {
    labels: Labels,
    values: [f64; 4],
}

/// Evaluates the columns over `range`, restricted by the PromQL matchers
/// `sel`: one entry per key.
fn entries(
    store: &dyn Source,
    columns: &ColumnQueries,
    sel: &str,
    range: &Range,
) -> Result<Vec<Entry>, query::QueryError> {
    let mut entries: Vec<Entry> = Vec::new();
    for (column, measures) in columns.columns.iter().enumerate() {
        for measure in *measures {
            let values = match measure {
                Measure::Counter(metric) => counter_growth(store, metric, sel, range)?,
                Measure::Gauge(metric) => {
                    let window = range.promql_window();
                    let promql = format!("max_over_time({metric}{{{sel}}}[{window}])");
                    let QueryValue::Vector(samples) =
                        query::instant_query(store, &Limits::default(), &promql, range.end_ms)?
                    else {
                        continue;
                    };
                    samples.into_iter().map(|s| (s.labels, s.value)).collect()
                }
            };
            for (labels, value) in values {
                let key = Labels::new(
                    columns
                        .key
                        .iter()
                        .filter_map(|name| Some((*name, labels.get(name)?))),
                );
                let i = match entries.iter().position(|e| e.labels == key) {
                    Some(i) => i,
                    None => {
                        entries.push(Entry {
                            labels: key,
                            values: [0.0; 4],
                        });
                        entries.len() - 1
                    }
                };
                let cell = &mut entries[i].values[column];
                match measure {
                    Measure::Counter(_) => *cell += value,
                    Measure::Gauge(_) => *cell = cell.max(value),
                }
            }
        }
    }
    // CPU seconds over the range to the average share of one CPU.
    let seconds = range.duration_ms() as f64 / 1000.0;
    for entry in &mut entries {
        entry.values[0] *= 100.0 / seconds;
    }
    Ok(entries)
}

/// What each series of a counter grew by over the range: from its value
/// when the range began (its last sample before) through every sample in
/// it, a drop being a restart from 0. A series born inside the range grew
/// from 0: its first value counts whole, where `increase()` would leave it
/// out, and with it everything a process that lived for one round did
/// (sonde's counters and a cgroup's start from 0 when their subject appears).
pub(super) fn counter_growth(
    store: &dyn Source,
    metric: &str,
    sel: &str,
    range: &Range,
) -> Result<Vec<(Labels, f64)>, query::QueryError> {
    let limits = Limits::default();
    let now_ms = range.end_ms;
    let window = range.promql_window();
    let samples = format!("{metric}{{{sel}}}[{window}]");
    let QueryValue::Matrix(series) = query::instant_query(store, &limits, &samples, now_ms)? else {
        return Ok(Vec::new());
    };
    let before = format!("{metric}{{{sel}}} offset {window}");
    let at_start: Vec<(Labels, f64)> = match query::instant_query(store, &limits, &before, now_ms)?
    {
        QueryValue::Vector(samples) => samples.into_iter().map(|s| (s.labels, s.value)).collect(),
        _ => Vec::new(),
    };
    Ok(series
        .into_iter()
        .map(|series| {
            let start = at_start
                .iter()
                .find(|(labels, _)| *labels == series.labels)
                .map_or(0.0, |(_, value)| *value);
            let values = std::iter::once(start).chain(series.points.iter().map(|&(_, v)| v));
            let grown = values
                .clone()
                .zip(values.skip(1))
                .map(|(previous, now)| if now >= previous { now - previous } else { now })
                .sum();
            (series.labels, grown)
        })
        .collect())
}

/// Whether cgroup `id` is a container's (or a Kubernetes pod's), a unit's,
/// or neither (the root).
fn cgroup_kind(id: &str) -> Option<Kind> {
    let last = id.rsplit('/').next().unwrap_or("");
    if id == "/" || id.is_empty() {
        None
    } else if crate::collect::cgroup::Placement::of_path(id)
        .container
        .is_some()
    {
        // Only the container's own cgroup is reported, never one inside it.
        Some(Kind::Container)
    } else {
        crate::collect::cgroup::is_systemd_unit(last).then_some(Kind::Unit)
    }
}

/// A value of a PromQL string literal.
pub(super) fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

struct Cell {
    text: String,
}

struct Row {
    name: String,
    /// Where a process lives (unit or container), shown beside its name.
    place: String,
    href: String,
    cells: Vec<Cell>,
}

struct Column {
    heading: &'static str,
    href: String,
    current: bool,
}

struct Table {
    title: &'static str,
    columns: Vec<Column>,
    rows: Vec<Row>,
    empty: &'static str,
}

/// The query string: the frame's time parameters and `sort`, plus the
/// page's own (`allowed`).
struct Params {
    time: TimeParams,
    sort: Resource,
}

impl Params {
    fn parse(pairs: &[(String, String)], allowed: &[&str]) -> Result<Params, String> {
        let mut extra = vec!["sort"];
        extra.extend_from_slice(allowed);
        let time = TimeParams::parse(pairs, &extra, crate::collect::now_ms())?;
        let mut sort = Resource::Cpu;
        if let Some(value) = value_of(pairs, "sort") {
            sort = Resource::ALL
                .into_iter()
                .find(|r| r.name() == value)
                .ok_or_else(|| {
                    format!("bad sort {value:?}: choose one of cpu, memory, disk, network")
                })?;
        }
        Ok(Params { time, sort })
    }

    fn range(&self) -> &Range {
        &self.time.range
    }
}

#[derive(Template)]
#[template(path = "who.html")]
struct WhoPage {
    frame: Frame,
    range: String,
    tables: Vec<Table>,
    elapsed_ms: u128,
}

/// `GET /who`.
pub async fn page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let params = match Params::parse(&pairs, &[]) {
        Ok(params) => params,
        Err(message) => return frame::bad_request(message),
    };
    frame::draw("the Who view", move || who(&state, &params)).await
}

fn who(state: &crate::serve::Shared, params: &Params) -> anyhow::Result<String> {
    let started = Instant::now();
    let range = &params.range().query();
    let store = state.store_source();
    let cgroups = entries(store, &CGROUPS, "", params.range())?;
    let processes = entries(store, &PROCESSES, "", params.range())?;
    let href = |sort: Resource| format!("/who?{range}&sort={}", sort.name());
    let tables = vec![
        table(
            "Containers",
            Kind::Container,
            &cgroups,
            params,
            range,
            &href,
        ),
        table("Units", Kind::Unit, &cgroups, params, range, &href),
        table("Processes", Kind::Process, &processes, params, range, &href),
    ];
    let keep = vec![("sort".to_string(), params.sort.name().to_string())];
    let page = WhoPage {
        frame: Frame::over(View::Who, state, "/who", &params.time, keep),
        range: params.range().describe(),
        tables,
        elapsed_ms: started.elapsed().as_millis(),
    };
    Ok(page.render()?)
}

/// The top entries of `kind`, sorted by the chosen resource.
fn table(
    title: &'static str,
    kind: Kind,
    entries: &[Entry],
    params: &Params,
    range: &str,
    sort_href: &dyn Fn(Resource) -> String,
) -> Table {
    let mut chosen: Vec<&Entry> = entries
        .iter()
        .filter(|e| match kind {
            Kind::Process => true,
            _ => cgroup_kind(e.labels.get("id").unwrap_or("")) == Some(kind),
        })
        .collect();
    let column = Resource::ALL
        .iter()
        .position(|r| *r == params.sort)
        .unwrap_or(0);
    chosen.sort_by(|a, b| b.values[column].total_cmp(&a.values[column]));
    let rows = chosen
        .into_iter()
        .take(TOP)
        .map(|entry| row(kind, entry, range))
        .collect();
    Table {
        title,
        columns: Resource::ALL
            .into_iter()
            .map(|r| Column {
                heading: r.heading(),
                href: sort_href(r),
                current: r == params.sort,
            })
            .collect(),
        rows,
        empty: match kind {
            Kind::Container => "No container ran in this range.",
            Kind::Unit => "No systemd unit was seen in this range.",
            Kind::Process => "No per-process data in this range.",
        },
    }
}

fn row(kind: Kind, entry: &Entry, range: &str) -> Row {
    let labels = &entry.labels;
    let cells = Resource::ALL
        .into_iter()
        .zip(entry.values)
        .map(|(resource, value)| Cell {
            text: resource.unit().format(value),
        })
        .collect();
    match kind {
        Kind::Process => {
            let (name, place, href) = process_link(labels, range);
            Row {
                name,
                place,
                href,
                cells,
            }
        }
        _ => {
            let id = labels.get("id").unwrap_or("");
            Row {
                name: cgroup_name(id, labels.get("name")),
                place: String::new(),
                href: format!("/who/cgroup?id={}&{range}", encode(id)),
                cells,
            }
        }
    }
}

/// A process's name, where it runs (unit or container) and its page's
/// link with the query string `range`, from its `comm`, `unit` and
/// `container` labels.
pub(super) fn process_link(labels: &Labels, range: &str) -> (String, String, String) {
    let get = |name| labels.get(name).unwrap_or("");
    let place = [get("unit"), get("container")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let href = format!(
        "/who/process?comm={}&unit={}&container={}&{range}",
        encode(get("comm")),
        encode(get("unit")),
        encode(get("container"))
    );
    (get("comm").to_string(), place, href)
}

/// A cgroup as people name it: the runtime's name, else the unit, else
/// the container's short id.
fn cgroup_name(id: &str, name: Option<&str>) -> String {
    if let Some(name) = name {
        return name.to_string();
    }
    let placement = crate::collect::cgroup::Placement::of_path(id);
    placement
        .container
        .or(placement.unit)
        .map_or_else(|| id.to_string(), |n| n.to_string())
}

const NO_DATA: &str = "No data.";

const CGROUP_PANELS: &[Panel] = &[
    Panel {
        title: "CPU (% of one CPU)",
        unit: Unit::Percent,
        lines: &[
            (
                "user",
                "100 * sum(rate(container_cpu_user_seconds_total{$sel}[$w]))",
            ),
            (
                "system",
                "100 * sum(rate(container_cpu_system_seconds_total{$sel}[$w]))",
            ),
        ],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Memory",
        unit: Unit::Bytes,
        lines: &[
            (
                "working set",
                "sum(container_memory_working_set_bytes{$sel})",
            ),
            ("rss", "sum(container_memory_rss{$sel})"),
            ("cache", "sum(container_memory_cache{$sel})"),
            ("limit", "sum(container_spec_memory_limit_bytes{$sel}) > 0"),
        ],
        dashed: Some("limit"),
        empty: NO_DATA,
    },
    Panel {
        title: "Disk",
        unit: Unit::BytesPerSecond,
        lines: &[
            (
                "read {device}",
                "sum by (device) (rate(container_fs_reads_bytes_total{$sel}[$w]))",
            ),
            (
                "written {device}",
                "sum by (device) (rate(container_fs_writes_bytes_total{$sel}[$w]))",
            ),
        ],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Network",
        unit: Unit::BytesPerSecond,
        lines: &[
            (
                "received {interface}",
                "sum by (interface) (rate(container_network_receive_bytes_total{$sel}[$w]))",
            ),
            (
                "sent {interface}",
                "sum by (interface) (rate(container_network_transmit_bytes_total{$sel}[$w]))",
            ),
        ],
        dashed: None,
        empty: NO_DATA,
    },
];

const PROCESS_PANELS: &[Panel] = &[
    Panel {
        title: "CPU (% of one CPU)",
        unit: Unit::Percent,
        lines: &[(
            "{mode}",
            "100 * sum by (mode) (rate(sonde_process_cpu_seconds_total{$sel}[$w]))",
        )],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Resident memory",
        unit: Unit::Bytes,
        lines: &[("resident", "sum(sonde_process_resident_memory_bytes{$sel})")],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Disk",
        unit: Unit::BytesPerSecond,
        lines: &[(
            "{op} {device}",
            "sum by (op, device) (rate(sonde_block_io_bytes_total{$sel}[$w]))",
        )],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Network",
        unit: Unit::BytesPerSecond,
        lines: &[(
            "{direction} {proto}",
            "sum by (direction, proto) (rate(sonde_net_bytes_total{$sel}[$w]))",
        )],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Syscalls",
        unit: Unit::PerSecond("syscalls"),
        lines: &[(
            "{syscall}",
            "topk(8, sum by (syscall) (rate(sonde_syscalls_total{$sel}[$w])))",
        )],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "Context switches",
        unit: Unit::PerSecond("switches"),
        lines: &[(
            "{kind}",
            "sum by (kind) (rate(sonde_context_switches_total{$sel}[$w]))",
        )],
        dashed: None,
        empty: NO_DATA,
    },
    Panel {
        title: "TCP",
        unit: Unit::PerSecond("events"),
        lines: &[
            (
                "connects {result}",
                "sum by (result) (rate(sonde_tcp_connects_total{$sel}[$w]))",
            ),
            ("accepts", "sum(rate(sonde_tcp_accepts_total{$sel}[$w]))"),
            (
                "retransmits",
                "sum(rate(sonde_tcp_retransmits_total{$sel}[$w]))",
            ),
            ("resets", "sum(rate(sonde_tcp_resets_total{$sel}[$w]))"),
        ],
        dashed: None,
        empty: "No TCP connection of this process in the range.",
    },
    Panel {
        title: "Starts and ends",
        unit: Unit::PerSecond("processes"),
        lines: &[
            ("execs", "sum(rate(sonde_process_execs_total{$sel}[$w]))"),
            (
                "exits {reason}",
                "sum by (reason) (rate(sonde_process_exits_total{$sel}[$w]))",
            ),
            ("OOM kills", "sum(rate(sonde_oom_kills_total{$sel}[$w]))"),
        ],
        dashed: None,
        empty: "No process of this name started or ended in the range.",
    },
];

#[derive(Template)]
#[template(path = "who_detail.html")]
struct DetailPage {
    frame: Frame,
    kind: &'static str,
    name: String,
    subtitle: String,
    range: String,
    /// The Who view's link with this range.
    back: String,
    panels: Vec<Card>,
    summary: Table,
    processes: Option<Table>,
    elapsed_ms: u128,
}

/// `GET /who/cgroup?id=…`: a container's or unit's page.
pub async fn cgroup_page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let params = match Params::parse(&pairs, &["id"]) {
        Ok(params) => params,
        Err(message) => return frame::bad_request(message),
    };
    let Some(id) = value_of(&pairs, "id").filter(|id| id.starts_with('/')) else {
        return frame::bad_request(
            "id: expected a cgroup path such as /system.slice/nginx.service",
        );
    };
    frame::draw("the page", move || {
        let placement = crate::collect::cgroup::Placement::of_path(&id);
        let sel = format!("id={}", quoted(&id));
        let store = state.store_source();
        let range = &params.range().query();
        let own = entries(store, &CGROUPS, &sel, params.range())?;
        let name_label = own.iter().find_map(|e| e.labels.get("name"));
        let name = cgroup_name(&id, name_label);
        let kind = if placement.container.is_some() {
            Kind::Container
        } else {
            Kind::Unit
        };
        let here = format!("/who/cgroup?id={}", encode(&id));
        let summary = table(SUMMARY, kind, &own, &params, range, &|_| {
            format!("{here}&{range}")
        });
        // Its processes carry the unit or container label the eBPF
        // metrics use: the unit's name, the container's name.
        let processes = match (&placement.unit, &placement.container) {
            (_, Some(_)) => Some(format!("container={}", quoted(&name))),
            (Some(unit), None) => Some(format!("unit={}", quoted(unit))),
            _ => None,
        };
        let processes = match processes {
            Some(sel) => {
                let found = entries(store, &PROCESSES, &sel, params.range())?;
                let href = |sort: Resource| {
                    format!(
                        "/who/cgroup?id={}&{range}&sort={}",
                        encode(&id),
                        sort.name()
                    )
                };
                Some(table(
                    "Processes",
                    Kind::Process,
                    &found,
                    &params,
                    range,
                    &href,
                ))
            }
            None => None,
        };
        let subject = Subject {
            kind: if kind == Kind::Container {
                "Container"
            } else {
                "Unit"
            },
            name,
            subtitle: id.clone(),
            sel,
            panels: CGROUP_PANELS,
            summary,
            processes,
            here,
            keep: vec![("id".to_string(), id.clone())],
        };
        detail(&state, &params, subject)
    })
    .await
}

/// `GET /who/process?comm=…&unit=…&container=…`: a process's page.
pub async fn process_page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let params = match Params::parse(&pairs, &["comm", "unit", "container"]) {
        Ok(params) => params,
        Err(message) => return frame::bad_request(message),
    };
    let Some(comm) = value_of(&pairs, "comm").filter(|c| !c.is_empty()) else {
        return frame::bad_request("comm: expected a process name");
    };
    let unit = value_of(&pairs, "unit").unwrap_or_default();
    let container = value_of(&pairs, "container").unwrap_or_default();
    frame::draw("the page", move || {
        // An empty value matches series without the label, as PromQL does.
        let sel = format!(
            "comm={}, unit={}, container={}",
            quoted(&comm),
            quoted(&unit),
            quoted(&container)
        );
        let subtitle = [unit.as_str(), container.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let here = format!(
            "/who/process?comm={}&unit={}&container={}",
            encode(&comm),
            encode(&unit),
            encode(&container)
        );
        let own = entries(state.store_source(), &PROCESSES, &sel, params.range())?;
        let range = &params.range().query();
        let summary = table(SUMMARY, Kind::Process, &own, &params, range, &|_| {
            format!("{here}&{range}")
        });
        let keep = [("comm", &comm), ("unit", &unit), ("container", &container)]
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        let subject = Subject {
            kind: "Process",
            name: comm,
            subtitle,
            sel,
            panels: PROCESS_PANELS,
            summary,
            processes: None,
            here,
            keep,
        };
        detail(&state, &params, subject)
    })
    .await
}

fn value_of(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// What a detail page is about.
struct Subject {
    kind: &'static str,
    name: String,
    subtitle: String,
    /// PromQL matchers selecting its series.
    sel: String,
    panels: &'static [Panel],
    /// Its own row: what it used over the range.
    summary: Table,
    processes: Option<Table>,
    /// The page's own URL without the range.
    here: String,
    /// The page's own parameters, for the range picker.
    keep: Vec<(String, String)>,
}

fn detail(
    state: &crate::serve::Shared,
    params: &Params,
    subject: Subject,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let range = params.range();
    let panels = subject
        .panels
        .iter()
        .map(|panel| panel.draw(state.store_source(), &subject.sel, range))
        .collect::<anyhow::Result<_>>()?;
    let path = subject.here.split('?').next().unwrap_or("/who");
    let page = DetailPage {
        frame: Frame::over(View::Who, state, path, &params.time, subject.keep),
        kind: subject.kind,
        name: subject.name,
        subtitle: subject.subtitle,
        range: range.describe(),
        back: format!("/who?{}", range.query()),
        panels,
        summary: subject.summary,
        processes: subject.processes,
        elapsed_ms: started.elapsed().as_millis(),
    };
    Ok(page.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_are_told_apart_by_their_path() {
        let id = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
        assert!(cgroup_kind("/").is_none());
        assert!(cgroup_kind(&format!("/libpod_parent/libpod-{id}")) == Some(Kind::Container));
        assert!(cgroup_kind("/system.slice/nginx.service") == Some(Kind::Unit));
        assert!(cgroup_kind("/system.slice") == Some(Kind::Unit));
        assert!(cgroup_kind("/mygroup").is_none());
        assert_eq!(
            cgroup_name("/system.slice/nginx.service", None),
            "nginx.service"
        );
        assert_eq!(cgroup_name(&format!("/docker/{id}"), Some("web")), "web");
        assert_eq!(cgroup_name(&format!("/docker/{id}"), None), &id[..12]);
    }

    #[test]
    fn label_values_are_quoted_for_promql() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
