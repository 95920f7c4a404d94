//! A baseline's band, learned per series from rollup buckets: which tier
//! and time range a method reads, and the band those buckets give.
//!
//! Every method works on buckets, never on raw samples, so a 7-day
//! baseline decodes 168 hour buckets a series:
//! - seasonal quantile: the hour buckets at the same phase of each past
//!   season (for `season: 1d`, the same hour of each of the last days), the
//!   `quantile` of their means (`sum / count`) as the centre, `tolerance` of
//!   it either side;
//! - mad and stddev: the completed buckets of the last `window` (minute
//!   buckets for a window under a day, hour buckets from a day up). (While
//!   the store keeps the raw samples of a window, its minute buckets are
//!   folded from them as the store reads that tier; hour buckets are always
//!   stored.)
//!   - stddev: mean ± k·stddev of the window's samples, exact to float
//!     rounding: each bucket keeps its count, sum and M2 (the sum of its
//!     samples' squared deviations from its mean, see
//!     [`crate::store::rollup`]), and Chan's parallel formula pools them:
//!     M2 = ΣM2ᵢ + Σnᵢ·(meanᵢ − mean)², variance = M2 / Σnᵢ (the population
//!     variance, as PromQL's `stddev_over_time`). A bucket whose M2 is not
//!     known (stored before buckets kept it) counts with M2 0: it adds only
//!     the spread of its mean, as every bucket did before, so a band right
//!     after an upgrade is about as wide as it was and widens to the exact
//!     one as the window fills with new buckets
//!     (`stddev_is_the_samples_not_the_bucket_means` checks both).
//!   - mad: median ± k·1.4826·MAD (MAD scaled to estimate a standard
//!     deviation, so `k` means the same for both) of the bucket means: a
//!     median cannot be pooled from per-bucket aggregates, so this one
//!     stays the median of minute (or hour) means standing in for the
//!     median of the samples; noise faster than a bucket averages out.
//!
//! Invariant: a band is made only of buckets that are complete at the
//! evaluation instant (before the bucket holding it), so it is the same for
//! every evaluation within one bucket period and is computed once per
//! period.

use std::collections::HashMap;

use super::spec::{Method, Spread};
use crate::model::Labels;
use crate::store::{Bucket, Resolution};

/// The band a value is compared with; `lower <= center <= upper`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub center: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Band {
    fn around(center: f64, half_width: f64) -> Band {
        Band {
            center,
            lower: center - half_width,
            upper: center + half_width,
        }
    }

    /// The band shrunk about its centre to `fraction` of its width.
    pub fn narrowed(&self, fraction: f64) -> Band {
        Band {
            center: self.center,
            lower: self.center - (self.center - self.lower) * fraction,
            upper: self.center + (self.upper - self.center) * fraction,
        }
    }

    /// How far `value` is from the centre in half-widths of the band on its
    /// side: beyond 1 is outside.
    pub fn deviation(&self, value: f64) -> f64 {
        let half = if value >= self.center {
            self.upper - self.center
        } else {
            self.center - self.lower
        };
        if half > 0.0 {
            (value - self.center) / half
        } else if value == self.center {
            0.0
        } else {
            // A band of no width (a constant history): any change is out.
            (value - self.center).signum() * f64::INFINITY
        }
    }
}

/// The tier a method reads and the bucket range `[start, end]` (bucket
/// starts) one evaluation at `ts_ms` needs.
pub fn history(method: &Method, ts_ms: i64) -> (Resolution, i64, i64) {
    let (tier, span) = match method {
        Method::SeasonalQuantile { history_ms, .. } => (Resolution::Hour, *history_ms),
        Method::Robust { window_ms, .. } => (robust_tier(*window_ms), *window_ms),
    };
    let current = bucket_start(ts_ms, tier);
    (tier, current - span, current - 1)
}

/// Minute buckets for a window under a day, hour buckets from a day up:
/// at least 24 buckets either way once the window is an hour or more.
fn robust_tier(window_ms: i64) -> Resolution {
    if window_ms >= 24 * Resolution::Hour.bucket_ms() {
        Resolution::Hour
    } else {
        Resolution::Minute
    }
}

pub fn bucket_start(ts_ms: i64, tier: Resolution) -> i64 {
    ts_ms.div_euclid(tier.bucket_ms()) * tier.bucket_ms()
}

/// The band of one series at `ts_ms` from its buckets (those [`history`]
/// names, oldest first); `None` while too little history is stored: fewer
/// than half the seasons, or fewer than three buckets of the window.
pub fn band(method: &Method, buckets: &[Bucket], ts_ms: i64) -> Option<Band> {
    match method {
        Method::SeasonalQuantile {
            quantile,
            season_ms,
            history_ms,
            tolerance,
        } => {
            let by_start: HashMap<i64, f64> =
                buckets.iter().map(|b| (b.start_ms, mean(b))).collect();
            let seasons = history_ms / season_ms;
            let mut values: Vec<f64> = (1..=seasons)
                .filter_map(|n| {
                    by_start
                        .get(&bucket_start(ts_ms - n * season_ms, Resolution::Hour))
                        .copied()
                })
                .filter(|v| v.is_finite())
                .collect();
            if (values.len() as i64) * 2 < seasons {
                return None;
            }
            let center = quantile_of(&mut values, *quantile);
            Some(Band::around(center, center.abs() * tolerance))
        }
        Method::Robust {
            spread: Spread::Mad,
            k,
            ..
        } => {
            let mut values: Vec<f64> = buckets.iter().map(mean).filter(|v| v.is_finite()).collect();
            if values.len() < 3 {
                return None;
            }
            let median = quantile_of(&mut values, 0.5);
            let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
            let mad = quantile_of(&mut deviations, 0.5);
            Some(Band::around(median, k * MAD_TO_STDDEV * mad))
        }
        Method::Robust {
            spread: Spread::Stddev,
            k,
            ..
        } => {
            let (mean, stddev) = pooled_mean_and_stddev(buckets)?;
            Some(Band::around(mean, k * stddev))
        }
    }
}

/// The mean and (population) standard deviation of the samples of
/// `buckets`, from their count, sum and M2 (see the module doc); `None` with
/// fewer than three usable buckets. A bucket whose mean or M2 is not finite
/// (it held a NaN or an infinity) is left out, as its mean always was.
///
/// The bucket means are taken relative to a reference `k` near them (the
/// first one's), each as (sumᵢ − nᵢ·k) / nᵢ with the product exact (fused
/// multiply-add): near 1e12 a mean itself is only known to 1e-4, an error
/// Chan's between-bucket term would take at the first order, while the
/// shifted sum keeps what the stored sum knows (exactly, for integer
/// samples).
pub(crate) fn pooled_mean_and_stddev(buckets: &[Bucket]) -> Option<(f64, f64)> {
    let usable: Vec<&Bucket> = buckets
        .iter()
        .filter(|b| mean(b).is_finite() && b.m2().is_none_or(f64::is_finite))
        .collect();
    if usable.len() < 3 {
        return None;
    }
    let k = mean(usable[0]);
    let shifted_sum = |b: &Bucket| (-b.count).mul_add(k, b.sum);
    let n: f64 = usable.iter().map(|b| b.count).sum();
    let shifted_mean = usable.iter().map(|b| shifted_sum(b)).sum::<f64>() / n;
    let m2: f64 = usable
        .iter()
        .map(|b| {
            let from_mean = shifted_sum(b) / b.count - shifted_mean;
            b.m2().unwrap_or(0.0) + b.count * from_mean * from_mean
        })
        .sum();
    Some((k + shifted_mean, (m2 / n).sqrt()))
}

/// For normally distributed values, stddev = 1.4826 · MAD.
const MAD_TO_STDDEV: f64 = 1.4826;

fn mean(b: &Bucket) -> f64 {
    b.sum / b.count
}

/// The `q` quantile of `values` (not empty), interpolated between ranks as
/// PromQL's `quantile` does.
fn quantile_of(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(values.len() - 1);
    let weight = rank - below as f64;
    values[below] * (1.0 - weight) + values[above] * weight
}

/// Bands of every series of a rule, kept for the bucket period they were
/// computed in (see the module's invariant).
#[derive(Clone, Debug, Default)]
pub struct BandCache {
    /// The start of the bucket period the bands hold for.
    pub period_start: Option<i64>,
    pub bands: HashMap<Labels, Band>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket of two samples of `value`.
    fn bucket(start_ms: i64, value: f64) -> Bucket {
        Bucket {
            start_ms,
            last_ms: start_ms,
            min: value,
            max: value,
            sum: value * 2.0,
            count: 2.0,
            last: value,
            scaled_m2: Some(0.0),
        }
    }

    /// The minute buckets of `samples`, one sample every 10 s, as the store
    /// folds them.
    fn minute_buckets(samples: &[f64]) -> Vec<Bucket> {
        crate::store::rollup::fold_buckets(
            samples
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 * 10_000, *v)),
            60_000,
        )
    }

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn seasonal_quantile_reads_the_same_hour_of_each_day() {
        let method = Method::SeasonalQuantile {
            quantile: 0.5,
            season_ms: DAY,
            history_ms: 3 * DAY,
            tolerance: 0.1,
        };
        let ts = 10 * DAY + 14 * HOUR + 1_234;
        let (tier, start, end) = history(&method, ts);
        assert_eq!(
            (tier, start, end),
            (
                Resolution::Hour,
                7 * DAY + 14 * HOUR,
                10 * DAY + 14 * HOUR - 1
            )
        );
        // Hour 14 of the three days before holds 10, 30, 20; other hours 99.
        let mut buckets: Vec<Bucket> = (start / HOUR..=end / HOUR)
            .map(|h| bucket(h * HOUR, 99.0))
            .collect();
        for (day, value) in [(7, 10.0), (8, 30.0), (9, 20.0)] {
            let at = buckets
                .iter()
                .position(|b| b.start_ms == day * DAY + 14 * HOUR)
                .unwrap();
            buckets[at] = bucket(day * DAY + 14 * HOUR, value);
        }
        let band = band(&method, &buckets, ts).unwrap();
        assert_eq!(band.center, 20.0);
        assert!((band.upper - 22.0).abs() < 1e-9 && (band.lower - 18.0).abs() < 1e-9);
        assert!((band.deviation(24.0) - 2.0).abs() < 1e-9);
        assert!(
            super::band(&method, &buckets[..20], ts).is_none(),
            "one day of three"
        );
    }

    #[test]
    fn robust_bands_spread_by_mad_and_stddev() {
        let values = [10.0, 11.0, 9.0, 10.0, 50.0];
        let buckets: Vec<Bucket> = values
            .iter()
            .enumerate()
            .map(|(i, v)| bucket(i as i64 * 60_000, *v))
            .collect();
        let mad = Method::Robust {
            spread: Spread::Mad,
            window_ms: 5 * 60_000,
            k: 2.0,
        };
        let band = band(&mad, &buckets, 5 * 60_000).unwrap();
        // Median 10, deviations 0 1 1 0 40: MAD 1; the outlier barely moves it.
        assert_eq!(band.center, 10.0);
        assert!((band.upper - (10.0 + 2.0 * MAD_TO_STDDEV)).abs() < 1e-9);
        let stddev = Method::Robust {
            spread: Spread::Stddev,
            window_ms: 5 * 60_000,
            k: 1.0,
        };
        let band = super::band(&stddev, &buckets, 5 * 60_000).unwrap();
        assert_eq!(band.center, 18.0);
        assert!(
            (band.upper - 18.0 - 256.4f64.sqrt()).abs() < 1e-9,
            "{band:?}"
        );
    }

    #[test]
    fn stddev_is_the_samples_not_the_bucket_means() {
        let stddev = Method::Robust {
            spread: Spread::Stddev,
            window_ms: 10 * 60_000,
            k: 1.0,
        };
        // Ten minutes, every minute's mean 100: one series steady, one
        // swinging ±50 inside each minute, one a ramp of counter-like
        // values near 1e12.
        let steady = vec![100.0; 60];
        let noisy: Vec<f64> = (0..60)
            .map(|i| 100.0 + if i % 2 == 0 { 50.0 } else { -50.0 })
            .collect();
        let ramp: Vec<f64> = (0..60).map(|i| 1e12 + (i * 37 % 101) as f64).collect();
        let at = 10 * 60_000;
        let narrow = band(&stddev, &minute_buckets(&steady), at).unwrap();
        let wide = band(&stddev, &minute_buckets(&noisy), at).unwrap();
        assert_eq!((narrow.center, wide.center), (100.0, 100.0));
        assert_eq!(narrow.upper, 100.0);
        assert!((wide.upper - 150.0).abs() < 1e-12, "{wide:?}");
        // The same as from the samples, to float rounding.
        for samples in [&noisy, &ramp] {
            let n = samples.len() as f64;
            let mean = samples.iter().sum::<f64>() / n;
            let want = (samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            // (Not from the band: near 1e12 its edges round to 1e-4.)
            let (center, spread) = pooled_mean_and_stddev(&minute_buckets(samples)).unwrap();
            assert!((spread - want).abs() <= 1e-9 * want, "{spread} {want}");
            assert!((center - mean).abs() <= 1e-15 * mean);
        }
        // Buckets stored before M2 was kept count with the spread of their
        // means alone: the noisy series' minutes all have mean 100.
        let unknown: Vec<Bucket> = minute_buckets(&noisy)
            .into_iter()
            .map(|b| Bucket {
                scaled_m2: None,
                ..b
            })
            .collect();
        assert_eq!(band(&stddev, &unknown, at).unwrap().upper, 100.0);
    }
}
