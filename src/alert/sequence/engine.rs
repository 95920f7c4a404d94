//! The matching engine: every event goes through every event rule; a rule
//! says when its events make a match.
//!
//! The rule, stated once: a sequence of n steps matches when events e1..en
//! of one key (the process, pid plus start time; or the parent) arrive in
//! that order, each of its step's kind and meeting its condition, with
//! en's time - e1's time <= `within`. Events between them that fit no next
//! step are ignored. A single-event rule (one step) matches every event that
//! fits it.
//!
//! Invariants the code keeps:
//! - a key holds at most one partial match per rule, the earliest begun:
//!   an event fitting step 1 while one is under way does not restart it;
//! - a partial match older than `within` is dropped before the event is
//!   looked at (counted in `expired`), so a late step never completes it;
//! - a completed match is removed as it is returned: it fires exactly once,
//!   and a second match needs its first step again;
//! - a process's exit drops the partial matches keyed by it, which could
//!   never complete (a reused pid is a new key anyway, its start time differs);
//! - at most [`MAX_PARTIAL`] partial matches per rule: beyond, the oldest
//!   begun goes (counted in `evicted`), so memory does not follow the
//!   number of processes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::spec::{By, EventRuleSpec};
use crate::collect::events::{Event, Kind, ProcessId};

/// Partial matches one rule keeps, across every key (each holds its events
/// so far: a few hundred bytes).
pub const MAX_PARTIAL: usize = 10_000;

/// What a rule matched: its events, in order.
#[derive(Clone, Debug)]
pub struct Match {
    pub rule: Arc<EventRuleSpec>,
    /// The identity the events share (by process: the process; by
    /// parent: the parent).
    pub key: ProcessId,
    pub events: Vec<Arc<Event>>,
}

struct Partial {
    events: Vec<Arc<Event>>,
    /// Its place in `RuleState::begun`.
    begun: (i64, u64),
}

/// One rule's partial matches and counts.
pub struct RuleState {
    pub spec: Arc<EventRuleSpec>,
    partial: HashMap<ProcessId, Partial>,
    /// (first event's time, arrival number) -> key: the oldest first, for
    /// eviction.
    begun: BTreeMap<(i64, u64), ProcessId>,
    arrivals: u64,
    pub matches: u64,
    pub expired: u64,
    pub evicted: u64,
}

impl RuleState {
    pub fn new(spec: Arc<EventRuleSpec>) -> RuleState {
        RuleState {
            spec,
            partial: HashMap::new(),
            begun: BTreeMap::new(),
            arrivals: 0,
            matches: 0,
            expired: 0,
            evicted: 0,
        }
    }

    /// Partial matches held now.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    fn key(&self, event: &Event) -> ProcessId {
        match self.spec.by {
            By::Process => event.process.id,
            By::Parent => event.parent.id,
        }
    }

    fn remove(&mut self, key: &ProcessId) -> Option<Partial> {
        let partial = self.partial.remove(key)?;
        self.begun.remove(&partial.begun);
        Some(partial)
    }

    /// Feeds one event; the match it completes, if any.
    pub fn observe(&mut self, event: &Arc<Event>) -> Option<Match> {
        if self.spec.steps.len() == 1 {
            return fits(&self.spec, 0, event).then(|| {
                self.matches += 1;
                Match {
                    rule: Arc::clone(&self.spec),
                    key: self.key(event),
                    events: vec![Arc::clone(event)],
                }
            });
        }
        let key = self.key(event);
        let found = self.observe_sequence(key, event);
        if event.kind == Kind::Exit {
            self.remove(&event.process.id);
        }
        found
    }

    fn observe_sequence(&mut self, key: ProcessId, event: &Arc<Event>) -> Option<Match> {
        if let Some(partial) = self.partial.get(&key) {
            if event.time_ms - partial.begun.0 > self.spec.within_ms {
                self.remove(&key);
                self.expired += 1;
            }
        }
        if let Some(partial) = self.partial.get_mut(&key) {
            if !fits(&self.spec, partial.events.len(), event) {
                return None;
            }
            partial.events.push(Arc::clone(event));
            if partial.events.len() < self.spec.steps.len() {
                return None;
            }
            let done = self.remove(&key)?;
            self.matches += 1;
            return Some(Match {
                rule: Arc::clone(&self.spec),
                key,
                events: done.events,
            });
        }
        if !fits(&self.spec, 0, event) {
            return None;
        }
        if self.partial.len() >= MAX_PARTIAL {
            if let Some((begun, oldest)) = self.begun.pop_first() {
                self.partial.remove(&oldest);
                if event.time_ms - begun.0 > self.spec.within_ms {
                    self.expired += 1;
                } else {
                    self.evicted += 1;
                }
            }
        }
        self.arrivals += 1;
        let begun = (event.time_ms, self.arrivals);
        self.begun.insert(begun, key);
        self.partial.insert(
            key,
            Partial {
                events: vec![Arc::clone(event)],
                begun,
            },
        );
        None
    }
}

/// Whether `event` is what step `index` of `spec` waits for.
fn fits(spec: &EventRuleSpec, index: usize, event: &Event) -> bool {
    let step = &spec.steps[index];
    step.kind == event.kind && step.condition.matches(event)
}

/// Every rule's state.
#[derive(Default)]
pub struct Engine {
    pub rules: Vec<RuleState>,
}

impl Engine {
    pub fn new(specs: impl IntoIterator<Item = EventRuleSpec>) -> Engine {
        Engine {
            rules: specs
                .into_iter()
                .map(|spec| RuleState::new(Arc::new(spec)))
                .collect(),
        }
    }

    /// Feeds one event to every rule; the matches it completes.
    pub fn observe(&mut self, event: &Arc<Event>) -> Vec<Match> {
        self.rules
            .iter_mut()
            .filter_map(|rule| rule.observe(event))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::{Step, DEFAULT_RESOLVE_AFTER_MS};
    use super::*;
    use crate::alert::sequence::condition::Condition;
    use crate::collect::events::tests::event;

    fn step(kind: Kind, text: &str) -> Step {
        Step {
            kind,
            condition: Condition::parse(text).unwrap(),
            text: text.to_string(),
        }
    }

    /// exec of a shell, then a connect out, within 30 s, by process.
    fn shell_connects() -> RuleState {
        RuleState::new(Arc::new(EventRuleSpec {
            alert: "ShellConnects".into(),
            steps: vec![
                step(Kind::Exec, r#"exe =~ ".*/sh""#),
                step(Kind::Connect, "!is_local(peer)"),
            ],
            by: By::Process,
            within_ms: 30_000,
            labels: Vec::new(),
            annotations: Vec::new(),
            resolve_after_ms: DEFAULT_RESOLVE_AFTER_MS,
        }))
    }

    fn feed(rule: &mut RuleState, events: &[Event]) -> usize {
        events
            .iter()
            .filter_map(|e| rule.observe(&Arc::new(e.clone())))
            .count()
    }

    #[test]
    fn fires_once_in_time_and_in_order_only() {
        let mut rule = shell_connects();
        // In time: once, and a second connect does not fire again.
        let in_time = [
            event(Kind::Exec, 10, 1, 0),
            event(Kind::Connect, 10, 1, 1_000),
            event(Kind::Connect, 10, 1, 2_000),
        ];
        assert_eq!(feed(&mut rule, &in_time), 1);
        // Too late.
        let late = [
            event(Kind::Exec, 11, 1, 0),
            event(Kind::Connect, 11, 1, 30_001),
        ];
        assert_eq!(feed(&mut rule, &late), 0);
        assert_eq!(rule.expired, 1);
        // Out of order.
        let reversed = [event(Kind::Connect, 12, 1, 0), event(Kind::Exec, 12, 1, 1)];
        assert_eq!(feed(&mut rule, &reversed), 0);
        // A reused pid: another start time is another process.
        let reused = [event(Kind::Exec, 13, 1, 0), event(Kind::Connect, 13, 2, 1)];
        assert_eq!(feed(&mut rule, &reused), 0);
        assert_eq!(rule.matches, 1);
    }

    #[test]
    fn an_exit_ends_the_partial_match_and_the_bound_evicts_the_oldest() {
        let mut rule = shell_connects();
        feed(&mut rule, &[event(Kind::Exec, 20, 1, 0)]);
        assert_eq!(rule.pending(), 1);
        feed(&mut rule, &[event(Kind::Exit, 20, 1, 5)]);
        assert_eq!(rule.pending(), 0);
        for pid in 0..MAX_PARTIAL as u32 + 5 {
            feed(&mut rule, &[event(Kind::Exec, 1000 + pid, 1, 10)]);
        }
        assert_eq!(rule.pending(), MAX_PARTIAL);
        assert_eq!(rule.evicted, 5);
        // The oldest went: pid 1000's connect no longer completes.
        assert_eq!(feed(&mut rule, &[event(Kind::Connect, 1000, 1, 20)]), 0);
        assert_eq!(feed(&mut rule, &[event(Kind::Connect, 1005, 1, 20)]), 1);
    }

    #[test]
    fn by_parent_joins_the_children_of_one_parent() {
        let mut rule = shell_connects();
        Arc::get_mut(&mut rule.spec).unwrap().by = By::Parent;
        // One child execs the shell, a sibling connects: one parent, a match.
        let siblings = [event(Kind::Exec, 30, 1, 0), event(Kind::Connect, 31, 1, 10)];
        assert_eq!(feed(&mut rule, &siblings), 1);
        // Children of another parent (another start time) do not join.
        let mut exec = event(Kind::Exec, 32, 1, 20);
        exec.parent.id.start_ns = 2;
        assert_eq!(feed(&mut rule, &[exec, event(Kind::Connect, 33, 1, 30)]), 0);
    }

    #[test]
    fn a_single_event_rule_fires_at_each_event() {
        let mut rule = RuleState::new(Arc::new(EventRuleSpec {
            alert: "Exec".into(),
            steps: vec![step(Kind::Exec, r#"comm == "sh""#)],
            by: By::Process,
            within_ms: 0,
            labels: Vec::new(),
            annotations: Vec::new(),
            resolve_after_ms: DEFAULT_RESOLVE_AFTER_MS,
        }));
        let events = [
            event(Kind::Exec, 1, 1, 0),
            event(Kind::Connect, 1, 1, 0),
            event(Kind::Exec, 2, 1, 0),
        ];
        assert_eq!(feed(&mut rule, &events), 2);
    }
}
