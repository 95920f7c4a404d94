//! The Status view at the top of the dashboard: what sonde itself failed to
//! count or collect in the last few minutes, read from its self-metrics in
//! the store, each line with the PromQL that finds it. Nothing is shown when
//! all is well; a loss leaves the view once it is [`WINDOW`] old, so a map
//! that overflowed once and drained on the next round heals here too.

use crate::model::Labels;
use crate::query::{self, Limits, QueryValue, Source};

/// How far back the view looks (as the queries' range says).
pub const WINDOW: &str = "5m";

/// One check: a query whose every result is a problem, and how to say it.
struct Check {
    promql: &'static str,
    say: fn(&Labels, f64) -> String,
}

const CHECKS: &[Check] = &[
    Check {
        promql: "sum by (map) (increase(sonde_bpf_map_full_total[5m])) > 0",
        say: |labels, lost| {
            format!(
                "BPF map {} was full: about {lost:.0} events were not counted in the last {WINDOW} (the map is drained every round, so new events count again)",
                labels.get("map").unwrap_or("?")
            )
        },
    },
    Check {
        promql: "sum by (program) (increase(sonde_bpf_events_lost_total[5m])) > 0",
        say: |labels, lost| {
            format!(
                "BPF program {} missed about {lost:.0} events in the last {WINDOW} (the kernel skipped it while another tracepoint program ran)",
                labels.get("program").unwrap_or("?")
            )
        },
    },
    Check {
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
