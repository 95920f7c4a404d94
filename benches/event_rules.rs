//! Events per second the event-rule engine sustains: synthetic kernel
//! events (a churn of processes: each execs, connects twice and exits;
//! one in ten is a shell under "nginx" that connects out, which completes
//! a sequence) fed through event rules on one thread, as the event reader
//! feeds them. Three rule sets: one sequence; 20 rules, a realistic file
//! (10 sequences, 10 single events); 100 rules. No alert is sent (the
//! senders' queues are not what is measured).
//!
//!     cargo bench --bench event_rules       # with the Makefile's flags, see BENCHMARKS.md

use std::sync::Arc;
use std::time::Instant;

use sonde::alert::rulefile;
use sonde::alert::sequence::{self, EventRules, External};
use sonde::collect::events::{Event, Kind, Parent, Process, ProcessId};

/// Processes in the synthetic churn; four events each.
const PROCESSES: u32 = 250_000;

fn rules(sequences: usize, singles: usize) -> String {
    let mut text = String::from("groups:\n  - name: bench\n    event_rules:\n");
    for i in 0..sequences {
        text.push_str(&format!(
            "      - alert: Sequence{i}\n        sequence:\n          by: process\n          within: 30s\n          steps:\n            - event: exec\n              where: 'exe =~ \".*/(ba|da)?sh\" && parent.comm == \"nginx{}\"'\n            - event: connect\n              where: '!is_local(peer) && !is_private(peer)'\n",
            if i == 0 { String::new() } else { i.to_string() }
        ));
    }
    for i in 0..singles {
        text.push_str(&format!(
            "      - alert: Single{i}\n        event: exec\n        where: 'comm == \"miner{i}\" || starts_with(exe, \"/tmp/{i}/\")'\n"
        ));
    }
    text
}

fn event(kind: Kind, pid: u32, time_ms: i64, shell: bool) -> Event {
    let process = Process {
        id: ProcessId {
            pid,
            start_ns: u64::from(pid) * 1000,
        },
        comm: if shell { "sh" } else { "worker" }.into(),
        unit: Some("nginx.service".into()),
        container: None,
    };
    let parent = Parent {
        id: ProcessId {
            pid: 1,
            start_ns: 1,
        },
        comm: if shell { "nginx" } else { "systemd" }.into(),
    };
    let mut event = Event::new(kind, time_ms, process, parent);
    match kind {
        Kind::Exec => {
            event.exe = Some(
                if shell {
                    "/usr/bin/sh"
                } else {
                    "/usr/bin/worker"
                }
                .into(),
            )
        }
        Kind::Connect => {
            let peer = if shell {
                "192.0.2.1:443"
            } else {
                "10.0.0.5:5432"
            };
            event.peer = Some(peer.parse().unwrap());
        }
        Kind::Exit => event.exit_code = Some(0),
        _ => {}
    }
    event
}

fn churn() -> Vec<Arc<Event>> {
    let mut events = Vec::with_capacity(PROCESSES as usize * 4);
    for pid in 0..PROCESSES {
        let shell = pid % 10 == 0;
        let at = i64::from(pid);
        for kind in [Kind::Exec, Kind::Connect, Kind::Connect, Kind::Exit] {
            events.push(Arc::new(event(kind, pid, at, shell)));
        }
    }
    events
}

fn run(name: &str, sequences: usize, singles: usize, events: &[Arc<Event>]) {
    let file = rulefile::parse(
        std::path::Path::new("bench.yml"),
        &rules(sequences, singles),
    )
    .expect("the bench's rules load");
    let groups: Vec<_> = file.groups.iter().collect();
    let engine = EventRules::new(sequence::specs(&groups), Vec::new(), External::default());
    let start = Instant::now();
    let matched: usize = events.iter().map(|e| engine.observe_quietly(e)).sum();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>9} events in {seconds:.3} s: {:>10.0} events/s, {:>6.0} ns/event, {matched} matches",
        events.len(),
        events.len() as f64 / seconds,
        seconds * 1e9 / events.len() as f64
    );
}

fn main() {
    let events = churn();
    run("1 sequence", 1, 0, &events);
    run("10 sequences + 10 singles", 10, 10, &events);
    run("50 sequences + 50 singles", 50, 50, &events);
}
