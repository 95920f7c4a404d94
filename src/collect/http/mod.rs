//! HTTP RED metrics (rate, errors, duration) of every local HTTP/1.x and
//! HTTP/2 server and of the calls local processes make (plain, or HTTPS
//! through OpenSSL or Go's crypto/tls), from the events of the http BPF
//! collector (`bpf/http.bpf.c`, loaded by
//! [`crate::collect::bpf::http`]). This module owns what happens in user
//! space: pairing a request's events (an HTTP/2 connection's streams:
//! [`h2`]), naming its service, route and port (a client's: the peer's
//! address and port), and the histograms, under the names Grafana Beyla
//! exports (`http_server_*`, `http_client_*`, and `rpc_*_duration_seconds`
//! for gRPC calls) so its dashboards work unchanged ([`service`] gives
//! Beyla's labels and `target_info`); every request served also goes to the
//! request [`log`].
//!
//! Invariants:
//! - A request is observed once, at its DONE event (which holds its head
//!   and its response's; an HTTP/2 stream at the event that carried its
//!   response's END_STREAM), and only if sonde saw its connection's OPEN
//!   (so its service is known).
//! - Connections known by their OPEN are at most [`MAX_CONNECTIONS`], each
//!   forgotten at its close (a DONE marked closed, or CLOSED) or with its
//!   process; each service has at most `[collect.http]
//!   max_routes_per_service` routes besides the user's patterns
//!   ([`routes`]).
//! - A connection `[collect.http]` does not select ([`select`]) is not
//!   known: its requests are not observed.
//! - Everything kept per process goes when the process does, a series once
//!   idle for `[collect] forget_after`, a service's routes with its last
//!   series ([`Red::retain`]), so memory follows what is served.

pub mod elf;
pub mod go_tls;
pub mod h2;
pub mod hpack;
pub mod interpreter;
pub mod log;
pub mod parse;
pub mod routes;
pub mod select;
pub mod service;
pub mod tls;

use std::cell::OnceCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::collect::{monotonic_ns, FastMap};
use crate::config::HttpConfig;
use crate::model::{Family, HistogramLabels};
use parse::ResponseHead;

/// Connections whose service is known (their OPEN seen and no close yet);
/// beyond it requests of new connections are not observed.
pub const MAX_CONNECTIONS: usize = 65_536;

/// Beyla's buckets (seconds) for request durations.
const DURATION_BUCKETS: [f64; 15] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Beyla's buckets (bytes) for body sizes.
const SIZE_BUCKETS: [f64; 10] = [
    0.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// Which end of a connection the process is (`enum http_role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// It accepted the connection: `http_server_*`.
    Server,
    /// It connected: `http_client_*`.
    Client,
}

/// One event of the BPF program, as user space reads it.
#[derive(Debug)]
pub enum Event<'a> {
    /// A connection's first request began: who serves (or calls) on it,
    /// and its server end when the program knew it (a client's peer; a
    /// server's own address, which otherwise is read through the fd).
    Open {
        conn: Conn,
        /// The connection's key in the BPF program's `conns`.
        key: u64,
        /// The process's parent (tgid).
        parent: u32,
        cgroup: u64,
        comm: &'a [u8],
        listen_fd: i32,
        role: Role,
        server: Option<SocketAddr>,
    },
    /// A write that starts a response after the first of a batch of
    /// pipelined requests (the batch that began at `start_ns`): when, the
    /// bytes of the responses before it, its first bytes.
    Response {
        conn: Conn,
        start_ns: u64,
        ns: u64,
        before: u64,
        head: &'a [u8],
    },
    /// A request (or a pipelined batch) is done (the next one began, or the
    /// connection closed): its first read and last write, all bytes read
    /// and written, the first bytes of the request and of its response.
    Done {
        conn: Conn,
        start_ns: u64,
        end_ns: u64,
        request_bytes: u64,
        response_bytes: u64,
        request_head: &'a [u8],
        response_head: &'a [u8],
        /// The connection closed after it.
        closed: bool,
    },
    /// A connection that sent OPEN closed with no request to end.
    Closed { conn: Conn },
    /// A read (`received`) or write at `ns` on an HTTP/2 connection.
    H2 {
        conn: Conn,
        received: bool,
        ns: u64,
        chunk: h2::Chunk<'a>,
    },
    /// The process mapped a file executable: perhaps a libssl to probe.
    Mapped { tgid: u32 },
}

/// A connection: the process (tgid) and its fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conn {
    pub tgid: u32,
    pub fd: i32,
}

/// Most bytes of a request's head kept: as many as the BPF program copies
/// (`HTTP_HEAD - 1` in bpf/sonde.h).
pub const MAX_HEAD: usize = 511;

/// Most responses kept for one batch of pipelined requests.
pub const MAX_PIPELINED: usize = 64;

/// A response's start: the first of a batch as DONE tells it, the next
/// ones as their RESPONSE events did.
struct Response {
    ns: u64,
    before: u64,
    head: Option<ResponseHead>,
}

/// A done request (or pipelined batch), as its DONE and the RESPONSE
/// events before it tell it.
struct Batch<'a> {
    role: Role,
    service: Arc<service::Service>,
    pid: u32,
    /// Its first bytes (at most [`MAX_HEAD`]).
    head: &'a [u8],
    first: Response,
    pipelined: &'a [Response],
}

impl Batch<'_> {
    /// The response of the batch's `i`th request, if it was seen.
    fn response(&self, i: usize) -> Option<&Response> {
        match i {
            0 => Some(&self.first),
            _ => self.pipelined.get(i - 1),
        }
    }
}

/// A connection between its OPEN and its close.
struct Connection {
    /// Its key in the BPF program's `conns`.
    key: u64,
    role: Role,
    service: Arc<service::Service>,
    /// The responses after the first of the pipelined batch that began at
    /// `batch_ns`, until its DONE.
    batch_ns: u64,
    pipelined: Vec<Response>,
    /// Its streams, once it began with HTTP/2's preface.
    h2: Option<Box<h2::Connection>>,
    /// A round found its process gone ([`Red::retain`]).
    process_gone: bool,
}

/// A histogram with fixed bounds: counts per bucket (not cumulative).
#[derive(Clone, Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|upper| value <= *upper) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// `labels`: from `family`'s [`Family::histogram_labels`] with this
    /// histogram's bounds.
    fn push(&self, family: &mut Family, labels: &HistogramLabels) {
        let mut cumulative = 0;
        let buckets = self.counts.iter().map(|n| {
            cumulative += n;
            cumulative
        });
        family.push_labelled_histogram(labels, buckets, self.sum, self.count);
    }
}

#[derive(Clone)]
struct Series {
    duration: Hist,
    request_size: Hist,
    response_size: Hist,
    /// When its last request ended (the BPF clock, CLOCK_MONOTONIC ns).
    last_ns: u64,
    /// The label sets of its three histograms, made at its first round:
    /// they are a function of its key, and building them again every round
    /// was most of the collector's work.
    labels: OnceCell<[HistogramLabels; 3]>,
}

/// What a series is: its service (and so its labels), method, route and
/// status. Hashing it hashes no string but the route: the service's hash is
/// made once ([`service::Service`]).
#[derive(Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    role: Role,
    service: Arc<service::Service>,
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

impl SeriesKey {
    /// Its labels, sorted by name.
    fn labels(&self) -> Vec<(&str, String)> {
        let mut labels: Vec<(&str, String)> = self
            .service
            .labels
            .iter()
            .map(|(name, value)| (*name, value.clone()))
            .collect();
        labels.extend([
            ("http_request_method", self.method.to_string()),
            ("http_route", self.route.to_string()),
            ("http_response_status_code", self.status.to_string()),
        ]);
        labels.sort();
        labels
    }
}

/// The RED state: requests in flight, services and the histograms.
pub struct Red {
    /// How long a series outlives its last request (`[collect] forget_after`).
    forget_after: Duration,
    connections: FastMap<Conn, Connection>,
    services: service::Services,
    routes: routes::Routes,
    series: FastMap<SeriesKey, Series>,
    log: log::RequestLog,
    clock: LogClock,
    /// gRPC calls' durations, by service, method and status.
    rpc: FastMap<RpcKey, RpcSeries>,
    /// Events taken in, by kind ([`EVENT_KINDS`]).
    events: [u64; 6],
    /// HTTP/2 connections given up ([`h2::Connection::is_lost`]).
    h2_lost: u64,
}

/// The kinds of [`Event`], as `sonde_http_events_total` labels them.
const EVENT_KINDS: [&str; 6] = ["open", "response", "done", "closed", "mapped", "h2"];

/// What a gRPC series is: Beyla's `rpc_*_duration_seconds` labels.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RpcKey {
    role: Role,
    service: Arc<service::Service>,
    /// The call's path (`/package.Service/Method`), within the service's
    /// route budget.
    method: Arc<str>,
    status: u16,
}

struct RpcSeries {
    duration: Hist,
    last_ns: u64,
}

/// One request as the histograms and the log take it, whatever its
/// protocol.
struct Observed<'a> {
    method: &'static str,
    path: &'a str,
    status: u16,
    start_ns: u64,
    end_ns: u64,
    request_body: u64,
    response_body: u64,
}

impl Observed<'_> {
    fn seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

impl Red {
    /// `forget_after`: `[collect] forget_after`; `config`: which connections
    /// are measured and the route patterns. Errors name the config key.
    pub fn new(forget_after: Duration, config: &HttpConfig) -> anyhow::Result<Red> {
        let (selection, patterns) = config.compile()?;
        Ok(Red {
            forget_after,
            connections: FastMap::default(),
            services: service::Services::new(selection),
            routes: routes::Routes::new(patterns, config.max_routes_per_service),
            series: FastMap::default(),
            log: log::RequestLog::shared(),
            clock: LogClock::default(),
            rpc: FastMap::default(),
            events: [0; 6],
            h2_lost: 0,
        })
    }

    /// Takes in one event. Some: a connection the program may stop looking
    /// at (its BPF key, and the connection): one `[collect.http]` leaves
    /// out, or an HTTP/2 connection whose streams can no longer be read.
    pub fn observe(&mut self, event: Event) -> Option<(u64, Conn)> {
        self.events[match event {
            Event::Open { .. } => 0,
            Event::Response { .. } => 1,
            Event::Done { .. } => 2,
            Event::Closed { .. } => 3,
            Event::Mapped { .. } => 4,
            Event::H2 { .. } => 5,
        }] += 1;
        match event {
            Event::Open {
                conn,
                key,
                parent,
                cgroup,
                comm,
                listen_fd,
                role,
                server,
            } => {
                if self.connections.len() >= MAX_CONNECTIONS
                    && !self.connections.contains_key(&conn)
                {
                    return None;
                }
                let opener = service::Opener {
                    tgid: conn.tgid,
                    parent,
                    cgroup,
                    comm,
                };
                let service = match (role, server) {
                    (Role::Server, None) => self.services.of(conn, opener, listen_fd),
                    (Role::Client, None) => self.services.at(opener, service::peer_of(conn)),
                    (_, server) => self.services.at(opener, server),
                };
                if !service.measured {
                    // A connection sonde already knew under the fd.
                    self.connections.remove(&conn);
                    return Some((key, conn));
                }
                self.connections.insert(
                    conn,
                    Connection {
                        key,
                        role,
                        service,
                        batch_ns: 0,
                        pipelined: Vec::new(),
                        h2: None,
                        process_gone: false,
                    },
                );
            }
            Event::Response {
                conn,
                start_ns,
                ns,
                before,
                head,
            } => {
                if let Some(connection) = self.connections.get_mut(&conn) {
                    if connection.batch_ns != start_ns {
                        // A batch whose DONE was lost left its responses.
                        connection.batch_ns = start_ns;
                        connection.pipelined.clear();
                    }
                    if connection.pipelined.len() < MAX_PIPELINED {
                        connection.pipelined.push(Response {
                            ns,
                            before,
                            head: parse::response(head),
                        });
                    }
                }
            }
            Event::Done {
                conn,
                start_ns,
                end_ns,
                request_bytes,
                response_bytes,
                request_head,
                response_head,
                closed,
            } => {
                let connection = self.connections.get_mut(&conn)?;
                let (role, service) = (connection.role, connection.service.clone());
                let mut pipelined = std::mem::take(&mut connection.pipelined);
                if connection.batch_ns != start_ns {
                    pipelined.clear();
                }
                if closed {
                    self.connections.remove(&conn);
                }
                let first = Response {
                    ns: start_ns,
                    before: 0,
                    head: parse::response(response_head),
                };
                let batch = Batch {
                    role,
                    service,
                    pid: conn.tgid,
                    head: &request_head[..request_head.len().min(MAX_HEAD)],
                    first,
                    pipelined: &pipelined,
                };
                self.done(batch, start_ns, end_ns, request_bytes, response_bytes);
                // Its allocation serves the connection's next batch.
                pipelined.clear();
                if let Some(connection) = self.connections.get_mut(&conn) {
                    connection.pipelined = pipelined;
                }
            }
            Event::Closed { conn } => {
                self.connections.remove(&conn);
            }
            Event::H2 {
                conn,
                received,
                ns,
                chunk,
            } => {
                let connection = self.connections.get_mut(&conn)?;
                let (key, role, service) =
                    (connection.key, connection.role, connection.service.clone());
                let streams = connection
                    .h2
                    .get_or_insert_with(|| Box::new(h2::Connection::new(role)));
                let mut done = Vec::new();
                let was_lost = streams.is_lost();
                streams.bytes(received, ns, chunk, &mut done);
                let lost = streams.is_lost() && !was_lost;
                for stream in done {
                    self.stream_done(role, &service, conn.tgid, stream);
                }
                if lost {
                    self.h2_lost += 1;
                    tracing::debug!(
                        "http: HTTP/2 connection of pid {} (fd {}) given up: the program could \
                         not follow its frames (an event the ring buffer had no room for, a call \
                         too long to walk, or a frame header in bytes it cannot read)",
                        conn.tgid,
                        conn.fd
                    );
                    // Its bytes would only cost the program and the ring.
                    return Some((key, conn));
                }
            }
            // The collector's business: it reads the process's maps.
            Event::Mapped { .. } => {}
        }
        None
    }

    /// Observes the requests of a done batch: one, or as many pipelined
    /// ones as both their request lines and their responses were seen. A
    /// pipelined request's duration runs from the batch's first read to the
    /// start of the next response.
    fn done(
        &mut self,
        batch: Batch,
        start_ns: u64,
        end_ns: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let requests = parse::requests(batch.head);
        let count = requests.len().min(1 + batch.pipelined.len());
        let mut request_consumed = 0;
        for (i, request) in requests.iter().take(count).enumerate() {
            let response = batch.response(i);
            let next = batch.response(i + 1).filter(|_| i + 1 < count);
            let status = response
                .and_then(|r| r.head.as_ref())
                .map_or(0, |r| r.status);
            let request_body = if next.is_some() {
                request.content_length.unwrap_or(0)
            } else {
                parse::body_bytes(
                    request_bytes.saturating_sub(request_consumed),
                    request.header_len,
                    request.content_length,
                )
            };
            request_consumed += request.header_len.unwrap_or(0) + request_body;
            let response_start = response.map_or(0, |r| r.before);
            let response_end = next.map_or(response_bytes, |r| r.before);
            let response_body = response.and_then(|r| r.head.as_ref()).map_or(0, |r| {
                parse::body_bytes(
                    response_end.saturating_sub(response_start),
                    r.header_len,
                    r.content_length,
                )
            });
            let end = next.map_or(end_ns, |r| r.ns);
            self.observe_request(
                batch.role,
                &batch.service,
                batch.pid,
                Observed {
                    method: request.method,
                    path: &request.path,
                    status,
                    start_ns,
                    end_ns: end,
                    request_body,
                    response_body,
                },
            );
        }
    }

    /// An HTTP/2 stream that ended: a gRPC call in the `rpc_*` histograms,
    /// any other in the HTTP ones as an HTTP/1 request.
    fn stream_done(
        &mut self,
        role: Role,
        service: &Arc<service::Service>,
        pid: u32,
        done: h2::Done,
    ) {
        let s = done.stream;
        let observed = Observed {
            method: s.method,
            path: &s.path,
            status: s.status,
            start_ns: s.start_ns,
            end_ns: done.end_ns,
            request_body: s.request_bytes,
            response_body: s.response_bytes,
        };
        let Some(grpc_status) = s.grpc_status else {
            self.observe_request(role, service, pid, observed);
            return;
        };
        let method = self.routes.route(&service.name, &s.path);
        if role == Role::Server {
            self.log_served(service, pid, &observed, method.clone(), Some(grpc_status));
        }
        let key = RpcKey {
            role,
            service: service.clone(),
            method,
            status: grpc_status,
        };
        let series = self.rpc.entry(key).or_insert_with(|| RpcSeries {
            duration: Hist::default(),
            last_ns: observed.end_ns,
        });
        series.last_ns = series.last_ns.max(observed.end_ns);
        series
            .duration
            .observe(&DURATION_BUCKETS, observed.seconds());
    }

    /// One request into its series' histograms, and a served one into the
    /// request log.
    fn observe_request(
        &mut self,
        role: Role,
        service: &Arc<service::Service>,
        pid: u32,
        request: Observed,
    ) {
        let route = self.routes.route(&service.name, request.path);
        let key = SeriesKey {
            role,
            service: service.clone(),
            method: request.method,
            route: route.clone(),
            status: request.status,
        };
        let end = request.end_ns;
        let series = self.series.entry(key).or_insert_with(|| Series {
            duration: Hist::default(),
            request_size: Hist::default(),
            response_size: Hist::default(),
            last_ns: end,
            labels: OnceCell::new(),
        });
        series.last_ns = series.last_ns.max(end);
        series
            .duration
            .observe(&DURATION_BUCKETS, request.seconds());
        series
            .request_size
            .observe(&SIZE_BUCKETS, request.request_body as f64);
        series
            .response_size
            .observe(&SIZE_BUCKETS, request.response_body as f64);
        // The log is of requests served (the Services view's); a call
        // a process makes is in its client histograms only.
        if role == Role::Server {
            self.log_served(service, pid, &request, route, None);
        }
    }

    /// A request (or gRPC call, with its status) served, into the log.
    fn log_served(
        &mut self,
        service: &service::Service,
        pid: u32,
        request: &Observed,
        route: Arc<str>,
        grpc_status: Option<u16>,
    ) {
        self.log.record(log::Entry {
            time_ms: self.clock.wall_ms(request.end_ns),
            service: service.name.clone(),
            pid,
            method: request.method,
            path: log::Entry::kept_path(request.path),
            route,
            status: request.status,
            grpc_status,
            duration_seconds: request.seconds(),
            request_body_bytes: request.request_body,
            response_body_bytes: request.response_body,
        });
    }

    /// Forgets requests in flight of processes `alive` says are gone (at
    /// the second round that finds them gone), and their names.
    /// Forgets series idle for `forget_after` (a service gone, a route no
    /// longer asked for), and a service's routes once it has no series, so
    /// memory follows what is served, not sonde's uptime.
    pub fn retain(&mut self, alive: impl Fn(u32) -> bool) {
        // A process gone now keeps its connections until the next round:
        // its last events may still wait in the ring (the reader takes them
        // every 50 ms while events come), a client's last response among
        // them.
        self.connections.retain(|conn, connection| {
            if alive(conn.tgid) {
                return true;
            }
            !std::mem::replace(&mut connection.process_gone, true)
        });
        self.services.retain(&alive);
        let now_ns = monotonic_ns();
        let forget_after = self.forget_after.as_nanos() as u64;
        self.series
            .retain(|_, series| now_ns.saturating_sub(series.last_ns) < forget_after);
        self.rpc
            .retain(|_, series| now_ns.saturating_sub(series.last_ns) < forget_after);
        let serving: HashSet<&str> = (self.series.keys().map(|key| &key.service))
            .chain(self.rpc.keys().map(|key| &key.service))
            .map(|service| &*service.name)
            .collect();
        self.routes.retain(|service| serving.contains(service));
        self.log.retain(&serving);
    }

    /// The histogram families, the server side's three, then the client
    /// side's; gRPC's two; then `target_info` and the events taken in.
    pub fn families(&self) -> Vec<Family> {
        let mut families = Vec::new();
        for (role, side, duration_help, read, written) in [
            (
                Role::Server,
                "server",
                concat!(
                    "Duration of HTTP requests served, from the request's first byte read ",
                    "to the response's last byte written."
                ),
                "served",
                "sent",
            ),
            (
                Role::Client,
                "client",
                concat!(
                    "Duration of HTTP requests made, from the request's first byte written ",
                    "to the response's last byte read."
                ),
                "sent",
                "received",
            ),
        ] {
            let mut duration = Family::histogram(
                format!("http_{side}_request_duration_seconds"),
                duration_help,
            );
            let mut request_size = Family::histogram(
                format!("http_{side}_request_body_size_bytes"),
                format!("Size of the bodies of HTTP requests {read}."),
            );
            let mut response_size = Family::histogram(
                format!("http_{side}_response_body_size_bytes"),
                format!("Size of the bodies of HTTP responses {written}."),
            );
            for (key, series) in &self.series {
                if key.role != role {
                    continue;
                }
                let [duration_labels, request_labels, response_labels] =
                    series.labels.get_or_init(|| {
                        let labels = key.labels();
                        let labels: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        let sizes = || SIZE_BUCKETS.iter().copied();
                        [
                            duration.histogram_labels(&labels, DURATION_BUCKETS.iter().copied()),
                            request_size.histogram_labels(&labels, sizes()),
                            response_size.histogram_labels(&labels, sizes()),
                        ]
                    });
                series.duration.push(&mut duration, duration_labels);
                series.request_size.push(&mut request_size, request_labels);
                series
                    .response_size
                    .push(&mut response_size, response_labels);
            }
            families.extend([duration, request_size, response_size]);
        }
        families.extend(self.rpc_families());
        families.push(self.services.target_info());
        let mut events = Family::counter(
            "sonde_http_events_total",
            "Events of the http collector's BPF program read by sonde, by kind.",
        );
        for (kind, count) in EVENT_KINDS.iter().zip(self.events) {
            events.push(&[("kind", kind)], count as f64);
        }
        families.push(events);
        let mut lost = Family::counter(
            "sonde_http_h2_connections_lost_total",
            "HTTP/2 connections whose streams sonde stopped following: the program could \
             not follow their frames (an event the ring buffer had no room for, a call too \
             long to walk, or a frame header in bytes it cannot read).",
        );
        lost.push(&[], self.h2_lost as f64);
        families.push(lost);
        families
    }
}

impl Red {
    /// `rpc_server_duration_seconds` and `rpc_client_duration_seconds`.
    fn rpc_families(&self) -> [Family; 2] {
        [
            (Role::Server, "server", "served"),
            (Role::Client, "client", "made"),
        ]
        .map(|(role, side, done)| {
            let mut duration = Family::histogram(
                format!("rpc_{side}_duration_seconds"),
                format!(
                    "Duration of gRPC calls {done}, from the request's headers to the \
                         response's end."
                ),
            );
            for (key, series) in self.rpc.iter().filter(|(key, _)| key.role == role) {
                let status = key.status.to_string();
                let mut labels: Vec<(&str, &str)> = key
                    .service
                    .labels
                    .iter()
                    .map(|(name, value)| (*name, value.as_str()))
                    .collect();
                labels.extend([
                    ("rpc_grpc_status_code", status.as_str()),
                    ("rpc_method", &key.method),
                    ("rpc_system", "grpc"),
                ]);
                labels.sort();
                let labels = duration.histogram_labels(&labels, DURATION_BUCKETS.iter().copied());
                series.duration.push(&mut duration, &labels);
            }
            duration
        })
    }
}

/// Turns the BPF clock into wall-clock milliseconds for the request log.
/// The two clocks are read together at most once a second of the events'
/// own time, not per request: between two readings they drift by far less
/// than the millisecond the log shows.
#[derive(Default)]
struct LogClock {
    /// The event time at the last reading.
    event_ns: u64,
    monotonic_ns: u64,
    wall_ms: i64,
}

impl LogClock {
    fn wall_ms(&mut self, ns: u64) -> i64 {
        if ns.abs_diff(self.event_ns) > 1_000_000_000 {
            self.event_ns = ns;
            self.monotonic_ns = monotonic_ns();
            self.wall_ms = crate::collect::now_ms();
        }
        self.wall_ms - (self.monotonic_ns as i64 - ns as i64) / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red() -> Red {
        Red::new(Duration::from_secs(300), &HttpConfig::default()).unwrap()
    }

    /// A server connection's OPEN.
    fn open(red: &mut Red, fd: i32) {
        red.observe(Event::Open {
            conn: Conn { tgid: 1, fd },
            key: fd as u64,
            parent: 0,
            cgroup: 0,
            comm: b"srv",
            listen_fd: -1,
            role: Role::Server,
            server: None,
        });
    }

    /// A 20 ms request that ended now (series are forgotten by age), on a
    /// connection that stays open.
    fn done(red: &mut Red, fd: i32, heads: (&str, &[u8]), bytes: (u64, u64)) {
        done_then(red, fd, heads, bytes, false);
    }

    fn done_then(red: &mut Red, fd: i32, heads: (&str, &[u8]), bytes: (u64, u64), closed: bool) {
        let start_ns = monotonic_ns() - 20_000_000;
        red.observe(Event::Done {
            conn: Conn { tgid: 1, fd },
            start_ns,
            end_ns: start_ns + 20_000_000,
            request_bytes: bytes.0,
            response_bytes: bytes.1,
            request_head: heads.0.as_bytes(),
            response_head: heads.1,
            closed,
        });
    }

    fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
        families
            .iter()
            .flat_map(|f| &f.series)
            .filter(|s| {
                s.labels.metric_name() == name
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    #[test]
    fn pairs_events_into_labelled_histograms() {
        let mut red = red();
        let head = "GET /users/123 HTTP/1.1\r\nHost: x\r\n\r\n";
        open(&mut red, 5);
        let status = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        done(
            &mut red,
            5,
            (head, status),
            (head.len() as u64, status.len() as u64 + 10),
        );
        open(&mut red, 6);
        let not_found = b"HTTP/1.1 404 Not Found\r\n\r\n";
        done(
            &mut red,
            6,
            ("GET /users/456 HTTP/1.1\r\n\r\n", not_found),
            (27, 26),
        );
        // The last request of a connection: then it is forgotten.
        open(&mut red, 8);
        let ok: (&str, &[u8]) = ("GET /users/9 HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n");
        done_then(&mut red, 8, ok, (25, 19), true);
        done(&mut red, 8, ok, (25, 19));
        // DONE without OPEN (sonde started mid-connection): not observed.
        done(&mut red, 7, ok, (1, 1));
        let families = red.families();
        let route = [("http_route", "/users/*"), ("service_name", "srv")];
        assert_eq!(
            value(
                &families,
                "http_server_request_duration_seconds_count",
                &route
            ),
            3.0
        );
        let ok = [("http_response_status_code", "200")];
        assert_eq!(
            value(&families, "http_server_response_body_size_bytes_sum", &ok),
            10.0
        );
        assert_eq!(
            value(
                &families,
                "http_server_request_duration_seconds_bucket",
                &[("le", "0.025"), ("http_response_status_code", "404")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &families,
                "http_server_request_duration_seconds_bucket",
                &[("le", "0.01")]
            ),
            0.0
        );
        // Processes gone: their connections stay for one round (their last
        // events may still wait in the ring), a request ended then counts.
        red.retain(|_| false);
        done(
            &mut red,
            5,
            ("GET /users/5 HTTP/1.1\r\n\r\n", status),
            (25, 39),
        );
        let count = |red: &Red| {
            value(
                &red.families(),
                "http_server_request_duration_seconds_count",
                &[("http_response_status_code", "200")],
            )
        };
        assert_eq!(count(&red), 3.0);
        red.retain(|_| false);
        assert!(red.connections.is_empty());
        assert_eq!(red.series.len(), 2, "recent series stay");
        red.forget_after = Duration::ZERO;
        red.retain(|_| false);
        assert!(red.series.is_empty() && red.routes.is_empty());
    }

    #[test]
    fn pipelined_requests_are_each_counted() {
        let mut red = red();
        let conn = Conn { tgid: 1, fd: 3 };
        let heads = "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\n\r\n";
        open(&mut red, 3);
        // The first response's head comes with DONE, the next ones before.
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
        let next: [&[u8]; 2] = [b"HTTP/1.1 201 Created\r\n\r\n", b"HTTP/1.1 404 No\r\n\r\n"];
        for (i, head) in next.iter().enumerate() {
            red.observe(Event::Response {
                conn,
                start_ns: 0,
                ns: 20 + i as u64 * 10,
                before: [39, 39 + 24][i],
                head,
            });
        }
        red.observe(Event::Done {
            conn,
            start_ns: 0,
            end_ns: 40,
            request_bytes: heads.len() as u64,
            response_bytes: 39 + 24 + 19,
            request_head: heads.as_bytes(),
            response_head: ok,
            closed: false,
        });
        let families = red.families();
        let count =
            |l: &[(&str, &str)]| value(&families, "http_server_request_duration_seconds_count", l);
        assert_eq!(count(&[]), 3.0);
        assert_eq!(
            count(&[("http_route", "/b"), ("http_response_status_code", "201")]),
            1.0
        );
        assert_eq!(
            count(&[("http_route", "/c"), ("http_response_status_code", "404")]),
            1.0
        );
        let sum = |name: &str, route: &str| value(&families, name, &[("http_route", route)]);
        assert_eq!(sum("http_server_request_body_size_bytes_sum", "/b"), 2.0);
        assert_eq!(sum("http_server_response_body_size_bytes_sum", "/a"), 1.0);
        assert_eq!(sum("http_server_response_body_size_bytes_sum", "/b"), 0.0);
        // /a ends when /b's response starts, /c at the batch's last write.
        assert_eq!(sum("http_server_request_duration_seconds_sum", "/a"), 20e-9);
        assert_eq!(sum("http_server_request_duration_seconds_sum", "/c"), 40e-9);
    }

    #[test]
    fn a_client_call_is_labelled_by_its_peer() {
        let mut red = red();
        let conn = Conn { tgid: 1, fd: 4 };
        let head = "POST /orders/42 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        red.observe(Event::Open {
            conn,
            key: 4,
            parent: 0,
            cgroup: 0,
            comm: b"cli",
            listen_fd: -1,
            role: Role::Client,
            server: Some("192.0.2.7:8443".parse().unwrap()),
        });
        done(
            &mut red,
            4,
            (head, b"HTTP/1.1 201 Created\r\n\r\n"),
            (head.len() as u64, 23),
        );
        let families = red.families();
        let call = [
            ("server_address", "192.0.2.7"),
            ("server_port", "8443"),
            ("http_route", "/orders/*"),
            ("http_response_status_code", "201"),
        ];
        let count = |name: &str| value(&families, name, &call);
        assert_eq!(count("http_client_request_duration_seconds_count"), 1.0);
        assert_eq!(count("http_client_request_body_size_bytes_sum"), 3.0);
        assert_eq!(count("http_server_request_duration_seconds_count"), 0.0);
    }

    #[test]
    fn connections_the_config_does_not_select_are_not_counted() {
        let config = crate::config::Config::parse(
            "[collect.http]\nroute_patterns = [\"/orders/{id}\"]\n[[collect.http.exclude]]\nports = \"8443\"\n",
        )
        .unwrap();
        let mut red = Red::new(Duration::from_secs(300), &config.collect.http).unwrap();
        for (fd, port) in [(4, 8443), (5, 8080)] {
            let left_out = red.observe(Event::Open {
                conn: Conn { tgid: 1, fd },
                key: 100 + fd as u64,
                parent: 0,
                cgroup: 0,
                comm: b"cli",
                listen_fd: -1,
                role: Role::Client,
                server: Some(SocketAddr::from(([192, 0, 2, 7], port))),
            });
            assert_eq!(left_out.map(|(key, _)| key), (port == 8443).then_some(104));
            let head = "GET /orders/42 HTTP/1.1\r\n\r\n";
            done(&mut red, fd, (head, b"HTTP/1.1 200 OK\r\n\r\n"), (26, 19));
        }
        let families = red.families();
        let count = |port| {
            value(
                &families,
                "http_client_request_duration_seconds_count",
                &[("server_port", port), ("http_route", "/orders/{id}")],
            )
        };
        assert_eq!((count("8443"), count("8080")), (0.0, 1.0));
        let info = families.iter().find(|f| f.name == "target_info").unwrap();
        assert_eq!(info.series.len(), 1, "the process measured on 8080");
    }

    /// HTTP/2 bytes on a connection OPEN named: `(received, bytes)` each.
    fn h2(red: &mut Red, fd: i32, chunks: &[(bool, &[u8])]) {
        let ns = monotonic_ns();
        for (received, bytes) in chunks {
            let pieces = h2::pieces(&[(0, bytes)]);
            red.observe(Event::H2 {
                conn: Conn { tgid: 1, fd },
                received: *received,
                ns,
                chunk: h2::Chunk {
                    len: bytes.len() as u64,
                    pieces: &pieces,
                    lost: false,
                },
            });
        }
    }

    #[test]
    fn http2_streams_are_requests_and_grpc_calls_rpcs() {
        use h2::frame;
        let mut red = red();
        open(&mut red, 9);
        let (mut client, mut server) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
        let (headers, end_headers_and_stream, data) = (1, 0x4 | 0x1, 0);
        let mut request = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let get = client.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/users/1")]);
        request.extend(frame(headers, end_headers_and_stream, 1, &get));
        let call = client.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":path", b"/shop.Cart/Add"),
            (b"content-type", b"application/grpc"),
        ]);
        request.extend(frame(headers, 0x4, 3, &call));
        request.extend(frame(data, 0x1, 3, &[0, 0, 0, 0, 0]));
        let ok = server.encode([(&b":status"[..], &b"200"[..])]);
        let mut response = frame(headers, 0x4, 1, &ok);
        response.extend(frame(data, 0x1, 1, b"hello"));
        let grpc_ok = server.encode([(&b":status"[..], &b"200"[..])]);
        response.extend(frame(headers, 0x4, 3, &grpc_ok));
        let trailers = server.encode([(&b"grpc-status"[..], &b"0"[..])]);
        response.extend(frame(headers, end_headers_and_stream, 3, &trailers));
        h2(&mut red, 9, &[(true, &request), (false, &response)]);
        let families = red.families();
        let http = [
            ("http_route", "/users/*"),
            ("http_response_status_code", "200"),
        ];
        assert_eq!(
            value(
                &families,
                "http_server_request_duration_seconds_count",
                &http
            ),
            1.0
        );
        assert_eq!(
            value(&families, "http_server_response_body_size_bytes_sum", &http),
            5.0
        );
        let rpc = [
            ("rpc_method", "/shop.Cart/Add"),
            ("rpc_grpc_status_code", "0"),
            ("rpc_system", "grpc"),
        ];
        assert_eq!(
            value(&families, "rpc_server_duration_seconds_count", &rpc),
            1.0
        );
        assert_eq!(
            value(&families, "http_server_request_duration_seconds_count", &[]),
            1.0,
            "the gRPC call is no HTTP request"
        );
        // The call served is in the request log, with its code.
        let filter = log::Filter {
            route: Some("/shop.Cart/Add".into()),
            limit: 10,
            ..log::Filter::default()
        };
        let logged = red.log.query(&filter, crate::collect::now_ms());
        assert!(
            logged
                .iter()
                .any(|e| e.grpc_status == Some(0) && e.method == "POST" && e.status == 200),
            "{logged:?}"
        );
        // A chunk whose frames the program could not follow: given up,
        // counted, and the program told to stop sending the connection's
        // bytes.
        let conn = Conn { tgid: 1, fd: 9 };
        let stop = red.observe(Event::H2 {
            conn,
            received: true,
            ns: 0,
            chunk: h2::Chunk {
                len: 100,
                pieces: &[],
                lost: true,
            },
        });
        assert_eq!(stop, Some((9, conn)));
        let families = red.families();
        assert_eq!(
            value(&families, "sonde_http_h2_connections_lost_total", &[]),
            1.0
        );
    }
}
