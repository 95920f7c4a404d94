//! Latency heatmaps and event strips, drawn as SVG by hand: time across,
//! one row per log2 bucket (or per kind of event) up, each cell's colour the
//! count in that bucket over one grid step, on a log scale so a rare slow
//! bucket still shows beside a busy fast one. Quantile lines (p50, p99) are
//! drawn over the rows they fall in.
//!
//! A histogram is read as Prometheus stores it, cumulative `_bucket` series
//! by `le`; [`Histogram::read`] turns one range query into counts per bucket
//! and step (a bucket's count is its cumulative count minus the one below).
//! Cells of the same colour side by side are merged into one run, drawn in
//! grid units in one path per colour, and colours are CSS classes (`h0`…
//! `h7`), so a heatmap stays a few kilobytes and follows the page's light
//! or dark theme.

use std::fmt::Write as _;

use super::card::{self, range_series};
use super::render;
use super::series::Grid;
use crate::query::Source;

/// The picture's size in SVG units, as the line charts'.
const WIDTH: u32 = 600;
/// Room for row labels left of the plot, at the least.
const LEFT: u32 = 66;
const RIGHT: u32 = 16;
const TOP: u32 = 10;
const BOTTOM: u32 = 28;
/// Colour steps of the scale (`h0` the faintest); `dashboard.css` and the
/// ramp in `heat_card.html` have one class per step.
pub const LEVELS: usize = 8;
/// Tallest a row is drawn, in SVG units, unless the rows are too few to
/// fill [`MIN_HEIGHT`]; many rows share [`MAX_PLOT_HEIGHT`].
const MAX_ROW: f64 = 18.0;
const MIN_HEIGHT: f64 = 90.0;
const MAX_PLOT_HEIGHT: f64 = 260.0;

/// Counts per row and grid instant, rows bottom-up.
pub struct Heatmap {
    /// Row labels, bottom row first.
    pub rows: Vec<String>,
    /// `counts[row][instant]`: events in that row during the step ending
    /// at the instant.
    pub counts: Vec<Vec<f64>>,
    /// Lines over the rows, in row units (0 the bottom of the first row).
    pub lines: Vec<Overlay>,
}

pub struct Overlay {
    pub legend: &'static str,
    /// CSS class of the stroke.
    pub class: &'static str,
    pub points: Vec<Option<f64>>,
    /// The line's last value as people read it.
    pub last: String,
}

impl Heatmap {
    pub fn is_empty(&self) -> bool {
        self.counts.iter().flatten().all(|&c| c <= 0.0)
    }

    /// The highest count of one cell.
    pub fn max(&self) -> f64 {
        self.counts
            .iter()
            .flatten()
            .fold(0.0, |m: f64, &c| m.max(c))
    }
}

/// A cumulative histogram read over a grid: bucket upper bounds (ascending,
/// `+Inf` last) and the count per bucket and step.
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Vec<Vec<f64>>,
}

impl Histogram {
    /// Reads `metric`'s `_bucket` series matching `sel`, summed by `le`, as
    /// counts per grid step.
    pub fn read(
        store: &dyn Source,
        metric: &str,
        sel: &str,
        grid: &Grid,
    ) -> anyhow::Result<(Histogram, String)> {
        let step_s = grid.step_ms as f64 / 1000.0;
        // The rate over a window of two steps (a minute at least, so it
        // spans samples) times the step: events per step, smoothed over two.
        let promql = format!(
            "sum by (le) (rate({metric}_bucket{{{sel}}}[{}])) * {step_s}",
            card::rate_window(grid)
        );
        let mut buckets: Vec<(f64, Vec<Option<f64>>)> = range_series(store, &promql, grid)?
            .into_iter()
            .filter_map(|series| {
                let le: f64 = series.labels.get("le")?.parse().ok()?;
                let mut points = vec![None; grid.len];
                for (t, v) in series.points {
                    let i = ((t - grid.start_ms) / grid.step_ms) as usize;
                    if let Some(p) = points.get_mut(i) {
                        *p = Some(v);
                    }
                }
                Some((le, points))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut counts = Vec::with_capacity(buckets.len());
        for (i, (_, points)) in buckets.iter().enumerate() {
            counts.push(
                (0..grid.len)
                    .map(|t| {
                        let here = points[t].unwrap_or(0.0);
                        let below = match i {
                            0 => 0.0,
                            _ => buckets[i - 1].1[t].unwrap_or(0.0),
                        };
                        // Rates of neighbouring buckets come from separate
                        // samples' extrapolation: never below zero.
                        (here - below).max(0.0)
                    })
                    .collect(),
            );
        }
        let bounds = buckets.into_iter().map(|(le, _)| le).collect();
        Ok((Histogram { bounds, counts }, promql))
    }

    /// Quantile `q` at each instant, as a row position (bucket index plus
    /// the share of the bucket's count below the rank) and as a value
    /// (interpolated linearly inside the bucket, as `histogram_quantile`).
    fn quantile(&self, q: f64, instant: usize) -> Option<(f64, f64)> {
        let total: f64 = self.counts.iter().map(|c| c[instant]).sum();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut below = 0.0;
        for (i, counts) in self.counts.iter().enumerate() {
            let count = counts[instant];
            if count > 0.0 && below + count >= rank {
                let share = ((rank - below) / count).clamp(0.0, 1.0);
                let low = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let high = self.bounds[i];
                let value = if high.is_finite() {
                    low + (high - low) * share
                } else {
                    low
                };
                return Some((i as f64 + share, value));
            }
            below += count;
        }
        None
    }

    /// The heatmap of the rows that ever count, with p50 and p99 lines;
    /// bounds and quantiles read as `format` writes a value (durations for
    /// latencies, plain numbers for a custom program's histogram).
    pub fn heatmap(&self, grid: &Grid, format: fn(f64) -> String) -> Heatmap {
        let used: Vec<usize> = (0..self.counts.len())
            .filter(|&i| self.counts[i].iter().any(|&c| c > 0.0))
            .collect();
        let (Some(&first), Some(&last)) = (used.first(), used.last()) else {
            return Heatmap {
                rows: Vec::new(),
                counts: Vec::new(),
                lines: Vec::new(),
            };
        };
        let rows = (first..=last)
            .map(|i| {
                bucket_label(
                    self.bounds[i],
                    i.checked_sub(1).map(|b| self.bounds[b]),
                    format,
                )
            })
            .collect();
        let counts = self.counts[first..=last].to_vec();
        let lines = [(0.5, "p50", "q50"), (0.99, "p99", "q99")]
            .into_iter()
            .map(|(q, legend, class)| {
                let at: Vec<Option<(f64, f64)>> =
                    (0..grid.len).map(|t| self.quantile(q, t)).collect();
                let last = at
                    .iter()
                    .rev()
                    .flatten()
                    .next()
                    .map_or_else(|| "–".to_string(), |(_, value)| format(*value));
                Overlay {
                    legend,
                    class,
                    points: at
                        .iter()
                        .map(|p| p.map(|(row, _)| row - first as f64))
                        .collect(),
                    last,
                }
            })
            .collect();
        Heatmap {
            rows,
            counts,
            lines,
        }
    }
}

/// A duration in seconds as people read it: `250µs`, `1.5ms`, `2s`.
pub fn seconds(value: f64) -> String {
    let (scaled, unit) = if value < 1e-3 {
        (value * 1e6, "µs")
    } else if value < 1.0 {
        (value * 1e3, "ms")
    } else {
        (value, "s")
    };
    format!("{}{unit}", super::units::digits(scaled))
}

/// A bucket's row label: its upper bound, or "> the bound below" for +Inf.
fn bucket_label(bound: f64, below: Option<f64>, format: fn(f64) -> String) -> String {
    match (bound.is_finite(), below) {
        (true, _) => format!("≤{}", format(bound)),
        (false, Some(below)) => format!(">{}", format(below)),
        (false, None) => "all".to_string(),
    }
}

/// The colour level of a count, on a log scale up to `max`.
fn level(count: f64, max: f64) -> usize {
    let share = (1.0 + count).ln() / (1.0 + max).ln();
    ((share * LEVELS as f64) as usize).min(LEVELS - 1)
}

/// The heatmap as an SVG document.
pub fn svg(title: &str, grid: &Grid, map: &Heatmap) -> String {
    let rows = map.rows.len().max(1) as f64;
    let row_height = (MAX_PLOT_HEIGHT / rows).min(MAX_ROW).max(MIN_HEIGHT / rows);
    let plot_height = row_height * rows;
    let height = TOP as f64 + plot_height + BOTTOM as f64;
    // About 7 units per character of the longest row label at 12 units.
    let longest = map
        .rows
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0);
    let left = LEFT.max(longest as u32 * 7 + 10);
    let x1 = WIDTH - RIGHT;
    let plot_width = f64::from(x1 - left);
    let x_of = |ms: i64| {
        let share = (ms - grid.start_ms) as f64 / (grid.end_ms() - grid.start_ms).max(1) as f64;
        f64::from(left) + share * plot_width
    };
    // A cell spans the step ending at its instant.
    let cell_width = plot_width / (grid.len.max(2) - 1) as f64;
    let y_of_row = |row: f64| TOP as f64 + plot_height - row * row_height;

    let mut out = render::time_axis_attributes(title, grid, left, x1);
    let _ = write!(
        out,
        " class=\"heatmap\" viewBox=\"0 0 {WIDTH} {height:.0}\" width=\"{WIDTH}\" height=\"{height:.0}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    // Cells in grid units: cell t (the step ending at instant t) spans
    // columns [t, t + 1) and row r (bottom-up) spans one unit; one path per
    // colour level holds every run of equal cells, a few bytes each. The
    // cell before the first instant lies outside the range and is skipped.
    let rows_count = map.rows.len();
    let mut levels = vec![String::new(); LEVELS];
    let max = map.max();
    for (row, counts) in map.counts.iter().enumerate() {
        let y = rows_count - 1 - row;
        let mut run: Option<(usize, usize)> = None; // (first instant, level)
        let mut close = |from: usize, to: usize, level: usize| {
            let _ = write!(levels[level], "M{from} {y}h{}v1H{from}z", to + 1 - from);
        };
        for (t, &count) in counts.iter().enumerate().skip(1) {
            let here = (count > 0.0).then(|| level(count, max));
            match (run, here) {
                (Some((_, l)), Some(h)) if l == h => {}
                (Some((from, l)), _) => {
                    close(from, t - 1, l);
                    run = here.map(|h| (t, h));
                }
                (None, _) => run = here.map(|h| (t, h)),
            }
        }
        if let Some((from, l)) = run {
            close(from, counts.len() - 1, l);
        }
    }
    let _ = write!(
        out,
        "<g transform=\"translate({:.2} {TOP}) scale({cell_width:.4} {row_height:.3})\" shape-rendering=\"crispEdges\">",
        f64::from(left) - cell_width
    );
    for (level, path) in levels.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let _ = write!(out, "<path class=\"h{level}\" d=\"{path}\"/>");
    }
    out.push_str("</g>");
    // Row labels, every other one when rows are thin.
    let every = if row_height < 12.0 { 2 } else { 1 };
    for (row, label) in map.rows.iter().enumerate().filter(|(r, _)| r % every == 0) {
        let y = y_of_row(row as f64 + 0.5) + 4.0;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{y:.1}\" text-anchor=\"end\" font-size=\"12\">{label}</text>",
            left - 6
        );
    }
    for overlay in &map.lines {
        let mut path = String::new();
        let mut pen_down = false;
        for (t, point) in overlay.points.iter().enumerate() {
            match point {
                Some(row) => {
                    let command = if pen_down { 'L' } else { 'M' };
                    let x = x_of(grid.instant(t)) - cell_width / 2.0;
                    let _ = write!(
                        path,
                        "{command}{:.1} {:.1}",
                        x.max(f64::from(left)),
                        y_of_row(*row)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(
                out,
                "<path class=\"{}\" d=\"{path}\" fill=\"none\"/>",
                overlay.class
            );
        }
    }
    let axis_y = TOP as f64 + plot_height;
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{axis_y:.1}\" x2=\"{x1}\" y2=\"{axis_y:.1}\"/>"
    );
    for tick in render::time_ticks(grid) {
        let x = x_of(tick);
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            axis_y + 18.0,
            render::clock(tick)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(len: usize) -> Grid {
        Grid {
            start_ms: 0,
            step_ms: 10_000,
            len,
        }
    }

    #[test]
    fn quantiles_fall_in_the_bucket_holding_their_rank() {
        // 100 events ≤1ms and 1 event in (1ms, 2ms], at both instants.
        let histogram = Histogram {
            bounds: vec![0.001, 0.002, f64::INFINITY],
            counts: vec![vec![100.0, 100.0], vec![1.0, 1.0], vec![0.0, 0.0]],
        };
        // Rank 50.5 of 101: 50.5 % into the first bucket, as a row and as
        // histogram_quantile's linear interpolation.
        let (row, value) = histogram.quantile(0.5, 0).unwrap();
        assert!((row - 0.505).abs() < 1e-9, "{row}");
        assert!((value - 0.000505).abs() < 1e-12, "{value}");
        let (row, _) = histogram.quantile(0.999, 1).unwrap();
        assert!(row > 1.0 && row <= 2.0, "{row}");
        let map = histogram.heatmap(&grid(2), seconds);
        assert_eq!(map.rows, ["≤1ms", "≤2ms"], "the empty +Inf row is left out");
        assert_eq!(map.lines[0].last, "505µs");
    }

    #[test]
    fn equal_neighbours_merge_into_one_run() {
        let map = Heatmap {
            rows: vec!["≤1µs".into()],
            counts: vec![vec![5.0, 5.0, 5.0, 0.0, 1.0]],
            lines: Vec::new(),
        };
        let svg = svg("t", &grid(5), &map);
        // The first cell is before the range; then one run of two 5s at
        // the highest level, and a single 1 further down the ramp.
        assert!(
            svg.contains("<path class=\"h7\" d=\"M1 0h2v1H1z\"/>"),
            "{svg}"
        );
        assert!(
            svg.contains("<path class=\"h3\" d=\"M4 0h1v1H4z\"/>"),
            "{svg}"
        );
        assert!(svg.starts_with("<svg role=\"img\" aria-label=\"t\" data-start=\"0\""));
    }

    #[test]
    fn empty_histograms_draw_nothing() {
        let histogram = Histogram {
            bounds: vec![0.001, f64::INFINITY],
            counts: vec![vec![0.0], vec![0.0]],
        };
        assert!(histogram.heatmap(&grid(1), seconds).is_empty());
        assert_eq!(bucket_label(f64::INFINITY, Some(0.004), seconds), ">4ms");
        assert_eq!(seconds(2.0), "2s");
    }
}
