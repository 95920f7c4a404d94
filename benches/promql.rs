//! query_range latency of the PromQL corpus (tests/promql/) over 24 hours of
//! data, sonde beside Prometheus 2.42 on the same samples in the same run.
//! Both receive the data by remote write; sonde is served in-process with
//! no collection running, Prometheus is the Debian package's binary. Each
//! query runs as Grafana would ask for a day (step 60 s) once to warm up,
//! then `RUNS` times alternating between the two; the table shows the
//! medians and sonde's ratio, then the totals and the geometric mean.
//!
//!     cargo bench --bench promql        # with the Makefile's flags, see BENCHMARKS.md

#[path = "../tests/common/mod.rs"]
mod common;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::prometheus::{encode, Prometheus};
use common::promql::{corpus, feed, generate, SCRAPE_MS};
use sonde::model::Scrape;
use sonde::serve::{router, Shared};
use sonde::store::Store;

const DAY_S: i64 = 24 * 3600;
const STEP_S: i64 = 60;
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let now_s = sonde::collect::now_ms() / 1000;
    let t0 = (now_s - DAY_S - 120) / 60 * 60 * 1000;
    let scrapes = DAY_S * 1000 / SCRAPE_MS;
    let data = generate(t0, scrapes);
    let samples: usize = data.iter().map(|g| g.samples.len()).sum();

    let dir = common::TempDir::new("bench-promql");
    let shared = Arc::new(Shared {
        latest: RwLock::new(Arc::new(Scrape::default())),
        store: Mutex::new(Store::open(&dir.0)?),
        notifier: None,
    });
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let sonde = format!("http://{}", listener.local_addr()?);
    runtime.spawn(axum::serve(listener, router(shared)).into_future());
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 15s\n",
        &["--web.enable-remote-write-receiver"],
    );

    let started = Instant::now();
    feed(&sonde, &data, t0, scrapes);
    let sonde_ingest = started.elapsed();
    let started = Instant::now();
    feed(&prometheus.base_url, &data, t0, scrapes);
    println!(
        "{samples} samples of {} series (24 h at 15 s) written in {:.1} s to sonde, {:.1} s to Prometheus",
        data.len(),
        sonde_ingest.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let (start, end) = (t0 / 1000 + 300, now_s / STEP_S * STEP_S);
    // Grafana's $__rate_interval for a day at a 60 s step and 15 s scrapes.
    let queries = corpus("75s");
    println!("query_range over 24 h, step {STEP_S}s, median of {RUNS} (ms)");
    println!("{:>10} {:>10} {:>7}  query", "Prometheus", "sonde", "ratio");
    let (mut total_prom, mut total_sonde, mut log_ratios) = (0.0, 0.0, 0.0);
    for (_, query) in &queries {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={STEP_S}",
            encode(query)
        );
        let (prom_status, _) = timed(&prometheus.base_url, &path)?;
        let (sonde_status, _) = timed(&sonde, &path)?;
        anyhow::ensure!(
            (prom_status == 200) == (sonde_status == 200),
            "{query}: Prometheus answered {prom_status}, sonde {sonde_status}"
        );
        let (mut prom, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            prom.push(timed(&prometheus.base_url, &path)?.1);
            ours.push(timed(&sonde, &path)?.1);
        }
        let (p, s) = (median(&mut prom), median(&mut ours));
        total_prom += p;
        total_sonde += s;
        log_ratios += (s / p).ln();
        println!("{p:>10.2} {s:>10.2} {:>7.2}  {query}", s / p);
    }
    println!(
        "{total_prom:>10.1} {total_sonde:>10.1} {:>7.2}  total over {} queries (geometric mean of ratios {:.2})",
        total_sonde / total_prom,
        queries.len(),
        (log_ratios / queries.len() as f64).exp()
    );
    Ok(())
}

/// One GET: (status, milliseconds to the last byte).
fn timed(base: &str, path: &str) -> anyhow::Result<(u16, f64)> {
    let started = Instant::now();
    let (status, _) = common::get(&format!("{base}{path}")).map_err(anyhow::Error::msg)?;
    Ok((status, ms(started.elapsed())))
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
