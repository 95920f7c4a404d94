//! A recording HTTP server on a free loopback port: every request's path and
//! JSON body kept for the test to read (webhook, Slack- and Telegram-shaped
//! endpoints); paths starting with `/fail` answer 500. [`serve`] serves any
//! router the same way (the dashboard tests serve sonde's own).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Requests a recording HTTP server received: (path, JSON body).
#[derive(Clone, Default)]
pub struct Recorded(pub Arc<Mutex<Vec<(String, Value)>>>);

impl Recorded {
    pub fn on(&self, path: &str) -> Vec<Value> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Waits (at most `limit`) until `path` received `count` requests.
    pub fn wait_for(&self, path: &str, count: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.on(path);
            if got.len() >= count || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Serves `app` on a free loopback port from a thread of its own until
/// `stop` is sent or the test process ends; returns the base URL.
pub fn serve(
    app: axum::Router,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            address_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    let address = address_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (format!("http://{address}"), stop, thread)
}

/// A server that records every request; paths starting with `/fail`
/// answer 500.
pub fn recorder() -> (String, Recorded) {
    let recorded = Recorded::default();
    let log = recorded.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            let path = uri.path().to_string();
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            log.0.lock().unwrap().push((path.clone(), value));
            if path.starts_with("/fail") {
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                axum::http::StatusCode::OK
            }
        }
    });
    let (url, stop, _thread) = serve(app);
    std::mem::forget(stop); // lives as long as the test process
    (url, recorded)
}
