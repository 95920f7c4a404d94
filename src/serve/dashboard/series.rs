//! The dashboard's series math, all of it: the grid of instants a chart is
//! drawn at, a gauge's value at each instant, and a counter's per-second rate
//! at each instant, computed as Prometheus's `rate()` computes it.
//!
//! Every function takes one series' samples (oldest first, as
//! [`Store::select`](crate::store::Store::select) returns them) and answers one
//! value per grid instant, `None` where the series has no data (a gap).
//!
//! The rate is PromQL's own ([`extrapolated_rate`]) over each window.
//!
//! Windows follow the series' own sampling interval (the median gap between
//! samples, so an outage does not stretch it): a gauge looks back
//! [`LOOKBACK_INTERVALS`] intervals for its latest sample, and a rate covers
//! `max(step + interval, 4 × interval)` (Grafana's `$__rate_interval`), so
//! neighbouring windows overlap by one interval and no increase between two
//! samples falls between two windows. When sonde was down for longer than a
//! window, the chart shows a gap rather than a line bridging it.

use crate::query::extrapolated_rate;

/// Per grid instant: the value, or `None` for "no data there".
pub type Points = Vec<Option<f64>>;

/// How many sampling intervals a gauge looks back, and the shortest rate
/// window: four, so one or two lost rounds do not cut the line.
pub const LOOKBACK_INTERVALS: i64 = 4;

/// How far back a gauge looks for a series with a single sample (no interval
/// to go by): Prometheus's default lookback delta.
const SINGLE_SAMPLE_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The instants a chart is evaluated at: `start_ms + i * step_ms` for
/// `i in 0..len`, the last one being the end of the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start_ms: i64,
    pub step_ms: i64,
    pub len: usize,
}

impl Grid {
    /// The grid covering `range_ms` up to and including `end_ms`.
    pub fn ending_at(end_ms: i64, range_ms: i64, step_ms: i64) -> Grid {
        let step_ms = step_ms.max(1);
        let steps = (range_ms / step_ms).max(1);
        Grid {
            start_ms: end_ms - steps * step_ms,
            step_ms,
            len: steps as usize + 1,
        }
    }

    pub fn end_ms(&self) -> i64 {
        self.instant(self.len - 1)
    }

    pub fn instant(&self, index: usize) -> i64 {
        self.start_ms + index as i64 * self.step_ms
    }

    pub fn instants(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len).map(|i| self.instant(i))
    }
}

/// The typical time between two samples: the median gap, so an outage (one
/// huge gap) or a late round does not distort it. `None` below two samples.
pub fn typical_interval_ms(samples: &[(i64, f64)]) -> Option<i64> {
    let mut gaps: Vec<i64> = samples
        .windows(2)
        .map(|pair| pair[1].0 - pair[0].0)
        .filter(|&gap| gap > 0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let middle = gaps.len() / 2;
    Some(*gaps.select_nth_unstable(middle).1)
}

/// The rate window for a grid step and a sampling interval.
pub fn rate_window_ms(step_ms: i64, interval_ms: i64) -> i64 {
    (step_ms + interval_ms).max(LOOKBACK_INTERVALS * interval_ms)
}

/// A gauge at each instant: its latest sample at or before the instant,
/// unless that sample is older than the lookback (then a gap).
pub fn gauge(samples: &[(i64, f64)], grid: &Grid) -> Points {
    let lookback = typical_interval_ms(samples).map_or(SINGLE_SAMPLE_LOOKBACK_MS, |interval| {
        LOOKBACK_INTERVALS * interval
    });
    let mut next = 0; // first sample after the current instant
    grid.instants()
        .map(|t| {
            while next < samples.len() && samples[next].0 <= t {
                next += 1;
            }
            let (ts, value) = *samples.get(next.checked_sub(1)?)?;
            (ts > t - lookback).then_some(value)
        })
        .collect()
}

/// A counter's per-second rate at each instant over the window
/// `(t - window, t]`, as Prometheus's `rate()`: a drop in value is a counter
/// reset (the counter restarted from zero, so the value after it is all
/// increase), and the increase is extrapolated to the window's edges unless
/// the series starts or ends inside the window. Fewer than two samples in a
/// window give a gap.
pub fn rate(samples: &[(i64, f64)], grid: &Grid) -> Points {
    let Some(interval) = typical_interval_ms(samples) else {
        return vec![None; grid.len];
    };
    let window = rate_window_ms(grid.step_ms, interval);
    // The samples in the window of the current instant are [first, next).
    let (mut first, mut next) = (0, 0);
    grid.instants()
        .map(|t| {
            while next < samples.len() && samples[next].0 <= t {
                next += 1;
            }
            while first < next && samples[first].0 <= t - window {
                first += 1;
            }
            extrapolated_rate(
                &samples[first..next],
                t - window,
                t,
                true,
                Some(window as f64 / 1000.0),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter sampled every `every_ms` from `start_ms`, `per_second` faster
    /// each second, starting at `from`.
    fn counter(
        start_ms: i64,
        every_ms: i64,
        n: usize,
        from: f64,
        per_second: f64,
    ) -> Vec<(i64, f64)> {
        (0..n as i64)
            .map(|i| {
                let ts = start_ms + i * every_ms;
                (ts, from + per_second * (i * every_ms) as f64 / 1000.0)
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn grid_ends_at_the_end_and_covers_the_range() {
        let grid = Grid::ending_at(100_000, 60_000, 15_000);
        assert_eq!(grid.len, 5);
        assert_eq!(grid.start_ms, 40_000);
        assert_eq!(grid.end_ms(), 100_000);
    }

    #[test]
    fn interval_is_the_median_gap_despite_an_outage() {
        let mut samples = counter(0, 10_000, 10, 0.0, 1.0);
        samples.extend(counter(3_600_000, 10_000, 10, 0.0, 1.0));
        assert_eq!(typical_interval_ms(&samples), Some(10_000));
        assert_eq!(typical_interval_ms(&samples[..1]), None);
    }

    #[test]
    fn steady_counter_shows_its_slope() {
        // 10/s for 10 minutes at a 10 s interval, grid inside the data.
        let samples = counter(0, 10_000, 61, 5_000.0, 10.0);
        let grid = Grid::ending_at(590_000, 300_000, 15_000);
        for (t, value) in grid.instants().zip(rate(&samples, &grid)) {
            let value = value.unwrap_or_else(|| panic!("no rate at {t}"));
            assert!(close(value, 10.0), "rate {value} at {t}");
        }
    }

    #[test]
    fn reset_is_not_a_negative_spike() {
        // 10/s, then the counter restarts from zero and keeps rising 10/s.
        let mut samples = counter(0, 10_000, 31, 1_000.0, 10.0);
        samples.extend(counter(310_000, 10_000, 30, 0.0, 10.0));
        let grid = Grid::ending_at(600_000, 600_000, 10_000);
        let rates = rate(&samples, &grid);
        for value in rates.iter().flatten() {
            assert!(*value >= 0.0, "negative rate {value}");
            assert!(*value <= 10.0 * 1.5, "spike {value} around a reset");
        }
        // Away from the reset and the edges the rate is exact.
        assert!(close(rates[20].unwrap(), 10.0));
        assert!(close(rates[50].unwrap(), 10.0));
    }

    #[test]
    fn reset_counts_the_value_after_it_as_increase() {
        let samples = [(0, 100.0), (10_000, 200.0), (20_000, 50.0), (30_000, 150.0)];
        // Increase 100 + 50 + 100 = 250 between the first and last sample
        // (a window ending on them: nothing to extrapolate).
        assert_eq!(
            extrapolated_rate(&samples, 0, 30_000, true, None),
            Some(250.0)
        );
    }

    #[test]
    fn outage_longer_than_the_window_is_a_gap() {
        let mut samples = counter(0, 10_000, 31, 0.0, 10.0);
        samples.extend(counter(1_200_000, 10_000, 31, 12_000.0, 10.0));
        let grid = Grid::ending_at(1_500_000, 1_500_000, 30_000);
        let rates = rate(&samples, &grid);
        let at = |ms: i64| rates[(ms / 30_000) as usize];
        assert!(at(270_000).is_some());
        assert_eq!(at(600_000), None, "nothing stored between 300 s and 1200 s");
        assert_eq!(at(900_000), None);
        assert!(close(at(1_440_000).unwrap(), 10.0));
    }

    #[test]
    fn series_starting_inside_the_window_is_extrapolated_by_half_an_interval() {
        // Two samples 10 s apart, +100, seen from a grid with a 60 s step.
        let samples = [(100_000, 1_000.0), (110_000, 1_100.0)];
        let grid = Grid {
            start_ms: 150_000,
            step_ms: 60_000,
            len: 1,
        };
        // Window (80 s, 150 s] (step + interval): the 10 s seen stretch by
        // half an interval at each side, to 20 s.
        let value = rate(&samples, &grid)[0].unwrap();
        assert!(close(value, 100.0 * (20.0 / 10.0) / 70.0), "{value}");
    }

    #[test]
    fn counter_is_not_extrapolated_below_zero() {
        // Starts at 0 (fresh counter): no increase before the first sample.
        let samples = counter(100_000, 10_000, 4, 0.0, 10.0);
        let grid = Grid {
            start_ms: 130_000,
            step_ms: 60_000,
            len: 1,
        };
        let value = rate(&samples, &grid)[0].unwrap();
        // 300 seen over 30 s, extrapolated neither back nor forward, over
        // the 70 s window.
        assert!(close(value, 300.0 / 70.0), "{value}");
    }

    #[test]
    fn gauge_takes_the_latest_sample_within_the_lookback() {
        let samples = [(0, 1.0), (10_000, 2.0), (20_000, 3.0)];
        let grid = Grid {
            start_ms: -5_000,
            step_ms: 15_000,
            len: 6,
        };
        // Instants -5, 10, 25, 40, 55, 70 s; lookback 40 s.
        assert_eq!(
            gauge(&samples, &grid),
            [None, Some(2.0), Some(3.0), Some(3.0), Some(3.0), None]
        );
    }

    #[test]
    fn no_samples_give_only_gaps() {
        let grid = Grid::ending_at(60_000, 60_000, 10_000);
        assert!(rate(&[], &grid).iter().all(Option::is_none));
        assert!(gauge(&[], &grid).iter().all(Option::is_none));
        assert!(rate(&[(0, 1.0)], &grid).iter().all(Option::is_none));
    }
}
