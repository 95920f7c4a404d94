//! Draws one chart as SVG with plotters: a time axis in UTC with ticks on
//! round minutes or hours, a value axis in the chart's unit with a round top,
//! lines broken where the data has gaps, stacked areas for parts of a whole.
//! Text is left to the browser's fonts (and the page's CSS); the picture
//! scales with its panel through its viewBox.

use plotters::prelude::*;

use super::charts::{Style, Unit};
use super::series::{Grid, Points};
use super::units::{self, Scale};

/// The picture's size in SVG units; CSS scales it to the panel's width.
const WIDTH: u32 = 600;
const HEIGHT: u32 = 240;
/// Room right of the plot, so the last time label fits.
const MARGIN_RIGHT: u32 = 16;

/// Distinct, colour-blind-friendly hues (Tableau 10), assigned in legend
/// order so the same chart keeps the same colours from one load to the next.
pub const PALETTE: &[RGBColor] = &[
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

const AXIS: RGBColor = RGBColor(0x6b, 0x72, 0x80);
const GRID_LINES: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);

/// One line of a chart, ready to draw.
pub struct Plotted {
    pub legend: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub points: Points,
}

impl Plotted {
    /// One series of a PromQL range query evaluated on `grid`'s instants.
    pub fn from_series(
        series: &crate::query::RangeSeries,
        legend: String,
        color: RGBColor,
        grid: &Grid,
    ) -> Plotted {
        let mut points = vec![None; grid.len];
        for &(t, v) in &series.points {
            let index = (t - grid.start_ms) / grid.step_ms;
            if let Some(point) = usize::try_from(index).ok().and_then(|i| points.get_mut(i)) {
                *point = Some(v);
            }
        }
        Plotted {
            legend,
            color,
            dashed: false,
            points,
        }
    }

    /// The line's colour as CSS writes it, for its legend swatch.
    pub fn css_color(&self) -> String {
        let RGBColor(r, g, b) = self.color;
        format!("#{r:02x}{g:02x}{b:02x}")
    }
}

/// The chart as an SVG document.
pub fn svg(
    title: &str,
    unit: Unit,
    style: Style,
    grid: &Grid,
    plotted: &[Plotted],
) -> anyhow::Result<String> {
    let layers = match style {
        Style::Lines => plotted.iter().map(|p| p.points.clone()).collect(),
        Style::Stacked => stack(plotted, grid),
    };
    let max = layers
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |max, &v| max.max(v));
    let Scale { divisor, label } = unit.scale(max);
    let top = units::round_up(max / divisor);
    let left = if label.is_empty() { 46 } else { 66 };

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        let label_font = ("sans-serif", 15).into_font().color(&AXIS);
        let mut chart = ChartBuilder::on(&root)
            .margin_top(10)
            .margin_right(MARGIN_RIGHT)
            .x_label_area_size(28)
            .y_label_area_size(left)
            .build_cartesian_2d(
                (grid.start_ms..grid.end_ms()).with_key_points(time_ticks(grid)),
                0f64..top,
            )?;
        chart
            .configure_mesh()
            .bold_line_style(GRID_LINES)
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS)
            .label_style(label_font.clone())
            .axis_desc_style(label_font)
            .x_label_formatter(&|ms| clock(*ms))
            .y_labels(6)
            .y_label_formatter(&|v| units::digits(*v))
            .y_desc(label)
            .draw()?;

        let scaled = |t: i64, v: f64| (t, v / divisor);
        if style == Style::Stacked {
            // Top layer first, each area down to zero, so lower layers are
            // painted over the part of the upper ones they account for.
            for (layer, p) in layers.iter().zip(plotted).rev() {
                for run in runs(layer, grid) {
                    let mut outline: Vec<(i64, f64)> =
                        run.iter().map(|&(t, v)| scaled(t, v)).collect();
                    outline.push((run[run.len() - 1].0, 0.0));
                    outline.push((run[0].0, 0.0));
                    chart.draw_series([Polygon::new(outline, tint(p.color).filled())])?;
                }
            }
        }
        for (layer, p) in layers.iter().zip(plotted) {
            for run in runs(layer, grid) {
                if let [(t, v)] = run[..] {
                    chart.draw_series([Circle::new(scaled(t, v), 2, p.color.filled())])?;
                } else {
                    let line = run.iter().map(|&(t, v)| scaled(t, v));
                    let stroke = p.color.stroke_width(2);
                    if p.dashed {
                        chart.draw_series(DashedLineSeries::new(line, 6, 4, stroke))?;
                    } else {
                        chart.draw_series(LineSeries::new(line, stroke))?;
                    }
                }
            }
        }
        root.present()?;
    }
    let x1 = WIDTH - MARGIN_RIGHT;
    Ok(out.replacen("<svg", &time_axis_attributes(title, grid, left, x1), 1))
}

/// The root element's opening with what the page's script needs to map the
/// pointer to time (drag-to-zoom, read-outs): the plot's left and right
/// edges in SVG units and the instants they stand for.
pub fn time_axis_attributes(title: &str, grid: &Grid, x0: u32, x1: u32) -> String {
    format!(
        "<svg role=\"img\" aria-label=\"{}\" data-start=\"{}\" data-end=\"{}\" data-x0=\"{x0}\" data-x1=\"{x1}\"",
        title.replace('"', "&quot;").replace('<', "&lt;"),
        grid.start_ms,
        grid.end_ms(),
    )
}

/// A lighter, opaque version of `color` for filled areas: opaque so that a
/// lower layer painted over an upper one shows its own colour, not a blend.
fn tint(RGBColor(r, g, b): RGBColor) -> RGBColor {
    let light = |c: u8| (f64::from(c) * 0.7 + 255.0 * 0.3).round() as u8;
    RGBColor(light(r), light(g), light(b))
}

/// Cumulative sums, bottom layer first: each layer's line is drawn at the
/// total of itself and the layers below. An instant where no layer has a
/// value stays a gap; otherwise a missing layer counts as zero.
fn stack(plotted: &[Plotted], grid: &Grid) -> Vec<Points> {
    let mut below: Points = vec![None; grid.len];
    let any = |i: usize| plotted.iter().any(|p| p.points[i].is_some());
    plotted
        .iter()
        .map(|p| {
            below = (0..grid.len)
                .map(|i| any(i).then(|| below[i].unwrap_or(0.0) + p.points[i].unwrap_or(0.0)))
                .collect();
            below.clone()
        })
        .collect()
}

/// The stretches of consecutive instants with a value, as (time, value).
fn runs(points: &Points, grid: &Grid) -> Vec<Vec<(i64, f64)>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for (t, value) in grid.instants().zip(points) {
        match value {
            Some(v) => current.push((t, *v)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Tick instants on round wall-clock times (UTC): the finest spacing that
/// keeps the axis at eight ticks or fewer.
pub(super) fn time_ticks(grid: &Grid) -> Vec<i64> {
    const MINUTE: i64 = 60_000;
    const SPACINGS: &[i64] = &[1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
    let range = grid.end_ms() - grid.start_ms;
    let spacing = SPACINGS
        .iter()
        .map(|m| m * MINUTE)
        .find(|&s| range / s <= 8)
        .unwrap_or(range.max(1));
    let first = grid.start_ms.div_euclid(spacing) * spacing + spacing;
    (0..)
        .map(|i| first + i * spacing)
        .take_while(|&t| t <= grid.end_ms())
        .collect()
}

/// `HH:MM` in UTC.
pub(super) fn clock(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// `HH:MM:SS` in UTC.
pub fn clock_seconds(ms: i64) -> String {
    let seconds = ms.div_euclid(1000).rem_euclid(24 * 3600);
    format!("{}:{:02}", clock(ms), seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_round_times() {
        let hour = 3_600_000;
        let grid = Grid::ending_at(1_000 * hour + 1_234, 24 * hour, 360_000);
        let ticks = time_ticks(&grid);
        assert!(ticks.len() <= 8 && ticks.len() >= 4, "{ticks:?}");
        assert!(ticks.iter().all(|t| t % (3 * hour) == 0), "{ticks:?}");
        assert_eq!(clock(ticks[0]), "18:00", "1000 h is 16:00 on day 41");
        let grid = Grid::ending_at(1_000 * hour + 1_234, 15 * 60_000, 5_000);
        assert!(time_ticks(&grid).iter().all(|t| t % 120_000 == 0));
    }

    #[test]
    fn gaps_split_lines_and_stacks_add_up() {
        let grid = Grid {
            start_ms: 0,
            step_ms: 10,
            len: 4,
        };
        let a = Plotted {
            legend: "a".into(),
            color: PALETTE[0],
            dashed: false,
            points: vec![Some(1.0), None, Some(1.0), Some(1.0)],
        };
        let b = Plotted {
            legend: "b".into(),
            color: PALETTE[1],
            dashed: false,
            points: vec![Some(2.0), None, None, Some(2.0)],
        };
        assert_eq!(
            runs(&a.points, &grid),
            [vec![(0, 1.0)], vec![(20, 1.0), (30, 1.0)]]
        );
        let stacked = stack(&[a, b], &grid);
        assert_eq!(stacked[1], [Some(3.0), None, Some(1.0), Some(3.0)]);
    }

    #[test]
    fn renders_an_svg_with_a_title() {
        let grid = Grid::ending_at(3_600_000, 3_600_000, 60_000);
        let plotted = [Plotted {
            legend: "x".into(),
            color: PALETTE[0],
            dashed: true,
            points: (0..grid.len).map(|i| Some(i as f64 * 1e6)).collect(),
        }];
        let svg = svg("Memory", Unit::Bytes, Style::Lines, &grid, &plotted).unwrap();
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"Memory\""),
            "{svg}"
        );
        assert!(svg.contains("MiB"));
    }
}
