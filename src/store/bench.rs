//! `sonde bench store`: the storage engine on realistic data, beside
//! Prometheus's TSDB on the same samples.
//!
//! The data: the series recorded from a real sonde run (node and eBPF
//! collectors at a 10 s interval, timestamps stored exactly), committed as a
//! small fixture (`bench_fixture.bin`: snappy-compressed, each series' label
//! set and its recorded samples as one XOR chunk). The benchmark takes a
//! seeded uniform sample of 1,000 of them (`--series`), so each metric
//! family weighs what it weighs in a real store. A seeded generator extends
//! each series to 24 hours: each round starts on the 10 s schedule plus one
//! of the recorded rounds' real offsets from it, and carries the timestamp
//! the collection loop gives it (its tick when it started within 2 ms of it,
//! else its real instant: see [`crate::collect::schedule`]); counters grow by increments drawn
//! from their recorded ones, gauges replay their recorded sequence back and
//! forth, constants stay constant. The same seed gives the same samples.
//!
//! Measured: bytes per sample on disk (the whole database file after a
//! checkpoint, rollup tiers and indexes included, and its parts), ingest
//! through `Store::append` one round per call on one thread, reads through
//! `Store::select`, and the head's memory per series after an hour and
//! after [`HEAD_HOURS`] (the allocator's bytes in use: the table and every
//! block a series owns, with the allocator's own header of each). Prometheus: `promtool tsdb create-blocks-from
//! openmetrics` on the same samples, bytes of the resulting block.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::codec::{ByteReader, ByteWriter};
use super::head::HeadSeries;
use super::rng::Rng;
use super::{xor, Head, Store, StoreOptions};
use crate::collect::schedule::Schedule;
use crate::collect::thread_cpu_time;
use crate::model::{format_float, Labels, MatchOp, Matcher, Sample, METRIC_NAME};

/// The recording the generator extends (see `Store` docs above and
/// [`record_fixture`]).
const FIXTURE: &[u8] = include_bytes!("bench_fixture.bin");
const FIXTURE_MAGIC: &[u8] = b"sonde-bench-fixture-1";
/// Series in the benchmark, unless asked otherwise.
pub const SERIES: usize = 1000;
/// Seed of the uniform sample of the recorded series.
const SAMPLE_SEED: u64 = 1;
const INTERVAL_MS: i64 = 10_000;
/// Hours of samples after which the head's memory is measured a second
/// time: long enough that each series' hour-tier chunk holds more than a
/// day of buckets, as in a sonde that has run for days.
const HEAD_HOURS: u32 = 30;
/// Start of the generated day: 2026-01-05T00:00:00Z, so Prometheus puts the
/// whole day in one 24 h block.
const START_MS: i64 = 1_767_571_200_000;

pub struct BenchOptions {
    /// Where the databases go (a fresh temporary directory if None).
    pub dir: Option<PathBuf>,
    /// Hours of data to generate.
    pub hours: u32,
    /// Recorded series to use (a seeded uniform sample); all if `None`.
    pub series: Option<usize>,
    /// Also measure Prometheus (needs `promtool` on PATH).
    pub prometheus: bool,
}

/// One recorded series and how the generator extends it.
struct Model {
    labels: Labels,
    recorded: Vec<f64>,
    kind: Kind,
}

enum Kind {
    Constant,
    /// Monotonic: increments drawn from the recorded ones.
    Counter(Vec<f64>),
    /// Replays the recorded values forth and back.
    Gauge,
}

/// Extends one series round by round.
struct Generator<'a> {
    model: &'a Model,
    rng: Rng,
    round: usize,
    value: f64,
}

impl Generator<'_> {
    fn new(model: &Model, seed: u64) -> Generator<'_> {
        Generator {
            model,
            rng: Rng::new(seed),
            round: 0,
            value: model.recorded[0],
        }
    }

    fn next_value(&mut self) -> f64 {
        let n = self.model.recorded.len();
        let v = match &self.model.kind {
            Kind::Constant => self.value,
            Kind::Counter(increments) => {
                if self.round > 0 {
                    self.value += increments[self.rng.below(increments.len() as u64) as usize];
                }
                self.value
            }
            Kind::Gauge => {
                let period = 2 * n - 2;
                let i = self.round % period;
                self.model.recorded[if i < n { i } else { period - i }]
            }
        };
        self.round += 1;
        v
    }
}

/// The generated data set: the models and the rounds.
struct DataSet {
    models: Vec<Model>,
    /// When each round started: its tick plus a recorded round's lateness.
    started: Vec<i64>,
    /// The timestamp each round carries, as the collection loop stamps it.
    timestamps: Vec<i64>,
}

impl DataSet {
    /// `series` of the recorded ones (all if `None`), a seeded uniform
    /// sample: every recorded series has the same chance, whatever its
    /// metric family, so the mix is the one a real sonde stores.
    fn generate(hours: u32, series: Option<usize>) -> anyhow::Result<DataSet> {
        let (mut models, offsets) = load_fixture(FIXTURE)?;
        if let Some(n) = series {
            if n == 0 || n > models.len() {
                bail!(
                    "the recording has {} series: ask for 1 to {0}",
                    models.len()
                );
            }
            let mut rng = Rng::new(SAMPLE_SEED);
            for i in 0..n {
                let j = i + rng.below((models.len() - i) as u64) as usize;
                models.swap(i, j);
            }
            models.truncate(n);
            models.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        let rounds = hours as usize * 3_600_000 / INTERVAL_MS as usize;
        let mut rng = Rng::new(42);
        let started: Vec<i64> = (0..rounds)
            .map(|k| {
                START_MS
                    + k as i64 * INTERVAL_MS
                    + offsets[rng.below(offsets.len() as u64) as usize]
            })
            .collect();
        let millis = |t: i64| Duration::from_millis(t as u64);
        let mut schedule = Schedule::new(millis(INTERVAL_MS), millis(START_MS));
        let timestamps = started.iter().map(|&t| schedule.stamp(millis(t))).collect();
        Ok(DataSet {
            models,
            started,
            timestamps,
        })
    }

    /// A generator per series, each with its own seed.
    fn generators(&self) -> Vec<Generator<'_>> {
        self.models
            .iter()
            .enumerate()
            .map(|(i, m)| Generator::new(m, i as u64))
            .collect()
    }

    fn samples(&self) -> usize {
        self.models.len() * self.timestamps.len()
    }

    /// One series' samples at the given round timestamps (`timestamps` or
    /// `started`), with the values the ingest loop generates.
    fn series(&self, index: usize, rounds: &[i64]) -> Vec<(i64, f64)> {
        let mut generator = Generator::new(&self.models[index], index as u64);
        rounds
            .iter()
            .map(|&t| (t, generator.next_value()))
            .collect()
    }
}

/// Reads the fixture: the models and the recorded rounds' offsets (ms) from
/// the 10 s schedule.
fn load_fixture(fixture: &[u8]) -> anyhow::Result<(Vec<Model>, Vec<i64>)> {
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(fixture)
        .context("the benchmark fixture is not snappy-compressed")?;
    let bad = |e: xor::CorruptChunk| anyhow::anyhow!("corrupt benchmark fixture: {e}");
    let mut r = ByteReader::new(&bytes);
    if r.bytes().map_err(bad)? != FIXTURE_MAGIC {
        bail!("the benchmark fixture has an unknown format");
    }
    let rounds = r.uvarint().map_err(bad)? as usize;
    let mut offsets = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        offsets.push(r.i64().map_err(bad)?);
    }
    let count = r.uvarint().map_err(bad)? as usize;
    let mut models = Vec::with_capacity(count);
    for _ in 0..count {
        let labels = super::decode_labels(
            std::str::from_utf8(r.bytes().map_err(bad)?).context("fixture labels")?,
        )?;
        let recorded: Vec<f64> = xor::decode(r.bytes().map_err(bad)?)
            .map_err(bad)?
            .into_iter()
            .map(|s| s.1)
            .collect();
        if recorded.len() < 2 || offsets.is_empty() {
            bail!("the benchmark fixture has a series with fewer than 2 samples");
        }
        let increments: Vec<f64> = recorded.windows(2).map(|w| w[1] - w[0]).collect();
        let kind = if increments.iter().all(|&d| d == 0.0) {
            Kind::Constant
        } else if increments.iter().all(|&d| d >= 0.0) {
            Kind::Counter(increments)
        } else {
            Kind::Gauge
        };
        models.push(Model {
            labels,
            recorded,
            kind,
        });
    }
    Ok((models, offsets))
}

/// Builds the fixture from the database of a sonde that ran at a 10 s
/// interval: every series present in each round after the warm-up, and the
/// rounds' offsets from the schedule.
///
/// The first quarter of the rounds is the warm-up: collectors report a
/// series only once it has something to count (a syscall first seen, a
/// histogram bucket first hit), so most series appear a few rounds late and
/// then stay; requiring them from the first round would keep mostly the
/// node collectors' series. Series that come and go later (short-lived
/// processes) cannot be extended to a day and are left out.
pub fn record_fixture(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let store = Store::open(data_dir)?;
    let everything = Matcher::new(MatchOp::Regex, METRIC_NAME, ".+").expect("valid regex");
    let recorded = store.select(&[everything], i64::MIN, i64::MAX)?;
    let seen = recorded.len();
    // Rounds: the timestamps of the longest series.
    let rounds: Vec<i64> = recorded
        .iter()
        .max_by_key(|s| s.samples.len())
        .map(|s| s.samples.iter().map(|x| x.0).collect())
        .unwrap_or_default();
    let steady = &rounds[rounds.len() / 4..];
    if steady.len() < 2 {
        bail!(
            "{} holds {} rounds, too few to record from: run sonde for a few minutes",
            data_dir.display(),
            rounds.len()
        );
    }
    let mut pool: Vec<super::SeriesSamples> = recorded
        .into_iter()
        .filter_map(|mut series| {
            series.samples.retain(|s| s.0 >= steady[0]);
            let times = series.samples.iter().map(|s| s.0);
            times.eq(steady.iter().copied()).then_some(series)
        })
        .collect();
    if pool.len() < SERIES {
        bail!(
            "{} has {} series present in the last {} rounds, the benchmark needs {SERIES}",
            data_dir.display(),
            pool.len(),
            steady.len()
        );
    }
    pool.sort_by(|a, b| a.labels.cmp(&b.labels));
    tracing::info!(
        "{} of the {seen} series recorded are present in each of the last {} rounds",
        pool.len(),
        steady.len()
    );
    let start = steady[0];
    let offsets: Vec<i64> = steady
        .iter()
        .enumerate()
        .map(|(k, &t)| t - start - k as i64 * INTERVAL_MS)
        .collect();
    let base = offsets.iter().copied().min().unwrap_or(0);
    let mut w = ByteWriter::default();
    w.bytes(FIXTURE_MAGIC);
    w.uvarint(offsets.len() as u64);
    for o in &offsets {
        w.i64(o - base);
    }
    w.uvarint(pool.len() as u64);
    for series in &pool {
        w.bytes(super::encode_labels(&series.labels).as_bytes());
        w.bytes(&xor::encode(&series.samples));
    }
    Ok(snap::raw::Encoder::new().compress_vec(&w.into_inner())?)
}

/// Runs the benchmark; returns the figures as one JSON object.
pub fn run(options: &BenchOptions) -> anyhow::Result<serde_json::Value> {
    let data = DataSet::generate(options.hours, options.series)?;
    let root = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("sonde-bench-store-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let result = measure(&data, &root, options.prometheus);
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    let mut figures = result?;
    figures["head_bytes_per_series"] = head_memory(options.series)?;
    Ok(figures)
}

/// The head's memory per series, its samples fed round by round as the
/// store feeds them (so the allocator interleaves every series' blocks as
/// it does in a running sonde): the allocator's bytes in use, table
/// included, after one hour and after [`HEAD_HOURS`], and the size of a
/// series' fixed part (what it owns besides is in blocks of its own). Each
/// is taken ten minutes past the hour, with the open raw chunk half full (a
/// chunk is 20 minutes at 10 s), not just after one left the head.
fn head_memory(series: Option<usize>) -> anyhow::Result<serde_json::Value> {
    let data = DataSet::generate(HEAD_HOURS + 1, series)?;
    let mut generators = data.generators();
    let rounds_per_hour = (3_600_000 / INTERVAL_MS) as usize;
    let half_a_chunk = usize::from(xor::SAMPLES_PER_CHUNK / 2);
    let last_round = HEAD_HOURS as usize * rounds_per_hour + half_a_chunk;
    let mut finished = Vec::with_capacity(4);
    let mut after_hours = serde_json::Map::new();
    let before = heap_in_use();
    let mut head = Head::default();
    for (round, &t) in data.timestamps[..last_round].iter().enumerate() {
        for (id, generator) in (1..).zip(&mut generators) {
            head.entry(id)
                .or_insert_with(|| Box::new(HeadSeries::new(i64::MIN)))
                .append(t, generator.next_value(), &mut finished);
            finished.clear();
        }
        let hours = (round + 1) / rounds_per_hour;
        if (round + 1) % rounds_per_hour == half_a_chunk
            && [1, HEAD_HOURS as usize].contains(&hours)
        {
            let bytes = heap_in_use().saturating_sub(before) as f64 / head.len() as f64;
            after_hours.insert(format!("{hours}h"), bytes.round().into());
        }
    }
    after_hours.insert(
        "size_of_series".into(),
        std::mem::size_of::<HeadSeries>().into(),
    );
    Ok(after_hours.into())
}

/// Bytes the allocator has handed out and not had back (its own header of
/// each block included), in its arenas and in blocks mapped on their own.
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

fn measure(data: &DataSet, root: &Path, prometheus: bool) -> anyhow::Result<serde_json::Value> {
    let samples = data.samples();
    let mut store = Store::open_with(&root.join("sonde"), StoreOptions::default())?;

    // Ingest: one round per append, as the collection loop does.
    let mut generators = data.generators();
    let mut round: Vec<Sample> = data
        .models
        .iter()
        .map(|m| Sample {
            labels: m.labels.clone(),
            timestamp_ms: 0,
            value: 0.0,
        })
        .collect();
    // Timed in this thread's CPU time: one core's work, whatever else the
    // machine runs; wall time is reported beside it.
    let mut ingest = Duration::ZERO;
    let mut ingest_wall = Duration::ZERO;
    for &t in &data.timestamps {
        for (sample, generator) in round.iter_mut().zip(&mut generators) {
            sample.timestamp_ms = t;
            sample.value = generator.next_value();
        }
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        store.append(&round)?;
        ingest += thread_cpu_time().saturating_sub(cpu);
        ingest_wall += wall.elapsed();
    }
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    store.checkpoint()?;
    store.maintain()?;
    ingest += thread_cpu_time().saturating_sub(cpu);
    ingest_wall += wall.elapsed();
    let appended = store.samples_appended() as usize;
    if appended != samples {
        bail!("{samples} samples generated but {appended} stored");
    }
    let file_bytes = store.size_on_disk();
    // Pages per table and index, when SQLite has the dbstat table.
    let pages: Option<serde_json::Map<String, serde_json::Value>> = store
        .conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .map(|row| row.map(|(n, b)| (n, serde_json::Value::from(b))))
                .collect()
        })
        .ok();
    let rollup_bytes: f64 =
        store
            .conn
            .query_row("SELECT total(length(data)) FROM rollups", [], |r| r.get(0))?;
    // The chunks' payload: packed rows whole; of XOR runs (written before
    // packed rows) the XOR chunks alone, without each one's length and span.
    let mut raw_bytes = 0usize;
    {
        let mut stmt = store
            .conn
            .prepare("SELECT chunk_count, packed, data FROM chunks")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let data = row.get_ref(2)?.as_blob()?;
            raw_bytes += match (row.get::<_, i64>(0)?, row.get::<_, bool>(1)?) {
                (1, _) | (_, true) => data.len(),
                _ => super::codec::decode_run(data)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .iter()
                    .map(|c| c.2.len())
                    .sum(),
            };
        }
    }
    let column_bytes: f64 =
        store
            .conn
            .query_row("SELECT total(length(data)) FROM timestamps", [], |r| {
                r.get(0)
            })?;

    // Reads: one series over the whole day, every series over the last hour.
    let end = *data.timestamps.last().expect("at least one round");
    let one_series: Vec<Matcher> = data.models[0]
        .labels
        .iter()
        .map(|(n, v)| Matcher::equal(n, v))
        .collect();
    let everything = [Matcher::new(MatchOp::Regex, METRIC_NAME, ".+").expect("valid regex")];
    let first = data.timestamps[0];
    let read_day = read_rate(1, || select(&store, &one_series, first, end))?;
    let n = data.models.len();
    let hour_ago = end - 3_600_000 + 1;
    let read_hour = read_rate(n, || select(&store, &everything, hour_ago, end))?;
    let chunks_hour = read_rate(n, || select_chunks(&store, &everything, hour_ago, end))?;
    let stored = store.select(&everything, i64::MIN, i64::MAX)?;
    drop(store);
    let off_grid = data
        .timestamps
        .iter()
        .filter(|&&t| (t - START_MS) % INTERVAL_MS != 0)
        .count();

    let mut figures = serde_json::json!({
        "series": data.models.len(),
        "samples": samples,
        "hours": data.timestamps.len() as f64 * INTERVAL_MS as f64 / 3_600_000.0,
        "rounds_off_the_grid": off_grid as f64 / data.timestamps.len() as f64,
        "bytes_per_sample": file_bytes as f64 / samples as f64,
        "file_bytes": file_bytes,
        "raw_chunk_bytes_per_sample": raw_bytes as f64 / samples as f64,
        "timestamp_column_bytes_per_sample": column_bytes / samples as f64,
        "rollup_bytes_per_sample": rollup_bytes / samples as f64,
        "bytes_by_table": pages,
        "ingest_samples_per_sec": samples as f64 / ingest.as_secs_f64(),
        "ingest_samples_per_sec_wall": samples as f64 / ingest_wall.as_secs_f64(),
        "read_samples_per_sec": {
            "1_series_24h": read_day,
            format!("{}_series_1h", data.models.len()): read_hour,
        },
        "read_xor_chunks_samples_per_sec": {
            format!("{}_series_1h", data.models.len()): chunks_hour,
        },
    });
    if prometheus {
        let as_stored = stored.into_iter().map(|s| (s.labels, s.samples));
        let as_stored = promtool_bytes(root, "stored", as_stored)?;
        let at_start = (0..data.models.len())
            .map(|i| (data.models[i].labels.clone(), data.series(i, &data.started)));
        let at_start = promtool_bytes(root, "started", at_start)?;
        figures["prometheus"] = serde_json::json!({
            "version": promtool_version(),
            "bytes_per_sample": as_stored as f64 / samples as f64,
            "bytes_per_sample_rounds_at_their_start": at_start as f64 / samples as f64,
        });
    }
    Ok(figures)
}

/// Samples per second (of this thread's CPU time) `read` hands out,
/// repeated until at least a second of CPU time has passed; `read` returns
/// how many series and samples it selected.
fn read_rate(
    expect_series: usize,
    read: impl Fn() -> anyhow::Result<(usize, usize)>,
) -> anyhow::Result<f64> {
    let started = thread_cpu_time();
    let mut decoded = 0usize;
    while thread_cpu_time().saturating_sub(started) < Duration::from_secs(1) {
        let (series, samples) = read()?;
        if series != expect_series {
            bail!("read selected {series} series, expected {expect_series}");
        }
        decoded += samples;
    }
    Ok(decoded as f64 / thread_cpu_time().saturating_sub(started).as_secs_f64())
}

/// `Store::select` as a read for [`read_rate`].
fn select(
    store: &Store,
    matchers: &[Matcher],
    start: i64,
    end: i64,
) -> anyhow::Result<(usize, usize)> {
    let selected = store.select(matchers, start, end)?;
    Ok((
        selected.len(),
        selected.iter().map(|s| s.samples.len()).sum(),
    ))
}

/// `Store::select_chunks` as a read for [`read_rate`]: what remote read's
/// STREAMED_XOR_CHUNKS answer sends, XOR chunks whole.
fn select_chunks(
    store: &Store,
    matchers: &[Matcher],
    start: i64,
    end: i64,
) -> anyhow::Result<(usize, usize)> {
    let selected = store.select_chunks(matchers, start, end)?;
    let samples = selected
        .iter()
        .flat_map(|s| &s.chunks)
        .map(|c| xor::XorIter::new(&c.data).map_or(0, |chunk| usize::from(chunk.len())))
        .sum();
    Ok((selected.len(), samples))
}

/// A series' labels and samples.
type SeriesData = (Labels, Vec<(i64, f64)>);

/// Writes `series` as OpenMetrics text, has promtool build a 24 h block
/// from it, and returns the block's bytes on disk.
fn promtool_bytes(
    root: &Path,
    name: &str,
    series: impl Iterator<Item = SeriesData>,
) -> anyhow::Result<u64> {
    // OpenMetrics wants each metric family's lines together.
    let mut families: BTreeMap<String, Vec<SeriesData>> = BTreeMap::new();
    for (labels, samples) in series {
        families
            .entry(labels.metric_name().to_string())
            .or_default()
            .push((labels, samples));
    }
    let text = root.join(format!("{name}.om"));
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&text)?);
        for (family, members) in &families {
            for (labels, samples) in members {
                let pairs: Vec<String> = labels
                    .iter()
                    .filter(|(n, _)| *n != METRIC_NAME)
                    .map(|(n, v)| {
                        let v = v
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n");
                        format!("{n}=\"{v}\"")
                    })
                    .collect();
                let head = format!("{family}{{{}}}", pairs.join(","));
                for &(t, v) in samples {
                    writeln!(
                        out,
                        "{head} {} {}.{:03}",
                        format_float(v),
                        t.div_euclid(1000),
                        t.rem_euclid(1000)
                    )?;
                }
            }
        }
        writeln!(out, "# EOF")?;
        out.flush()?;
    }
    let blocks = root.join(format!("prometheus-{name}"));
    let output = std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h"])
        .arg(&text)
        .arg(&blocks)
        .output()
        .context("cannot run promtool: install Prometheus (Debian package prometheus) or pass --no-prometheus")?;
    if !output.status.success() {
        bail!(
            "promtool failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_file(&text);
    dir_bytes(&blocks)
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn promtool_version() -> String {
    std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_loads_and_generation_is_deterministic() {
        let (models, offsets) = load_fixture(FIXTURE).unwrap();
        assert!(models.len() >= SERIES);
        assert!(!offsets.is_empty());
        let data = DataSet::generate(1, Some(SERIES)).unwrap();
        assert_eq!(data.models.len(), SERIES);
        assert_eq!(data.timestamps.len(), 360);
        let again = DataSet::generate(1, Some(SERIES)).unwrap();
        assert!(data
            .models
            .iter()
            .zip(&again.models)
            .all(|(a, b)| a.labels == b.labels));
        assert_eq!(
            data.series(7, &data.timestamps),
            data.series(7, &data.timestamps)
        );
        let late = data.timestamps.iter().zip(&data.started);
        assert!(late.clone().all(|(t, s)| t <= s && s - t <= 50));
        let kinds = |f: fn(&Kind) -> bool| models.iter().filter(|m| f(&m.kind)).count();
        assert!(kinds(|k| matches!(k, Kind::Counter(_))) > 0);
        assert!(kinds(|k| matches!(k, Kind::Gauge)) > 0);
    }
}
