//! Serving: the HTTP server and everything it answers. Handlers stay thin:
//! they parse the request, ask a stage, and shape the answer.

pub mod alerts;
pub mod api;
pub mod dashboard;
pub mod events;
pub mod exposition;
pub mod guard;
pub mod remote;
pub mod requests;
pub mod silences;

use std::sync::{Arc, Mutex, RwLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::model::Scrape;
use crate::store::Store;

/// What every handler may read: the last collection round, the store and
/// the alerting rules. Writers (the collection loop, the remote-write
/// receiver, recording rules) append to the store, which queues what it
/// stored for remote write in the same transaction: there is no other way in.
pub struct Shared {
    pub latest: RwLock<Arc<Scrape>>,
    pub store: Mutex<Store>,
    /// The rules and their alerts; `None` where only the store is served
    /// (tests, benchmarks).
    pub alerting: Option<crate::alert::service::Alerting>,
    /// The built-in notifier (a handle on the one the rules send to), for
    /// Alertmanager's API v2: silences, alerts, status.
    pub notifier: Option<crate::alert::notify::Notifier>,
    /// What `sonde run` learnt while starting (collector states, config in
    /// effect), for the Status view; `None` where only the store is served.
    pub startup: Option<dashboard::status::Startup>,
}

impl Shared {
    /// The store served alone, before the first round.
    pub fn new(store: Store) -> Shared {
        Shared {
            latest: RwLock::new(Arc::new(Scrape::default())),
            store: Mutex::new(store),
            alerting: None,
            notifier: None,
            startup: None,
        }
    }

    /// The store as the query engine reads it.
    pub fn store_source(&self) -> &dyn crate::query::Source {
        &self.store
    }
}

pub type AppState = Arc<Shared>;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/alerts", get(dashboard::alerts::page))
        .route(
            "/alerts/silence",
            axum::routing::post(dashboard::alerts::silence),
        )
        .route(
            "/alerts/expire",
            axum::routing::post(dashboard::alerts::expire),
        )
        .route("/graph", get(dashboard::graph::page))
        .route("/kernel", get(dashboard::kernel::page))
        .route("/status", get(dashboard::status::page))
        .route("/who", get(dashboard::who::page))
        .route("/services", get(dashboard::services::page))
        .route("/programs", get(dashboard::programs::page))
        .route("/who/cgroup", get(dashboard::who::cgroup_page))
        .route("/who/process", get(dashboard::who::process_page))
        .route("/static/{*file}", get(dashboard::asset))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .merge(remote::routes())
        .merge(api::routes())
        .merge(alerts::routes())
        .merge(silences::routes())
        .merge(requests::routes())
        .merge(events::routes())
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let latest = state.latest.read().expect("lock poisoned").clone();
    (
        [(header::CONTENT_TYPE, exposition::CONTENT_TYPE)],
        exposition::render(&latest.families),
    )
}

async fn healthy() -> &'static str {
    "sonde is Healthy.\n"
}

/// Ready once the first collection round has been published.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let collected = state.latest.read().expect("lock poisoned").timestamp_ms > 0;
    if collected {
        (axum::http::StatusCode::OK, "sonde is Ready.\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "sonde is starting: no collection round yet.\n",
        )
    }
}
