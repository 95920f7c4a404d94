//! A chart card, the one way every view shows a chart
//! (`web/templates/card.html`): its title, the server-drawn SVG (or what to
//! say when the range holds no data), a legend with each line's last and
//! highest value, each line's PromQL linked to the Graph view, and the
//! values again as JSON for the page's script (hover read-outs). Also
//! [`Panel`]: a chart written as PromQL templates, drawn with the query
//! engine — what the Who pages, the Kernel view and the Status view chart.

use super::charts::{legend, Style, Unit};
use super::range::Range;
use super::render::{self, Plotted, PALETTE};
use super::series::Grid;
use crate::query::{self, Limits, QueryValue, Source};

pub struct LegendEntry {
    pub name: String,
    pub color: String,
    pub dashed: bool,
    pub last: String,
    pub max: String,
}

pub struct Card {
    pub id: String,
    pub title: String,
    /// The SVG, or `None` when no line has data in the range.
    pub svg: Option<String>,
    pub empty: String,
    pub legend: Vec<LegendEntry>,
    /// Each expression and its link to the Graph view.
    pub promql: Vec<(String, String)>,
    /// The lines' values as JSON for the script; empty without lines.
    pub data: String,
}

/// The Graph view's link for `expr` over `range`.
pub fn graph_href(expr: &str, range: &Range) -> String {
    let expr: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let span = match range.preset {
        Some(preset) => preset.name().to_string(),
        None => range.promql_window(),
    };
    format!("/graph?g0.expr={expr}&g0.tab=0&g0.range_input={span}")
}

/// Four significant digits: what a read-out shows, and a third of the
/// bytes of a full float.
fn short(value: f64) -> serde_json::Value {
    if !value.is_finite() {
        return serde_json::Value::Null;
    }
    let rounded: f64 = format!("{value:.3e}").parse().unwrap_or(value);
    serde_json::json!(rounded)
}

impl Card {
    /// The card of `lines` drawn on `grid`; `promql` is each expression
    /// drawn, linked to the Graph view over `range`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: impl Into<String>,
        title: &str,
        unit: Unit,
        style: Style,
        grid: &Grid,
        lines: Vec<Plotted>,
        promql: Vec<String>,
        range: &Range,
        empty: &str,
    ) -> anyhow::Result<Card> {
        let svg = if lines.is_empty() {
            None
        } else {
            Some(render::svg(title, unit, style, grid, &lines)?)
        };
        let legend = lines
            .iter()
            .map(|line| {
                let values = line.points.iter().flatten();
                let last = values.clone().next_back().copied().unwrap_or(f64::NAN);
                let max = values.fold(f64::NEG_INFINITY, |max, &v| max.max(v));
                LegendEntry {
                    name: line.legend.clone(),
                    color: line.css_color(),
                    dashed: line.dashed,
                    last: unit.format(last),
                    max: unit.format(max),
                }
            })
            .collect();
        let data = if lines.is_empty() {
            String::new()
        } else {
            let series: Vec<serde_json::Value> = lines
                .iter()
                .map(|line| {
                    let values: Vec<serde_json::Value> = line
                        .points
                        .iter()
                        .map(|p| p.map_or(serde_json::Value::Null, short))
                        .collect();
                    serde_json::json!({"name": line.legend, "color": line.css_color(), "values": values})
                })
                .collect();
            serde_json::json!({
                "start": grid.start_ms,
                "step": grid.step_ms,
                "stacked": style == Style::Stacked,
                "lines": series,
            })
            .to_string()
            // Inside <script>: no label value may close the element or open
            // a comment; `<` only occurs inside JSON strings, where \u003c
            // reads the same.
            .replace('<', "\\u003c")
        };
        Ok(Card {
            id: id.into(),
            title: title.to_string(),
            svg,
            empty: empty.to_string(),
            legend,
            promql: promql
                .into_iter()
                .map(|expr| {
                    let href = graph_href(&expr, range);
                    (expr, href)
                })
                .collect(),
            data,
        })
    }
}

/// Lines a [`Panel`] draws at most.
pub const MAX_LINES: usize = 8;

/// A chart as PromQL: lines of (legend template, expression template) where
/// `$sel` is replaced by the subject's matchers and `$w` by the rate window.
pub struct Panel {
    pub title: &'static str,
    pub unit: Unit,
    pub lines: &'static [(&'static str, &'static str)],
    /// A reference drawn dashed (a limit), by legend template.
    pub dashed: Option<&'static str>,
    pub empty: &'static str,
}

/// The rate window of a grid: two steps and a minute at least, so a rate
/// always spans samples.
pub fn rate_window(grid: &Grid) -> String {
    format!("{}s", (2 * grid.step_ms / 1000).max(60))
}

impl Panel {
    /// Draws the panel for `sel` over `range` ([`lines_card`]).
    pub fn draw(&self, store: &dyn Source, sel: &str, range: &Range) -> anyhow::Result<Card> {
        let window = rate_window(&range.grid());
        let lines: Vec<(String, String)> = self
            .lines
            .iter()
            .map(|(legend, template)| {
                let expr = template.replace("$sel", sel).replace("$w", &window);
                (legend.to_string(), expr)
            })
            .collect();
        let id: String = self
            .title
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        lines_card(
            store,
            &id,
            self.title,
            self.unit,
            &lines,
            self.dashed,
            self.empty,
            range,
        )
    }
}

/// A line chart of PromQL `lines` (legend template, expression) over
/// `range`: at most [`MAX_LINES`] lines, those with the highest average
/// over the range (a `topk` in a range query ranks at each instant, so
/// more than k series come back); the line whose legend template is
/// `dashed` is drawn dashed (a limit).
#[allow(clippy::too_many_arguments)]
pub fn lines_card(
    store: &dyn Source,
    id: &str,
    title: &str,
    unit: Unit,
    lines: &[(String, String)],
    dashed: Option<&str>,
    empty: &str,
    range: &Range,
) -> anyhow::Result<Card> {
    let grid = range.grid();
    let mut plotted = Vec::new();
    let mut promql = Vec::new();
    for (legend_template, expr) in lines {
        for series in range_series(store, expr, &grid)? {
            let legend = legend(legend_template, &series.labels);
            let mut line = Plotted::from_series(&series, legend, PALETTE[0], &grid);
            line.dashed = dashed == Some(legend_template.as_str());
            plotted.push(line);
        }
        promql.push(expr.clone());
    }
    if plotted.len() > MAX_LINES {
        let mean = |line: &Plotted| {
            let values: Vec<f64> = line.points.iter().flatten().copied().collect();
            values.iter().sum::<f64>() / values.len().max(1) as f64
        };
        plotted.sort_by(|a, b| mean(b).total_cmp(&mean(a)));
        plotted.truncate(MAX_LINES);
    }
    for (line, &color) in plotted.iter_mut().zip(PALETTE.iter().cycle()) {
        line.color = color;
    }
    Card::new(
        id,
        title,
        unit,
        Style::Lines,
        &grid,
        plotted,
        promql,
        range,
        empty,
    )
}

/// The series of a PromQL range query on `grid`'s instants; an error names
/// the expression. The query reads the store as the grid needs it
/// ([`Stepped`]).
pub fn range_series(
    store: &dyn Source,
    expr: &str,
    grid: &Grid,
) -> anyhow::Result<Vec<query::RangeSeries>> {
    let stepped = Stepped {
        source: store,
        step_ms: grid.step_ms,
    };
    let value = query::range_query(
        &stepped,
        &Limits::default(),
        expr,
        grid.start_ms,
        grid.end_ms(),
        grid.step_ms,
    )
    .map_err(|err| anyhow::anyhow!("{expr}: {err}"))?;
    Ok(match value {
        QueryValue::Matrix(series) => series,
        _ => Vec::new(),
    })
}

/// An instant query at `at_ms`: its samples above zero, the highest first.
pub fn ranked(
    store: &dyn Source,
    promql: &str,
    at_ms: i64,
) -> anyhow::Result<Vec<query::InstantSample>> {
    let answer = query::instant_query(store, &Limits::default(), promql, at_ms)
        .map_err(|err| anyhow::anyhow!("{promql}: {err}"))?;
    let mut samples = match answer {
        QueryValue::Vector(samples) => samples,
        _ => Vec::new(),
    };
    samples.retain(|s| s.value > 0.0);
    samples.sort_by(|a, b| b.value.total_cmp(&a.value));
    Ok(samples)
}

/// A source read at a grid's step: a step of a minute or more reads the
/// minute rollups' last sample per bucket instead of every raw sample
/// ([`Source::select_step`]), as the Overview's charts do. A chart cannot
/// show finer detail than its step, and a counter's rate between the kept
/// samples is exact; a window of two steps always spans two of them.
struct Stepped<'a> {
    source: &'a dyn Source,
    step_ms: i64,
}

impl Source for Stepped<'_> {
    fn select(
        &self,
        matchers: &[crate::model::Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<crate::store::SeriesSamples>> {
        self.source
            .select_step(matchers, start_ms, end_ms, self.step_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::dashboard::range::Preset;

    #[test]
    fn a_legend_cannot_break_out_of_the_script_data() {
        let range = Range::last(Preset::Minutes15, 1_800_000_000_000);
        let grid = range.grid();
        let line = Plotted {
            legend: "</script><!--".to_string(),
            color: PALETTE[0],
            dashed: false,
            points: vec![Some(1.0); grid.len],
        };
        let card = Card::new(
            "x",
            "x",
            Unit::Number,
            Style::Lines,
            &grid,
            vec![line],
            vec!["up".to_string()],
            &range,
            "",
        )
        .unwrap();
        assert!(!card.data.contains('<'), "{}", card.data);
        let data: serde_json::Value = serde_json::from_str(&card.data).unwrap();
        assert_eq!(data["lines"][0]["name"], "</script><!--");
        assert_eq!(
            card.promql[0].1,
            "/graph?g0.expr=up&g0.tab=0&g0.range_input=15m"
        );
    }
}
