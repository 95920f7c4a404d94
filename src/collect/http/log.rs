//! The request log, like Beyla's `PRINT_TRACES`: single requests (and gRPC
//! calls), not histograms, for the question "which request was slow?". Per service, the
//! last [`RECENT`] requests and, per route, the [`SLOWEST`] slowest of the
//! last [`SLOWEST_WINDOW`]. Served at `/api/v1/requests`, printed by
//! `sonde requests`, shown in the dashboard's Services view.
//!
//! Invariants:
//! - Memory is bounded: a service holds at most [`RECENT`] recent entries
//!   and [`SLOWEST`] per route, and routes are bounded by the RED state's
//!   per-service budget (a route beyond it is logged under the folded one).
//! - A service's log goes when the RED state forgets its last series
//!   ([`RequestLog::retain`]).
//! - One [`RequestLog`] per process ([`RequestLog::shared`]): the collector
//!   thread writes, HTTP handlers read; each holds the lock only to copy.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

/// Recent requests kept per service.
pub const RECENT: usize = 100;
/// Slowest requests kept per route.
pub const SLOWEST: usize = 3;
/// How long a slow request stays among the slowest (ms).
pub const SLOWEST_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Bytes of a request's path kept.
const MAX_PATH: usize = 256;

/// One request, as it was served.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry {
    /// When its response was done (ms since the epoch).
    pub time_ms: i64,
    /// Shared with the service's series: an entry copies no name.
    #[serde(serialize_with = "shared_str")]
    pub service: Arc<str>,
    pub pid: u32,
    pub method: &'static str,
    /// The path as asked, without its query (at most 256 bytes).
    pub path: String,
    #[serde(serialize_with = "shared_str")]
    pub route: Arc<str>,
    /// 0 when the response was not seen.
    pub status: u16,
    /// A gRPC call's status code (`grpc-status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u16>,
    pub duration_seconds: f64,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
}

/// Writes a shared name as a string. (serde's `rc` feature would do it,
/// but turning a feature of serde on renames every function built with it,
/// and `link/hot-text.txt` names functions.)
fn shared_str<S: serde::Serializer>(name: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(name)
}

/// gRPC status codes that are a server's error (OpenTelemetry's gRPC
/// semantics): UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE, DATA_LOSS. The others (NOT_FOUND, INVALID_ARGUMENT…) are
/// the caller's.
pub const GRPC_SERVER_ERRORS: [u16; 6] = [2, 4, 12, 13, 14, 15];

/// Whether a request served failed by the server's fault: a 5xx response,
/// or a gRPC call ended with one of [`GRPC_SERVER_ERRORS`] (a 4xx is the
/// client's mistake).
pub fn is_server_error(status: u16, grpc_status: Option<u16>) -> bool {
    status / 100 == 5 || grpc_status.is_some_and(|code| GRPC_SERVER_ERRORS.contains(&code))
}

/// A logged status as the request table and the Services view show it: a
/// gRPC call's code beside its HTTP status.
pub fn status_text(status: u16, grpc_status: Option<u16>) -> String {
    match grpc_status {
        Some(code) => format!("{status} (gRPC {code})"),
        None => status.to_string(),
    }
}

impl Entry {
    /// Cuts `path` to what is kept, at a character boundary.
    pub fn kept_path(path: &str) -> String {
        let mut end = path.len().min(MAX_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path[..end].to_string()
    }
}

/// An entry and its place in the order requests were logged (times come
/// from two clocks and may tie or cross by a millisecond; this does not).
#[derive(Clone)]
struct Logged {
    seq: u64,
    entry: Arc<Entry>,
}

#[derive(Default)]
struct ServiceLog {
    recent: VecDeque<Logged>,
    /// Per route, slowest first.
    slowest: crate::collect::FastMap<Arc<str>, Vec<Logged>>,
}

#[derive(Default)]
struct Logs {
    /// The `seq` of the next entry.
    next: u64,
    services: crate::collect::FastMap<Arc<str>, ServiceLog>,
}

/// Which entries a reader wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub service: Option<String>,
    pub route: Option<String>,
    pub status: Option<Status>,
    pub min_duration_seconds: f64,
    pub order: Order,
    pub limit: usize,
}

/// A status to match: one HTTP code, a class (`5xx`), or the server's
/// errors (`error`: [`is_server_error`], gRPC calls' too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Code(u16),
    Class(u16),
    Error,
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Status, String> {
        let bad = || {
            format!(
                "bad status {text:?}: give a code (404), a class (5xx) or error \
                 (5xx and the gRPC codes a server is to blame for)"
            )
        };
        match text.as_bytes() {
            b"error" => Ok(Status::Error),
            [class @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                Ok(Status::Class(u16::from(class - b'0')))
            }
            _ => text.parse().map(Status::Code).map_err(|_| bad()),
        }
    }
}

impl Status {
    fn matches(self, entry: &Entry) -> bool {
        match self {
            Status::Code(code) => entry.status == code,
            Status::Class(class) => entry.status / 100 == class,
            Status::Error => is_server_error(entry.status, entry.grpc_status),
        }
    }
}

/// Newest first, or slowest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Recent,
    Slowest,
}

impl std::str::FromStr for Order {
    type Err = String;

    fn from_str(text: &str) -> Result<Order, String> {
        match text {
            "recent" => Ok(Order::Recent),
            "slowest" => Ok(Order::Slowest),
            _ => Err(format!("bad order {text:?}: choose recent or slowest")),
        }
    }
}

/// The log, shared between the collector that writes and the server that
/// reads.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Logs>>);

impl RequestLog {
    /// The process's log: the http collector writes it, the API reads it.
    pub fn shared() -> RequestLog {
        static SHARED: OnceLock<RequestLog> = OnceLock::new();
        SHARED.get_or_init(RequestLog::default).clone()
    }

    pub fn record(&self, entry: Entry) {
        let Ok(mut logs) = self.0.lock() else {
            return;
        };
        let logged = Logged {
            seq: logs.next,
            entry: Arc::new(entry),
        };
        logs.next += 1;
        let entry = &logged.entry;
        // One lookup each, keyed by the shared names: this runs for every
        // request served.
        let log = logs.services.entry(entry.service.clone()).or_default();
        if log.recent.len() >= RECENT {
            log.recent.pop_front();
        }
        log.recent.push_back(logged.clone());
        let slowest = log.slowest.entry(entry.route.clone()).or_default();
        let oldest_kept = entry.time_ms - SLOWEST_WINDOW_MS;
        slowest.retain(|l| l.entry.time_ms >= oldest_kept);
        let duration = entry.duration_seconds;
        let at = slowest.partition_point(|l| l.entry.duration_seconds >= duration);
        if at < SLOWEST {
            slowest.insert(at, logged);
            slowest.truncate(SLOWEST);
        }
    }

    /// Keeps the logs of the services in `serving` only.
    pub fn retain(&self, serving: &HashSet<&str>) {
        if let Ok(mut logs) = self.0.lock() {
            logs.services
                .retain(|service, _| serving.contains(&**service));
        }
    }

    /// The entries `filter` asks for, in its order, at most its limit (0:
    /// no limit). Slowest ones come from the recent ones and the slowest
    /// kept per route, each request once.
    pub fn query(&self, filter: &Filter, now_ms: i64) -> Vec<Entry> {
        let Ok(logs) = self.0.lock() else {
            return Vec::new();
        };
        let oldest_slow = now_ms - SLOWEST_WINDOW_MS;
        let mut found: Vec<Logged> = Vec::new();
        for (service, log) in logs.services.iter() {
            if filter.service.as_deref().is_some_and(|s| s != &**service) {
                continue;
            }
            found.extend(log.recent.iter().cloned());
            if filter.order == Order::Slowest {
                let slow = log.slowest.values().flatten();
                found.extend(slow.filter(|l| l.entry.time_ms >= oldest_slow).cloned());
            }
        }
        drop(logs);
        found.retain(|Logged { entry: e, .. }| {
            filter.route.as_deref().is_none_or(|r| r == &*e.route)
                && filter.status.is_none_or(|s| s.matches(e))
                && e.duration_seconds >= filter.min_duration_seconds
        });
        // A slow recent request is also among the slowest: once.
        let mut seen = HashSet::new();
        found.retain(|l| seen.insert(l.seq));
        match filter.order {
            Order::Recent => found.sort_by_key(|l| std::cmp::Reverse(l.seq)),
            Order::Slowest => found.sort_by(|a, b| {
                b.entry
                    .duration_seconds
                    .total_cmp(&a.entry.duration_seconds)
            }),
        }
        if filter.limit > 0 {
            found.truncate(filter.limit);
        }
        found.iter().map(|l| Entry::clone(&l.entry)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: &str, route: &str, time_ms: i64, seconds: f64, status: u16) -> Entry {
        Entry {
            time_ms,
            service: service.into(),
            pid: 1,
            method: "GET",
            path: route.into(),
            route: route.into(),
            status,
            grpc_status: None,
            duration_seconds: seconds,
            request_body_bytes: 0,
            response_body_bytes: 0,
        }
    }

    #[test]
    fn keeps_the_recent_and_the_slowest_per_route() {
        let log = RequestLog::default();
        // One slow request, then more than RECENT fast ones.
        log.record(entry("a", "/slow", 0, 2.0, 200));
        for i in 0..RECENT as i64 + 10 {
            log.record(entry("a", "/fast", i + 1, 0.001 * i as f64, 200));
        }
        log.record(entry("b", "/x", 500, 0.5, 503));
        let now = 1000;
        let all = |order| Filter {
            order,
            ..Filter::default()
        };
        let recent = log.query(&all(Order::Recent), now);
        assert_eq!(recent.len(), RECENT + 1, "a's ring and b's one");
        assert_eq!(&*recent[0].service, "b");
        assert!(recent.iter().all(|e| &*e.route != "/slow"), "pushed out");
        let slowest = log.query(&all(Order::Slowest), now);
        assert_eq!(&*slowest[0].route, "/slow", "kept among the slowest");
        assert_eq!(&*slowest[1].route, "/x");
        let fast: Vec<f64> = slowest
            .iter()
            .filter(|e| &*e.route == "/fast")
            .map(|e| e.duration_seconds)
            .collect();
        assert_eq!(fast.len(), RECENT, "each request once");
        let filter = Filter {
            service: Some("a".into()),
            status: Some("2xx".parse().unwrap()),
            min_duration_seconds: 0.5,
            order: Order::Slowest,
            limit: 2,
            ..Filter::default()
        };
        let picked = log.query(&filter, now);
        assert_eq!(picked.len(), 1);
        assert_eq!(&*picked[0].route, "/slow");
        let errors = Filter {
            status: Some(Status::Code(503)),
            ..Filter::default()
        };
        assert_eq!(log.query(&errors, now).len(), 1);
        // A gRPC call the server failed (200, UNAVAILABLE) and one the
        // caller did (200, NOT_FOUND): the first is an error, as the 503.
        for (route, code) in [("/shop.Cart/Add", 14), ("/shop.Cart/Get", 5)] {
            log.record(Entry {
                grpc_status: Some(code),
                ..entry("a", route, now - 2, 0.01, 200)
            });
        }
        let errors = Filter {
            status: Some("error".parse().unwrap()),
            ..Filter::default()
        };
        let found = log.query(&errors, now);
        let routes: Vec<&str> = found.iter().map(|e| &*e.route).collect();
        assert_eq!(routes, ["/shop.Cart/Add", "/x"]);
        // Out of the window, the slow one is gone.
        assert!(log
            .query(&filter, SLOWEST_WINDOW_MS + 1)
            .iter()
            .all(|e| &*e.route != "/slow"));
        log.retain(&HashSet::from(["b"]));
        assert_eq!(log.query(&all(Order::Recent), now).len(), 1);
    }

    #[test]
    fn statuses_and_orders_parse() {
        assert_eq!("404".parse(), Ok(Status::Code(404)));
        assert_eq!("5xx".parse(), Ok(Status::Class(5)));
        assert!("6xx".parse::<Status>().is_err());
        assert!("x".parse::<Status>().unwrap_err().contains("5xx"));
        assert_eq!("slowest".parse(), Ok(Order::Slowest));
        assert!("fast".parse::<Order>().is_err());
        assert_eq!(Entry::kept_path(&"é".repeat(200)).len(), 256);
    }
}
