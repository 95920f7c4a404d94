//! The Programs view at `/programs`: the custom eBPF programs of
//! `[programs]` (ebpf_exporter's format, [`crate::collect::programs`]).
//! Every config the last load or reload saw, on or off and why; its
//! programs, attached or why not; its decoder errors over the range; and a
//! chart per metric: a counter as its rate by its labels (the busiest
//! [`card::MAX_LINES`] label sets), a histogram as a heatmap of all its
//! label sets, drawn as the Kernel view draws latencies but with plain
//! bucket bounds (a custom histogram's unit is its own).
//!
//! What the configs are comes from the collector
//! ([`crate::collect::programs::status`]); every figure comes from the
//! store, so the view draws any range the store holds.

use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

use super::card::{self, ranked, Card};
use super::charts::Unit;
use super::frame::{self, Frame, View};
use super::kernel::HeatCard;
use super::range::{Range, TimeParams};
use super::units::digits;
use crate::collect::programs::status::{self, Metric};
use crate::query::Source;

const DECODER_ERRORS: &str = "ebpf_exporter_decoder_errors_total";

pub struct ProgramRow {
    pub name: String,
    pub attached: bool,
    /// Why it is not attached; empty when it is.
    pub why: String,
}

pub struct ConfigView {
    pub name: String,
    /// Why the config is off; None when it runs.
    pub off: Option<String>,
    pub programs: Vec<ProgramRow>,
    /// Decoder errors over the range: (decoder, count).
    pub errors: Vec<(String, String)>,
    pub counters: Vec<Card>,
    pub histograms: Vec<HeatCard>,
}

#[derive(Template)]
#[template(path = "programs.html")]
struct Page {
    frame: Frame,
    range: String,
    configs: Vec<ConfigView>,
    elapsed_ms: u128,
}

/// `GET /programs?range=…` (or from/to).
pub async fn page(
    State(state): State<crate::serve::AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    frame::draw_over(&pairs, "the Programs view", move |time| {
        programs(&state, &time)
    })
    .await
}

fn programs(state: &crate::serve::Shared, time: &TimeParams) -> anyhow::Result<String> {
    let started = Instant::now();
    let range = &time.range;
    let store = state.store_source();
    let errors = ranked(
        store,
        &format!(
            "sum by (config, decoder) (increase({DECODER_ERRORS}[{}]))",
            range.promql_window()
        ),
        range.end_ms,
    )?;
    let configs = status::snapshot()
        .into_iter()
        .map(|config| {
            let (counters, histograms) = charts(store, &config.metrics, range)?;
            Ok(ConfigView {
                off: config.state.err(),
                programs: config
                    .programs
                    .into_iter()
                    .map(|program| ProgramRow {
                        attached: program.state.is_ok(),
                        why: program.state.err().unwrap_or_default(),
                        name: program.name,
                    })
                    .collect(),
                errors: errors
                    .iter()
                    .filter(|e| e.labels.get("config") == Some(config.name.as_str()))
                    .map(|e| {
                        let decoder = e.labels.get("decoder").unwrap_or("?").to_string();
                        (decoder, digits(e.value.round()))
                    })
                    .collect(),
                counters,
                histograms,
                name: config.name,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let page = Page {
        frame: Frame::over(View::Programs, state, "/programs", time, Vec::new()),
        range: range.describe(),
        configs,
        elapsed_ms: started.elapsed().as_millis(),
    };
    Ok(page.render()?)
}

/// The rate of a counter by its labels, as PromQL over window `$w` and the
/// legend of each line.
fn counter_rate(metric: &Metric, window: &str) -> (String, String) {
    if metric.labels.is_empty() {
        let short = metric
            .name
            .trim_start_matches(crate::collect::programs::PREFIX);
        return (
            short.to_string(),
            format!("sum(rate({}[{window}]))", metric.name),
        );
    }
    let by = metric.labels.join(", ");
    let legend = metric
        .labels
        .iter()
        .map(|label| format!("{{{label}}}"))
        .collect::<Vec<_>>()
        .join(" ");
    (
        legend,
        format!("sum by ({by}) (rate({}[{window}]))", metric.name),
    )
}

fn charts(
    store: &dyn Source,
    metrics: &[Metric],
    range: &Range,
) -> anyhow::Result<(Vec<Card>, Vec<HeatCard>)> {
    let window = card::rate_window(&range.grid());
    let mut counters = Vec::new();
    let mut histograms = Vec::new();
    for metric in metrics {
        let title = format!("{}: {}", metric.name, metric.help);
        if metric.histogram {
            histograms.push(HeatCard::histogram(
                store,
                metric.name.clone(),
                title,
                (&metric.name, ""),
                range,
                "Nothing counted in this range.",
                digits,
            )?);
        } else {
            counters.push(card::lines_card(
                store,
                &metric.name,
                &title,
                Unit::PerSecond("events"),
                &[counter_rate(metric, &window)],
                None,
                "Nothing counted in this range.",
                range,
            )?);
        }
    }
    Ok((counters, histograms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_chart_as_rates_by_their_labels() {
        let metric = |labels: &[&str]| Metric {
            name: "ebpf_exporter_calls_total".into(),
            help: String::new(),
            histogram: false,
            labels: labels.iter().map(|l| l.to_string()).collect(),
        };
        assert_eq!(
            counter_rate(&metric(&["comm", "syscall"]), "60s"),
            (
                "{comm} {syscall}".to_string(),
                "sum by (comm, syscall) (rate(ebpf_exporter_calls_total[60s]))".to_string()
            )
        );
        assert_eq!(
            counter_rate(&metric(&[]), "60s"),
            (
                "calls_total".to_string(),
                "sum(rate(ebpf_exporter_calls_total[60s]))".to_string()
            )
        );
    }
}
