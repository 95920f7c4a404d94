//! sonde about itself. [`problems`]: what sonde failed to count or collect
//! in the last few minutes, read from its self-metrics in the store, each
//! line with the PromQL that finds it, shown on the Overview only then; a
//! loss leaves it once it is [`WINDOW`] old, so a map that overflowed once
//! and drained on the next round heals there too.
//!
//! The Status view at `/status` ([`page`]): what `sonde doctor` would say
//! of the running sonde ([`Startup`], taken when its collectors loaded, plus
//! the kernel, BTF and capabilities now), each collector's state and
//! measured cost over the range (BPF ns per event, run time per round),
//! the store by tier with its retention, series counts and folded series,
//! the remote-write backlog per destination, and the config in effect
//! (without secrets).

use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::card::{Card, Panel};
use super::charts::Unit;
use super::frame::{self, Frame, View};
use super::range::Range;
use super::units::digits;
use crate::model::Labels;
use crate::query::{self, Limits, QueryValue, Source};

/// How far back the view looks (as the queries' range says).
pub const WINDOW: &str = "5m";

/// One check: a query whose every result is a problem, and how to say it.
struct ProblemCheck {
    promql: &'static str,
    say: fn(&Labels, f64) -> String,
}

const CHECKS: &[ProblemCheck] = &[
    ProblemCheck {
        promql: "sum by (map) (increase(sonde_bpf_map_full_total[5m])) > 0",
        say: |labels, lost| {
            format!(
                "BPF map {} was full: about {lost:.0} events were not counted in the last {WINDOW} (the map is drained every round, so new events count again)",
                labels.get("map").unwrap_or("?")
            )
        },
    },
    ProblemCheck {
        promql: "sum by (program) (increase(sonde_bpf_events_lost_total[5m])) > 0",
        say: |labels, lost| {
            format!(
                "BPF program {} missed about {lost:.0} events in the last {WINDOW} (the kernel skipped it while another tracepoint program ran)",
                labels.get("program").unwrap_or("?")
            )
        },
    },
    ProblemCheck {
        promql: "sonde_collector_success == 0",
        say: |labels, _| {
            format!(
                "collector {} failed its last round (the log says why)",
                labels.get("collector").unwrap_or("?")
            )
        },
    },
];

/// One line of the view.
pub struct Problem {
    pub text: String,
    pub promql: &'static str,
}

/// Every problem at `now_ms`, in the order of the checks.
pub fn problems(store: &dyn Source, now_ms: i64) -> anyhow::Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for check in CHECKS {
        let answer = query::instant_query(store, &Limits::default(), check.promql, now_ms)
            .map_err(|err| anyhow::anyhow!("{}: {err}", check.promql))?;
        if let QueryValue::Vector(samples) = answer {
            problems.extend(samples.iter().map(|sample| Problem {
                text: (check.say)(&sample.labels, sample.value),
                promql: check.promql,
            }));
        }
    }
    Ok(problems)
}

/// One line of the doctor's part: what was checked, whether it is fine,
/// and what was found.
pub struct DoctorLine {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// What `sonde run` learnt while starting that the store does not hold:
/// each BPF collector's state (attached with which kind, degraded, off and
/// why), how run-time statistics were turned on, and the config in effect.
pub struct Startup {
    pub collectors: Vec<DoctorLine>,
    pub config: Vec<(String, String)>,
}

impl Startup {
    pub fn new(config: &crate::config::Config, bpf: &crate::collect::bpf::LoadedSet) -> Startup {
        use crate::collect::bpf::State;
        let mut collectors: Vec<DoctorLine> = bpf
            .states
            .iter()
            .map(|(name, state)| DoctorLine {
                what: format!("collector {name}"),
                ok: !matches!(state, State::Failed(_)),
                detail: state.to_string(),
            })
            .collect();
        if let Some(stats) = &bpf.stats {
            collectors.push(DoctorLine {
                what: "bpf run-time stats".to_string(),
                ok: stats.is_ok(),
                detail: stats.clone().unwrap_or_else(|err| err),
            });
        }
        Startup {
            collectors,
            config: config_in_effect(config),
        }
    }
}

/// The settings that shape what sonde does, as `key = value`; credentials
/// (basic-auth hashes, remote-write and notifier secrets) are left out.
fn config_in_effect(config: &crate::config::Config) -> Vec<(String, String)> {
    let duration = days;
    let storage = &config.storage;
    let collect = &config.collect;
    let mut lines = vec![
        ("[server] listen", config.server.listen.to_string()),
        (
            "[server] tls",
            if config.server.tls_cert_file.is_some() {
                "on".to_string()
            } else {
                "off".to_string()
            },
        ),
        (
            "[server] basic_auth_users",
            config.server.basic_auth_users.len().to_string(),
        ),
        ("[storage] path", storage.path.display().to_string()),
        ("[storage] retention", duration(storage.retention)),
        (
            "[storage] rollup_minute_retention",
            duration(storage.rollup_minute_retention),
        ),
        (
            "[storage] rollup_hour_retention",
            duration(storage.rollup_hour_retention),
        ),
        (
            "[storage] retention_size",
            match storage.retention_size {
                0 => "none".to_string(),
                bytes => Unit::Bytes.format(bytes as f64),
            },
        ),
        ("[storage] max_series", storage.max_series.to_string()),
        ("[collect] interval", duration(collect.interval)),
        (
            "[collect] max_series_per_metric",
            collect.max_series_per_metric.to_string(),
        ),
        ("[collect] forget_after", duration(collect.forget_after)),
        (
            "[alerting] rule_files",
            config.alerting.rule_files.join(", "),
        ),
        ("[programs] dir", config.programs.dir.display().to_string()),
    ];
    for remote in &config.remote_write {
        // A URL may carry a password before the host: show scheme and host on.
        let url = match remote.url.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                format!("{scheme}://{host}")
            }
            None => remote.url.clone(),
        };
        lines.push(("[[remote_write]]", format!("{} → {url}", remote.name())));
    }
    lines
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

/// A retention as it is written in the config: whole days as `90d`.
fn days(span: std::time::Duration) -> String {
    let seconds = span.as_secs();
    if seconds >= 86_400 && seconds.is_multiple_of(86_400) {
        format!("{}d", seconds / 86_400)
    } else {
        humantime::format_duration(span).to_string()
    }
}

/// A row of a table of figures.
pub struct FigureRow {
    pub name: String,
    pub ok: bool,
    pub cells: Vec<String>,
}

/// A table of figures with its headings and the PromQL behind it.
pub struct Figures {
    pub title: &'static str,
    pub headings: Vec<&'static str>,
    pub rows: Vec<FigureRow>,
    pub empty: &'static str,
    pub promql: Vec<String>,
}

#[derive(Template)]
#[template(path = "status.html")]
struct Page {
    frame: Frame,
    range: String,
    doctor: Vec<DoctorLine>,
    problems: Vec<Problem>,
    tables: Vec<Figures>,
    config: Vec<(String, String)>,
    charts: Vec<Card>,
    elapsed_ms: u128,
}

/// Charts of sonde's own cost over the range.
const PANELS: &[Panel] = &[
    Panel {
        title: "BPF programs, CPU used",
        unit: Unit::Percent,
        lines: &[(
            "{program}",
            "topk(8, 100 * sum by (program) (rate(sonde_bpf_program_run_seconds_total[$w])))",
        )],
        dashed: None,
        empty: "No BPF run-time statistics: kernel.bpf_stats_enabled is off, or no BPF collector loaded.",
    },
    Panel {
        title: "Collector run time per round (ms)",
        unit: Unit::Number,
        lines: &[(
            "{collector}",
            "topk(8, 1000 * sonde_collector_duration_seconds)",
        )],
        dashed: None,
        empty: "No collector has reported yet.",
    },
];

/// `GET /status`.
pub async fn page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    frame::draw_over(&pairs, "the Status view", move |time| {
        let started = Instant::now();
        let range = time.range;
        let store = state.store_source();
        let mut doctor = crate::doctor::live_checks()
            .into_iter()
            .map(|(what, result)| DoctorLine {
                what: what.to_string(),
                ok: result.is_ok(),
                detail: result.unwrap_or_else(|err| format!("{err:#}")),
            })
            .collect::<Vec<_>>();
        let config = match &state.startup {
            Some(startup) => {
                doctor.extend(startup.collectors.iter().map(|line| DoctorLine {
                    what: line.what.clone(),
                    ok: line.ok,
                    detail: line.detail.clone(),
                }));
                startup.config.clone()
            }
            None => Vec::new(),
        };
        let usage = state.store.lock().expect("lock poisoned").tier_usage()?;
        let mut page = Page {
            frame: Frame::over(View::Status, &state, "/status", &time, Vec::new()),
            range: range.describe(),
            doctor,
            problems: problems(store, range.end_ms)?,
            tables: vec![
                collectors(store, &range)?,
                programs(store, &range)?,
                tiers(&usage, &range),
                series(&state, &range)?,
                remote_write(&state),
            ],
            config,
            charts: PANELS
                .iter()
                .map(|panel| panel.draw(store, "", &range))
                .collect::<anyhow::Result<_>>()?,
            elapsed_ms: 0,
        };
        page.elapsed_ms = started.elapsed().as_millis();
        Ok(page.render()?)
    })
    .await
}

/// An instant query at the end of the range, by the value of `label`.
fn by_label(
    store: &dyn Source,
    promql: &str,
    label: &str,
    range: &Range,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let answer = query::instant_query(store, &Limits::default(), promql, range.end_ms)
        .map_err(|err| anyhow::anyhow!("{promql}: {err}"))?;
    Ok(match answer {
        QueryValue::Vector(samples) => samples
            .into_iter()
            .map(|s| (s.labels.get(label).unwrap_or("").to_string(), s.value))
            .collect(),
        QueryValue::Scalar { value, .. } => [(String::new(), value)].into_iter().collect(),
        _ => Default::default(),
    })
}

fn ms(seconds: f64) -> String {
    format!("{} ms", digits(seconds * 1000.0))
}

fn collectors(store: &dyn Source, range: &Range) -> anyhow::Result<Figures> {
    let w = range.promql_window();
    let promql = vec![
        "sonde_collector_success".to_string(),
        "sonde_collector_duration_seconds".to_string(),
        format!("avg_over_time(sonde_collector_duration_seconds[{w}])"),
        format!("max_over_time(sonde_collector_duration_seconds[{w}])"),
        format!("count_over_time(sonde_collector_success[{w}]) - sum_over_time(sonde_collector_success[{w}])"),
        format!("increase(sonde_collector_cpu_seconds_total[{w}]) / count_over_time(sonde_collector_success[{w}])"),
    ];
    let column = |i: usize| by_label(store, &promql[i], "collector", range);
    let (success, last, avg, max, failed, cpu) = (
        column(0)?,
        column(1)?,
        column(2)?,
        column(3)?,
        column(4)?,
        column(5)?,
    );
    let rows = success
        .iter()
        .map(|(name, ok)| FigureRow {
            name: name.clone(),
            ok: *ok == 1.0,
            cells: vec![
                if *ok == 1.0 { "ok" } else { "failed" }.to_string(),
                last.get(name).map_or_else(String::new, |v| ms(*v)),
                avg.get(name).map_or_else(String::new, |v| ms(*v)),
                max.get(name).map_or_else(String::new, |v| ms(*v)),
                cpu.get(name).map_or_else(String::new, |v| ms(*v)),
                failed.get(name).map_or_else(String::new, |v| digits(*v)),
            ],
        })
        .collect();
    Ok(Figures {
        title: "Collectors",
        headings: vec![
            "last round",
            "run time last",
            "average",
            "slowest",
            "CPU a round",
            "failed rounds",
        ],
        rows,
        empty: "No collector has reported yet.",
        promql,
    })
}

fn programs(store: &dyn Source, range: &Range) -> anyhow::Result<Figures> {
    let w = range.promql_window();
    let promql = vec![
        format!("1e9 * increase(sonde_bpf_program_run_seconds_total[{w}]) / increase(sonde_bpf_program_runs_total[{w}])"),
        format!("rate(sonde_bpf_program_runs_total[{w}])"),
        format!("100 * rate(sonde_bpf_program_run_seconds_total[{w}])"),
        format!("increase(sonde_bpf_events_lost_total[{w}])"),
    ];
    let column = |i: usize| by_label(store, &promql[i], "program", range);
    let (ns, runs, cpu, lost) = (column(0)?, column(1)?, column(2)?, column(3)?);
    let mut rows: Vec<FigureRow> = runs
        .iter()
        .map(|(name, per_second)| {
            let lost = lost.get(name).copied().unwrap_or(0.0);
            FigureRow {
                name: name.clone(),
                ok: lost == 0.0,
                cells: vec![
                    ns.get(name)
                        .filter(|v| v.is_finite())
                        .map_or_else(|| "–".to_string(), |v| digits(*v)),
                    Unit::PerSecond("runs").format(*per_second),
                    cpu.get(name)
                        .map_or_else(String::new, |v| format!("{}%", digits(*v))),
                    digits(lost.round()),
                ],
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Figures {
        title: "BPF programs",
        headings: vec!["ns per event", "events", "CPU of one core", "events missed"],
        rows,
        empty: "No BPF program ran (no BPF collector loaded, or kernel.bpf_stats_enabled is off).",
        promql,
    })
}

fn tiers(usage: &[crate::store::TierUsage], range: &Range) -> Figures {
    let rows = usage
        .iter()
        .map(|tier| FigureRow {
            name: tier.name.to_string(),
            ok: true,
            cells: vec![
                Unit::Bytes.format(tier.bytes as f64),
                digits(tier.rows as f64),
                tier.oldest_ms.map_or_else(String::new, |ms| {
                    let age = (range.end_ms - ms).max(0) as u64 / 1000;
                    humantime::format_duration(std::time::Duration::from_secs(age))
                        .to_string()
                        .split(' ')
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
                days(tier.retention),
            ],
        })
        .collect();
    Figures {
        title: "Store by tier",
        headings: vec!["chunk bytes (est.)", "rows", "oldest", "kept for"],
        rows,
        empty: "The store is empty.",
        promql: Vec::new(),
    }
}

fn series(shared: &crate::serve::Shared, range: &Range) -> anyhow::Result<Figures> {
    let (active, refused) = {
        let store = shared.store.lock().expect("lock poisoned");
        (store.active_series(), store.stats().series_refused)
    };
    let promql = vec!["count({comm=\"other\"})".to_string()];
    let folded = by_label(shared.store_source(), &promql[0], "", range)?
        .values()
        .sum::<f64>();
    let omitted: f64 = super::overview::latest(shared, "sonde_containers_cgroups_omitted")
        .iter()
        .map(|(_, v)| v)
        .sum();
    let row = |name: &str, ok: bool, value: String| FigureRow {
        name: name.to_string(),
        ok,
        cells: vec![value],
    };
    Ok(Figures {
        title: "Series",
        headings: vec!["now"],
        rows: vec![
            row("active in the store", true, active.to_string()),
            row(
                "samples of new series refused since start (over [storage] max_series)",
                refused == 0,
                refused.to_string(),
            ),
            row(
                "series folded into comm=\"other\" (over [collect] max_series_per_metric)",
                true,
                digits(folded),
            ),
            row(
                "cgroups not reported (over [collect.containers] max_cgroups)",
                omitted == 0.0,
                digits(omitted),
            ),
        ],
        empty: "",
        promql,
    })
}

/// Each destination's figures from the last round (counters since start).
fn remote_write(shared: &crate::serve::Shared) -> Figures {
    let column = |metric: &str| -> std::collections::BTreeMap<String, f64> {
        super::overview::latest(shared, metric)
            .into_iter()
            .map(|(labels, v)| (labels.get("remote").unwrap_or("").to_string(), v))
            .collect()
    };
    let pending = column("sonde_remote_write_samples_pending");
    let sent = column("sonde_remote_write_samples_sent_total");
    let failed = column("sonde_remote_write_samples_failed_total");
    let retried = column("sonde_remote_write_samples_retried_total");
    let figure = |map: &std::collections::BTreeMap<String, f64>, name: &str| {
        digits(map.get(name).copied().unwrap_or(0.0))
    };
    let rows = pending
        .iter()
        .map(|(name, backlog)| FigureRow {
            name: name.clone(),
            ok: failed.get(name).copied().unwrap_or(0.0) == 0.0,
            cells: vec![
                digits(*backlog),
                figure(&sent, name),
                figure(&failed, name),
                figure(&retried, name),
            ],
        })
        .collect();
    Figures {
        title: "Remote write",
        headings: vec!["pending", "sent", "dropped", "retried"],
        rows,
        empty: "No [[remote_write]] destination configured.",
        promql: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_in_effect_leaves_credentials_out() {
        let config = crate::config::Config::parse(
            r#"
[server.basic_auth_users]
admin = "$2y$10$abcdefghijklmnopqrstuuJ1lO8Z7a3Qd3l1b0wS3n7cQ0r5eWm6a"
[storage]
retention = "30d"
[[remote_write]]
url = "https://user:secret@mimir.example:9009/api/v1/push"
name = "central"
"#,
        )
        .unwrap();
        let lines = config_in_effect(&config);
        let text = format!("{lines:?}");
        assert!(!text.contains("secret") && !text.contains("$2y$"), "{text}");
        let value = |key: &str| {
            lines
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(
            value("[[remote_write]]"),
            "central → https://mimir.example:9009/api/v1/push"
        );
        assert_eq!(value("[storage] retention"), "30d");
        assert_eq!(value("[server] basic_auth_users"), "1");
    }
}
