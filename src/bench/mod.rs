//! `sonde bench ...`: measurements that compare sonde with its peers on this
//! machine, in one run, so the figures in BENCHMARKS.md are ratios taken
//! under the same conditions.

pub mod syscalls;

/// The median of some measurements (the mean of the middle two for an even
/// count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The calling thread's CPU time in nanoseconds.
pub fn thread_cpu_ns() -> f64 {
    crate::collect::thread_cpu_time().as_nanos() as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(super::median(&[]), 0.0);
    }
}
