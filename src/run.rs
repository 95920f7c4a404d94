//! `sonde run`: wires the stages together. A collection thread runs every
//! collector once per interval, on the ticks of a [`Schedule`], and hands
//! the round to an ingest thread, which appends it to the store (which
//! queues what it stored for remote write in the same transaction) and
//! publishes it for `/metrics`; sender threads ship the queue; the HTTP
//! server answers from the store and that last round.
//!
//! Collecting and storing run on threads of their own so that their memory
//! comes from separate allocator arenas: the collectors' scratch, which
//! grows with a churn of processes, is not interleaved with the store's
//! long-lived state, and is given back once the churn is forgotten
//! ([`crate::memory`]).
//!
//! A rules thread evaluates the alerting and recording rules over the
//! store ([`crate::alert`]); SIGHUP reloads them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::service::Alerting;
use crate::collect::schedule::Schedule;
use crate::collect::{self, Collection};
use crate::config::Config;
use crate::model::{Family, Scrape};
use crate::serve::{self, Shared};
use crate::ship::{self, send::Senders};
use crate::store::Store;

/// Runs sonde with `config`, read from `config_path` when there is one (read
/// again on SIGHUP and `POST /-/reload`).
pub fn run(config: Config, config_path: Option<&Path>) -> anyhow::Result<()> {
    crate::memory::tune_allocator();
    // A bad certificate or key refuses the start before anything is loaded.
    let tls = serve::guard::tls::server_config(&config.server)?;
    let store = Store::open_with(&config.storage.path, config.store_options())?;
    tracing::info!("store: {}", config.storage.database_file().display());

    if let Err(err) = crate::doctor::pid_namespace() {
        tracing::warn!("pid namespace: {err:#}");
    }
    let mut collectors = collect::node::collectors();
    collectors.push(Box::new(collect::processes::Processes::new()));
    let mut bpf = collect::bpf::collectors(&config.collect);
    let startup = serve::dashboard::status::Startup::new(&config, &bpf);
    collectors.extend(std::mem::take(&mut bpf.collectors));
    let max_series = config.collect.max_series_per_metric;
    let programs_reload = collect::programs::Reload::default();
    collectors.push(collect::programs::collector(
        &config.programs,
        max_series,
        programs_reload.clone(),
    ));
    let keep = crate::privilege::Keep {
        restores_sysctl: bpf.restores_sysctl,
        loads_later: collect::programs::configured(&config.programs)
            || collect::bpf::http::attaches_later(),
    };
    // Before any thread starts, so that every thread runs without them.
    match crate::privilege::drop_after_load(keep) {
        Ok(dropped) if dropped.is_empty() => {}
        Ok(dropped) => tracing::info!(
            "capabilities: dropped {} now that the BPF programs are attached",
            dropped.join(", ")
        ),
        Err(err) => tracing::warn!("capabilities: {err:#}; running with them all"),
    }
    let containers = &config.collect.containers;
    if containers.enabled {
        let max_cgroups = containers.max_cgroups;
        collectors.push(Box::new(collect::containers::Containers::new(max_cgroups)));
    }
    let collection =
        Collection::new(collectors).with_max_series(config.collect.max_series_per_metric);
    for name in collection.names() {
        tracing::info!("collector {name}: started");
    }

    let db_file = config.storage.database_file();
    let remotes: Vec<&str> = config.remote_write.iter().map(|r| r.name()).collect();
    ship::queue::configure(&db_file, &remotes)?;
    let senders = Arc::new(Senders::start(&config.remote_write, &db_file)?);

    let mut shared = Shared::new(store);
    shared.startup = Some(startup);
    let mut alerting = Alerting::start(&config, config_path)?;
    alerting.programs = Some(programs_reload);
    shared.notifier = Some(alerting.notifier.clone());
    shared.alerting = Some(alerting);
    let shared = Arc::new(shared);
    let stop = Arc::new(AtomicBool::new(false));
    // One round waits while the previous one is stored; a slower store
    // holds the collectors back rather than piling rounds up.
    let (rounds, collected) = std::sync::mpsc::sync_channel(1);
    let collecting = {
        let stop = stop.clone();
        let interval = config.collect.interval;
        std::thread::Builder::new()
            .name("collect".into())
            .spawn(move || collect_loop(collection, rounds, interval, &stop))?
    };
    let ingesting = {
        let shared = shared.clone();
        let senders = senders.clone();
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || ingest_loop(collected, &shared, &senders))?
    };

    let evaluating = {
        let shared = shared.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || {
                if let Some(alerting) = &shared.alerting {
                    alerting.run(&shared.store, &stop);
                }
            })?
    };

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.spawn(reload_on_sighup(shared.clone()));
    let served = runtime.block_on(serve::guard::serve(
        &config.server,
        tls,
        serve::router(shared.clone()),
        shutdown_signal(),
    ));
    stop.store(true, Ordering::Relaxed);
    senders.stop();
    collecting.thread().unpark();
    if let Some(alerting) = &shared.alerting {
        alerting.rules.wake();
    }
    let _ = evaluating.join();
    let _ = collecting.join();
    let _ = ingesting.join();
    tracing::info!("stopped");
    served
}

/// Runs the collectors on the schedule until `stop`, handing each round on.
fn collect_loop(
    mut collection: Collection,
    rounds: SyncSender<Scrape>,
    interval: Duration,
    stop: &AtomicBool,
) {
    let mut schedule = Schedule::new(interval, collect::since_epoch());
    while !stop.load(Ordering::Relaxed) {
        let wait = schedule.wait(collect::since_epoch());
        if !wait.is_zero() {
            std::thread::park_timeout(wait);
            continue;
        }
        let scrape = collection.collect(schedule.stamp(collect::since_epoch()));
        if rounds.send(scrape).is_err() {
            return;
        }
    }
}

/// How long after the first round the startup pages are released
/// ([`crate::memory::release_startup_pages`]).
const RELEASE_AFTER: Duration = Duration::from_secs(10);

/// Stores and publishes every round collected, until collection stops.
fn ingest_loop(rounds: Receiver<Scrape>, shared: &Shared, senders: &Senders) {
    // A disk that stays full or read-only fails every round: say so once a
    // minute (the store counts every failure in its self-metrics).
    let mut error_logged: Option<Instant> = None;
    let mut give_back = crate::memory::GiveBack::from_now();
    // When the first round was stored.
    let mut first_round: Option<Instant> = None;
    let mut released = false;
    for mut scrape in rounds {
        // sonde's own metrics are stored with the round, as a Prometheus
        // scraping sonde would store them: the shipped rules on the store,
        // remote write and alerting query them. They tell the state as the
        // round ends, so a failure to store this round shows in the next.
        let store_metrics = shared.store.lock().expect("lock poisoned").families();
        scrape.families.extend(self_metrics());
        scrape.families.extend(store_metrics);
        scrape.families.extend(senders.families());
        if let Some(alerting) = &shared.alerting {
            scrape.families.extend(alerting.families());
        }
        let stored = shared
            .store
            .lock()
            .expect("lock poisoned")
            .append_borrowed(scrape.samples());
        if let Err(err) = stored {
            if error_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                error_logged = Some(Instant::now());
                let samples = scrape.samples().count();
                tracing::error!("cannot store {samples} samples: {err:#}");
            }
        }
        // The round before is dropped here: its scratch is free now.
        *shared.latest.write().expect("lock poisoned") = Arc::new(scrape);
        give_back.offer();
        // Loading and the first round (every series created) are behind
        // us, and so is the other threads' start (the HTTP server, rule
        // files, senders), which runs beside the first rounds: released
        // after the first round, the pages it touched then stayed resident
        // for good (2 MiB here).
        let first = *first_round.get_or_insert_with(Instant::now);
        if !released && first.elapsed() >= RELEASE_AFTER {
            released = true;
            match crate::memory::release_startup_pages() {
                Ok(bytes) => tracing::debug!("released {} KiB of startup pages", bytes >> 10),
                Err(err) => tracing::debug!("cannot release the startup pages: {err:#}"),
            }
        }
    }
}

/// sonde's own metrics besides the store's (`Store::families`).
fn self_metrics() -> Vec<Family> {
    let mut build = Family::gauge(
        "sonde_build_info",
        "A metric with a constant 1 value labeled by the version sonde was built from.",
    );
    build.push(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    vec![build]
}

/// SIGHUP re-reads the config file and the rule files, as it does for
/// Prometheus.
async fn reload_on_sighup(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload with POST /-/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(alerting) = &shared.alerting {
                let _ = alerting.reload();
            }
        })
        .await;
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail");
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
