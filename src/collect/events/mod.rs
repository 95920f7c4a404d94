//! The kernel event stream: what processes did, one event at a time (exec,
//! exit, fatal signal, OOM kill, TCP connect, accept and listen, open for
//! writing under a configured path), as `bpf/events.bpf.c` reports them and
//! [`crate::collect::bpf::events`] decodes them.
//!
//! This module owns the decoded [`Event`] and the process-wide [`Stream`]:
//! the last `[collect.bpf] recent_events` events in memory (for
//! `/api/v1/events` and the Kernel view: what started, connected or was
//! killed just before a spike) and the [`Subscriber`]s every event is handed
//! to as it arrives (the event rules, [`crate::alert::sequence`]).
//!
//! There is one stream per sonde: one kernel ring buffer feeds it, and the
//! rules and the HTTP server, started apart, reach it through [`stream`].
//!
//! Invariants:
//! - events reach subscribers in the order the reader took them from the
//!   ring, one reader thread, so a subscriber sees one CPU's events in the
//!   order they happened (across CPUs the ring's order is the order of
//!   reservation, which is the order of the hooks within microseconds);
//! - `recent` never holds more than its capacity: the oldest goes first;
//! - a process is named by pid and start time ([`ProcessId`]), never by pid
//!   alone, since pids are reused.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::model::Family;

/// What happened. The names are the `event:` of rules, the `kind` of the
/// API and the `kind` label of `sonde_events_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Exec,
    Exit,
    Signal,
    OomKill,
    Connect,
    Accept,
    Listen,
    OpenWrite,
}

impl Kind {
    /// In the order of `enum event_kind` (bpf/sonde.h).
    pub const ALL: [Kind; 8] = [
        Kind::Exec,
        Kind::Exit,
        Kind::Signal,
        Kind::OomKill,
        Kind::Connect,
        Kind::Accept,
        Kind::Listen,
        Kind::OpenWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Exit => "exit",
            Kind::Signal => "signal",
            Kind::OomKill => "oom_kill",
            Kind::Connect => "connect",
            Kind::Accept => "accept",
            Kind::Listen => "listen",
            Kind::OpenWrite => "open_write",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A process for as long as it lives: its pid and when it started
/// (CLOCK_MONOTONIC ns). Two processes that share a pid never share this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_ns: u64,
}

/// The process an event is about, and where it lives.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Process {
    #[serde(flatten)]
    pub id: ProcessId,
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Its parent, as the kernel knew it when the event happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Parent {
    #[serde(flatten)]
    pub id: ProcessId,
    pub comm: String,
}

/// One event. Fields that do not apply to the kind are None (left out of
/// the API's JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub kind: Kind,
    /// When it happened, Unix ms.
    pub time_ms: i64,
    /// Exec, exit: the process; signal, OOM kill: the target; connect,
    /// listen: the caller; accept: the listener (pid 0 when sonde did not
    /// see it start listening).
    pub process: Process,
    pub parent: Parent,
    /// Exec: the file executed, as exec was given it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Exec: the arguments, argv[0] first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Connect: whom; accept: from whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
    /// Connect, accept, listen: the local port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Signal: its number; exit: the signal that ended it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<u32>,
    /// Signal: the sender's pid (0: the kernel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_pid: Option<u32>,
    /// Exit: the exit code, when no signal ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Open for writing: the path as the process named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A field's value, as the rules' conditions compare it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Num(f64),
}

/// Every field a condition may name, with what it holds (for `sonde check
/// rules` and the docs).
pub const FIELDS: &[(&str, &str)] = &[
    (
        "kind",
        "the event's kind: exec, exit, signal, oom_kill, connect, accept, listen, open_write",
    ),
    ("pid", "the process's pid"),
    ("comm", "the process's name (16 bytes at most)"),
    ("unit", "its systemd unit or slice, \"\" when none"),
    ("container", "its container, \"\" when none"),
    ("parent.pid", "the parent's pid"),
    ("parent.comm", "the parent's name"),
    ("exe", "exec: the file executed"),
    ("args", "exec: the arguments, joined by spaces"),
    ("peer", "connect, accept: the peer's address"),
    (
        "port",
        "connect, accept: the peer's port; listen: the local port",
    ),
    ("local_port", "connect, accept, listen: the local port"),
    (
        "signal",
        "signal: its name (SIGKILL); exit: the signal that ended it",
    ),
    ("sender_pid", "signal: the sender's pid"),
    ("exit_code", "exit: the exit code"),
    ("path", "open_write: the path opened"),
];

impl Event {
    /// An event of `kind`, its kind's own fields (exe, peer...) not set yet.
    pub fn new(kind: Kind, time_ms: i64, process: Process, parent: Parent) -> Event {
        Event {
            kind,
            time_ms,
            process,
            parent,
            exe: None,
            args: Vec::new(),
            peer: None,
            local_port: None,
            signal: None,
            sender_pid: None,
            exit_code: None,
            path: None,
        }
    }

    /// The value of a field of [`FIELDS`]; None when it does not apply to
    /// this event (a condition on it is then false).
    pub fn field(&self, name: &str) -> Option<Value<'_>> {
        let text = |s: &str| Some(Value::Str(Cow::Owned(s.to_string())));
        let num = |n: f64| Some(Value::Num(n));
        match name {
            "kind" => Some(Value::Str(Cow::Borrowed(self.kind.name()))),
            "pid" => num(f64::from(self.process.id.pid)),
            "comm" => Some(Value::Str(Cow::Borrowed(&self.process.comm))),
            "unit" => Some(Value::Str(Cow::Borrowed(
                self.process.unit.as_deref().unwrap_or(""),
            ))),
            "container" => Some(Value::Str(Cow::Borrowed(
                self.process.container.as_deref().unwrap_or(""),
            ))),
            "parent.pid" => num(f64::from(self.parent.id.pid)),
            "parent.comm" => Some(Value::Str(Cow::Borrowed(&self.parent.comm))),
            "exe" => self.exe.as_deref().map(|s| Value::Str(Cow::Borrowed(s))),
            "args" => {
                (self.kind == Kind::Exec).then(|| Value::Str(Cow::Owned(self.args.join(" "))))
            }
            "peer" => self.peer.and_then(|p| text(&p.ip().to_string())),
            "port" => match self.kind {
                Kind::Listen => self.local_port.and_then(|p| num(f64::from(p))),
                _ => self.peer.and_then(|p| num(f64::from(p.port()))),
            },
            "local_port" => self.local_port.and_then(|p| num(f64::from(p))),
            "signal" => self
                .signal
                .and_then(|s| text(&crate::collect::bpf::process::signal_name(s))),
            "sender_pid" => self.sender_pid.and_then(|p| num(f64::from(p))),
            "exit_code" => self.exit_code.and_then(|c| num(f64::from(c))),
            "path" => self.path.as_deref().map(|s| Value::Str(Cow::Borrowed(s))),
            _ => None,
        }
    }

    /// One line for an alert's annotations: when, what, who.
    pub fn render(&self) -> String {
        let mut line = format!(
            "{} {} pid={} comm={:?}",
            crate::civil::rfc3339(self.time_ms),
            self.kind.name(),
            self.process.id.pid,
            self.process.comm
        );
        if let Some(unit) = &self.process.unit {
            line.push_str(&format!(" unit={unit}"));
        }
        if let Some(container) = &self.process.container {
            line.push_str(&format!(" container={container}"));
        }
        line.push_str(&format!(
            " parent={}({:?})",
            self.parent.id.pid, self.parent.comm
        ));
        if let Some(exe) = &self.exe {
            line.push_str(&format!(" exe={exe:?} args={:?}", self.args.join(" ")));
        }
        if let Some(peer) = self.peer {
            line.push_str(&format!(" peer={peer}"));
        }
        if let Some(Value::Str(name)) = self.field("signal") {
            line.push_str(&format!(" signal={name}"));
        }
        if let Some(code) = self.exit_code {
            line.push_str(&format!(" exit_code={code}"));
        }
        if let Some(path) = &self.path {
            line.push_str(&format!(" path={path:?}"));
        }
        line
    }
}

/// What wants every event as it arrives. Called on the reader thread: it
/// must not block for long (the ring fills meanwhile).
pub trait Subscriber: Send + Sync {
    fn observe(&self, event: &Arc<Event>);
}

/// Events kept in memory when `[collect.bpf] recent_events` is not read
/// (tests, benchmarks).
pub const DEFAULT_RECENT: usize = 1000;

/// The recent events and who is told of new ones.
pub struct Stream {
    inner: Mutex<Inner>,
}

struct Inner {
    recent: VecDeque<Arc<Event>>,
    capacity: usize,
    /// Events seen, by kind (index of [`Kind::ALL`]).
    counts: [u64; Kind::ALL.len()],
    subscribers: Vec<Arc<dyn Subscriber>>,
}

/// sonde's one stream.
pub fn stream() -> &'static Stream {
    static STREAM: OnceLock<Stream> = OnceLock::new();
    STREAM.get_or_init(|| Stream::new(DEFAULT_RECENT))
}

impl Stream {
    pub fn new(capacity: usize) -> Stream {
        Stream {
            inner: Mutex::new(Inner {
                recent: VecDeque::new(),
                capacity,
                counts: [0; Kind::ALL.len()],
                subscribers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A subscriber that panicked leaves no half-made state here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the last `capacity` events from now on.
    pub fn set_capacity(&self, capacity: usize) {
        let mut inner = self.lock();
        inner.capacity = capacity;
        while inner.recent.len() > capacity {
            inner.recent.pop_front();
        }
    }

    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.lock().subscribers.push(subscriber);
    }

    /// Keeps `event` and hands it to every subscriber (outside the lock, so
    /// the API reads the recent events meanwhile).
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let subscribers = {
            let mut inner = self.lock();
            inner.counts[event.kind.index()] += 1;
            if inner.capacity > 0 {
                if inner.recent.len() == inner.capacity {
                    inner.recent.pop_front();
                }
                inner.recent.push_back(Arc::clone(&event));
            }
            inner.subscribers.clone()
        };
        for subscriber in subscribers {
            subscriber.observe(&event);
        }
    }

    /// The last `limit` events of `kind` (any kind when None), newest first.
    pub fn recent(&self, kind: Option<Kind>, limit: usize) -> Vec<Arc<Event>> {
        self.lock()
            .recent
            .iter()
            .rev()
            .filter(|event| kind.is_none_or(|kind| event.kind == kind))
            .take(limit)
            .cloned()
            .collect()
    }

    /// `sonde_events_total` by kind.
    pub fn families(&self) -> Vec<Family> {
        let counts = self.lock().counts;
        let mut total = Family::counter(
            "sonde_events_total",
            "Kernel events read from the event stream, by kind (lost ones are in sonde_bpf_map_full_total{map=\"events\"}).",
        );
        for (kind, count) in Kind::ALL.into_iter().zip(counts) {
            total.push(&[("kind", kind.name())], count as f64);
        }
        vec![total]
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An event of `kind` by process `pid` started at `start_ns`, for tests
    /// of the stream and the rules.
    pub fn event(kind: Kind, pid: u32, start_ns: u64, time_ms: i64) -> Event {
        let process = Process {
            id: ProcessId { pid, start_ns },
            comm: "sh".into(),
            unit: Some("nginx.service".into()),
            container: None,
        };
        let parent = Parent {
            id: ProcessId {
                pid: 1,
                start_ns: 1,
            },
            comm: "nginx".into(),
        };
        let mut event = Event::new(kind, time_ms, process, parent);
        match kind {
            Kind::Exec => {
                event.exe = Some("/usr/bin/sh".into());
                event.args = vec!["sh".into(), "-c".into(), "true".into()];
            }
            Kind::Connect => event.peer = Some("192.0.2.1:80".parse().unwrap()),
            _ => {}
        }
        event
    }

    #[test]
    fn keeps_the_last_events_newest_first() {
        let stream = Stream::new(2);
        for pid in 1..=3 {
            stream.publish(event(Kind::Exec, pid, 1, 0));
        }
        stream.publish(event(Kind::Connect, 4, 1, 0));
        let pids: Vec<u32> = stream
            .recent(None, 10)
            .iter()
            .map(|e| e.process.id.pid)
            .collect();
        assert_eq!(pids, [4, 3]);
        assert_eq!(stream.recent(Some(Kind::Exec), 10).len(), 1);
        let families = stream.families();
        let exec = families[0]
            .series
            .iter()
            .find(|s| s.labels.get("kind") == Some("exec"))
            .unwrap();
        assert_eq!(exec.value, 3.0);
    }

    #[test]
    fn fields_name_what_the_event_holds() {
        let exec = event(Kind::Exec, 7, 1, 0);
        assert_eq!(exec.field("exe"), Some(Value::Str("/usr/bin/sh".into())));
        assert_eq!(exec.field("args"), Some(Value::Str("sh -c true".into())));
        assert_eq!(exec.field("parent.comm"), Some(Value::Str("nginx".into())));
        assert_eq!(exec.field("peer"), None);
        let connect = event(Kind::Connect, 7, 1, 0);
        assert_eq!(connect.field("peer"), Some(Value::Str("192.0.2.1".into())));
        assert_eq!(connect.field("port"), Some(Value::Num(80.0)));
        assert!(connect.render().contains("peer=192.0.2.1:80"));
    }
}
