//! `input_events:`, sonde's extension to the test-file format: kernel
//! events a test group feeds to the `event_rules:` of its rule files, and
//! the alerts those rules raise as `alert_rule_test` sees them.
//!
//! An input event is [`Event`] as `/api/v1/events` writes it, with `at`
//! (a duration from the test's time 0, as `eval_time`) for `time_ms`:
//!
//! ```yaml
//! input_events:
//!   - at: 10s
//!     kind: exec                  # exec, exit, signal, oom_kill, connect, accept, listen, open_write
//!     process: { pid: 4242, start_ns: 7, comm: sh, unit: nginx.service }   # container: too
//!     parent: { pid: 100, start_ns: 1, comm: nginx }
//!     exe: /usr/bin/sh
//!     args: [sh, -c, id]
//!   - at: 12s
//!     kind: connect
//!     process: { pid: 4242, start_ns: 7, comm: sh, unit: nginx.service }
//!     peer: 203.0.113.9:4444      # connect, accept; local_port: too
//! ```
//!
//! `signal` takes a number or a name (`SIGKILL`); `sender_pid`,
//! `exit_code` and `path` are as in the API. `kind`, `at` and
//! `process.pid` must be set; the rest defaults to nothing (0 for start
//! times and the parent's pid). Two events are of one process when pid and
//! `start_ns` agree: a reused pid is the same pid with another `start_ns`.
//!
//! The rule, stated once: the events go, in `at` order (file order among
//! equal times), through the [`Engine`] the running sonde uses, every event
//! up to a time before that time's rule evaluation and before an
//! `alert_rule_test` at that `eval_time`. A match's alert (labels and
//! annotations as sent, `events` included, the test group's
//! `external_labels` left out of its labels as an alerting rule's are) is
//! firing at `eval_time` t when its match time m has m <= t < m +
//! `resolve_after`. A later match with the same labels replaces the alert
//! (an Alertmanager holds one alert per label set): its annotations are the
//! later match's and it fires until that one's `resolve_after`. Test time
//! 0 is the Unix epoch, as in promtool: the `events` line of an event `at:
//! 10s` begins `1970-01-01T00:00:10Z`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use super::Duration;
use crate::alert::rulefile::Scalar;
use crate::alert::sequence::{self, engine::Engine, spec::EventRuleSpec, External};
use crate::alert::Alert;
use crate::collect::bpf::process::signal_name;
use crate::collect::events::{Event, Kind, Parent, Process, ProcessId};
use crate::model::Labels;

/// One `input_events` entry as written (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InputEvent {
    /// Optional here only so that its absence is named as the others'.
    at: Option<Duration>,
    kind: String,
    process: InputProcess,
    #[serde(default)]
    parent: InputParent,
    exe: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    peer: Option<String>,
    local_port: Option<u16>,
    signal: Option<Scalar>,
    sender_pid: Option<u32>,
    exit_code: Option<i32>,
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputProcess {
    pid: u32,
    #[serde(default)]
    start_ns: u64,
    #[serde(default)]
    comm: String,
    unit: Option<String>,
    container: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputParent {
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    start_ns: u64,
    #[serde(default)]
    comm: String,
}

impl InputEvent {
    /// The event it describes; an error names the field.
    fn event(&self) -> Result<Event, String> {
        let Some(&Duration(time_ms)) = self.at.as_ref() else {
            return Err("at: must be set (when the event happens: 30s, 1m)".to_string());
        };
        let kind = Kind::from_name(&self.kind).ok_or_else(|| {
            format!(
                "kind: {:?}: expected one of {}",
                self.kind,
                Kind::ALL.map(Kind::name).join(", ")
            )
        })?;
        let process = Process {
            id: ProcessId {
                pid: self.process.pid,
                start_ns: self.process.start_ns,
            },
            comm: self.process.comm.clone(),
            unit: self.process.unit.clone(),
            container: self.process.container.clone(),
        };
        let parent = Parent {
            id: ProcessId {
                pid: self.parent.pid,
                start_ns: self.parent.start_ns,
            },
            comm: self.parent.comm.clone(),
        };
        let mut event = Event::new(kind, time_ms, process, parent);
        event.exe = self.exe.clone();
        event.args = self.args.clone();
        event.peer = match &self.peer {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                format!("peer: {text:?}: expected an address and port (192.0.2.1:80, [2001:db8::1]:443)")
            })?),
        };
        event.local_port = self.local_port;
        event.signal = match &self.signal {
            None => None,
            Some(Scalar(text)) => Some(signal_number(text).ok_or_else(|| {
                format!("signal: {text:?}: expected a number from 1 to 64 or a name (SIGKILL)")
            })?),
        };
        event.sender_pid = self.sender_pid;
        event.exit_code = self.exit_code;
        event.path = self.path.clone();
        Ok(event)
    }
}

/// A signal by number or by the name the rules see ([`signal_name`]).
pub(super) fn signal_number(text: &str) -> Option<u32> {
    match text.parse::<u32>() {
        Ok(number) => (1..=64).contains(&number).then_some(number),
        Err(_) => (1..=64).find(|&number| signal_name(number) == text),
    }
}

/// A test group's events and the event rules they go through.
pub(super) struct EventTimeline {
    /// Events not fed yet, in time order.
    unfed: VecDeque<Arc<Event>>,
    engine: Engine,
    external: External,
    /// The last alert raised per label set.
    raised: BTreeMap<Labels, Alert>,
}

impl EventTimeline {
    /// The events of `input` for `rules`; an error names the entry
    /// (`input_events[2]: peer: ...`).
    pub(super) fn new(
        input: &[InputEvent],
        rules: Vec<EventRuleSpec>,
        external: External,
    ) -> Result<EventTimeline, String> {
        let mut events = Vec::with_capacity(input.len());
        for (index, entry) in input.iter().enumerate() {
            let event = entry
                .event()
                .map_err(|e| format!("input_events[{index}]: {e}"))?;
            events.push(Arc::new(event));
        }
        // Stable: file order among equal times.
        events.sort_by_key(|event| event.time_ms);
        Ok(EventTimeline {
            unfed: events.into(),
            engine: Engine::new(rules),
            external,
            raised: BTreeMap::new(),
        })
    }

    /// Feeds the events up to `ts_ms`, keeping the alerts they raise.
    pub(super) fn feed_till(&mut self, ts_ms: i64) {
        while let Some(event) = self.unfed.front().filter(|e| e.time_ms <= ts_ms).cloned() {
            self.unfed.pop_front();
            for found in self.engine.observe(&event) {
                let alert = sequence::rule_alert(&found, &self.external);
                self.raised.insert(alert.labels.clone(), alert);
            }
        }
    }

    /// The alerts of `alertname` firing at `ts_ms`.
    pub(super) fn firing<'a>(
        &'a self,
        alertname: &'a str,
        ts_ms: i64,
    ) -> impl Iterator<Item = &'a Alert> + 'a {
        self.raised.values().filter(move |alert| {
            alert.labels.get("alertname") == Some(alertname)
                && alert.starts_at_ms <= ts_ms
                && ts_ms < alert.ends_at_ms
        })
    }
}
