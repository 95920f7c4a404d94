//! What the Overview adds above its charts, to go from "the box is slow" to
//! a name in one click: the top offenders at the end of the range (process
//! by CPU, disk, network and syscalls, each linking to its Who page), the
//! alerts firing now, and a health line (collectors, store, remote write).
//! All of it is PromQL over the store but the alerts, read from the rules.

use super::charts::Unit;
use super::range::Range;
use super::units;
use crate::alert::rule::AlertState;
use crate::query::{self, Limits, QueryValue, Source};

/// Rows per offender table.
const TOP: usize = 5;
/// "Right now": the rate over the last two minutes of the range, long
/// enough for a few samples at the default interval.
const NOW_WINDOW: &str = "2m";

/// One table of offenders: what it ranks by, and its rows.
pub struct Offenders {
    pub title: &'static str,
    pub rows: Vec<Offender>,
    pub promql: String,
    pub graph_href: String,
}

pub struct Offender {
    pub name: String,
    /// The unit or container it runs in.
    pub place: String,
    pub href: String,
    pub value: String,
}

/// What an offender table ranks by.
struct Ranking {
    title: &'static str,
    metric: &'static str,
    /// Rates multiplied by this (CPU seconds per second to percent).
    scale: f64,
    unit: Unit,
}

const RANKINGS: [Ranking; 4] = [
    Ranking {
        title: "CPU",
        metric: "sonde_process_cpu_seconds_total",
        scale: 100.0,
        unit: Unit::Percent,
    },
    Ranking {
        title: "Disk",
        metric: "sonde_block_io_bytes_total",
        scale: 1.0,
        unit: Unit::BytesPerSecond,
    },
    Ranking {
        title: "Network",
        metric: "sonde_net_bytes_total",
        scale: 1.0,
        unit: Unit::BytesPerSecond,
    },
    Ranking {
        title: "Syscalls",
        metric: "sonde_syscalls_total",
        scale: 1.0,
        unit: Unit::PerSecond("syscalls"),
    },
];

/// The busiest processes at the end of `range`, one table per resource.
pub fn offenders(store: &dyn Source, range: &Range) -> anyhow::Result<Vec<Offenders>> {
    RANKINGS
        .iter()
        .map(|ranking| {
            let promql = format!(
                "topk({TOP}, sum by (comm, unit, container) (rate({}[{NOW_WINDOW}])))",
                ranking.metric
            );
            let rows = super::card::ranked(store, &promql, range.end_ms)?
                .iter()
                .map(|sample| {
                    let (name, place, href) =
                        super::who::process_link(&sample.labels, &range.query());
                    Offender {
                        name,
                        place,
                        href,
                        value: ranking.unit.format(sample.value * ranking.scale),
                    }
                })
                .collect();
            Ok(Offenders {
                title: ranking.title,
                rows,
                graph_href: super::card::graph_href(&promql, range),
                promql,
            })
        })
        .collect()
}

/// An alert firing now.
pub struct Firing {
    pub rule: String,
    pub labels: String,
    pub summary: String,
    pub since: String,
}

/// Every alert firing now, oldest first.
pub fn firing(shared: &crate::serve::Shared) -> Vec<Firing> {
    let Some(alerting) = &shared.alerting else {
        return Vec::new();
    };
    let now = crate::collect::now_ms();
    let loaded = alerting.rules.loaded();
    let mut firing: Vec<(i64, Firing)> = loaded
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .flat_map(|rule| rule.alerts.values().map(move |alert| (rule, alert)))
        .filter(|(_, alert)| alert.state == AlertState::Firing)
        .map(|(rule, alert)| {
            let labels = alert
                .labels
                .iter()
                .filter(|(name, _)| *name != "alertname")
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(" ");
            let summary = ["summary", "description"]
                .into_iter()
                .find_map(|name| alert.annotations.get(name))
                .unwrap_or("")
                .to_string();
            let seconds = ((now - alert.active_at_ms).max(0) / 1000) as u64;
            let since = humantime::format_duration(std::time::Duration::from_secs(seconds));
            (
                alert.active_at_ms,
                Firing {
                    rule: rule.spec.name().to_string(),
                    labels,
                    summary,
                    since: format!("for {since}"),
                },
            )
        })
        .collect();
    firing.sort_by_key(|(at, _)| *at);
    firing.into_iter().map(|(_, f)| f).collect()
}

/// One part of the health line.
pub struct Health {
    pub what: &'static str,
    pub ok: bool,
    pub text: String,
}

/// The value of an instant query summed over its series, `None` for none.
fn total(store: &dyn Source, promql: &str, at_ms: i64) -> anyhow::Result<Option<f64>> {
    let answer = query::instant_query(store, &Limits::default(), promql, at_ms)
        .map_err(|err| anyhow::anyhow!("{promql}: {err}"))?;
    Ok(match answer {
        QueryValue::Vector(samples) if !samples.is_empty() => {
            Some(samples.iter().map(|s| s.value).sum())
        }
        QueryValue::Scalar { value, .. } => Some(value),
        _ => None,
    })
}

/// A metric's series in the last collection round, as `/metrics` shows
/// them: sonde's store, remote-write and alerting figures are published
/// there, not stored.
pub fn latest(shared: &crate::serve::Shared, metric: &str) -> Vec<(crate::model::Labels, f64)> {
    let round = shared.latest.read().expect("lock poisoned").clone();
    round
        .families
        .iter()
        .filter(|family| family.name == metric)
        .flat_map(|family| family.series.iter().map(|s| (s.labels.clone(), s.value)))
        .collect()
}

/// Collectors (from the store, over the last rounds), the store and remote
/// write (from the store itself and the last round), each in a few words.
pub fn health(shared: &crate::serve::Shared, now_ms: i64) -> anyhow::Result<Vec<Health>> {
    let store = shared.store_source();
    let collectors = total(store, "count(sonde_collector_success)", now_ms)?.unwrap_or(0.0);
    let failing = total(store, "count(sonde_collector_success == 0)", now_ms)?.unwrap_or(0.0);
    let (size, series, refused) = {
        let store = shared.store.lock().expect("lock poisoned");
        let stats = store.stats();
        (
            store.size_on_disk(),
            store.active_series(),
            stats.series_refused + stats.write_errors,
        )
    };
    let mut health = vec![
        Health {
            what: "collectors",
            ok: failing == 0.0 && collectors > 0.0,
            text: if collectors == 0.0 {
                "none reported yet".to_string()
            } else if failing > 0.0 {
                format!("{failing} of {collectors} failing")
            } else {
                format!("{collectors} ok")
            },
        },
        Health {
            what: "store",
            ok: refused == 0,
            text: format!(
                "{} in {} series{}",
                Unit::Bytes.format(size as f64),
                series,
                if refused > 0 {
                    format!(", {refused} samples refused or failed since start")
                } else {
                    String::new()
                }
            ),
        },
    ];
    let pending = latest(shared, "sonde_remote_write_samples_pending");
    if !pending.is_empty() {
        let backlog: f64 = pending.iter().map(|(_, v)| v).sum();
        health.push(Health {
            what: "remote write",
            // More than a minute of a busy machine's samples waiting.
            ok: backlog < 100_000.0,
            text: format!("{} samples pending", units::digits(backlog)),
        });
    }
    Ok(health)
}
