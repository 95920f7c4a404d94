//! The scheduler collector end to end: a process that keeps sleeping briefly
//! while a busy loop holds the one CPU both are pinned to waits in the run
//! queue on every wakeup, which moves the run-queue histogram (its own
//! unit's among them), and it switches voluntarily each time it sleeps.

mod common;
mod kernel;

use std::process::{Command, Stdio};

use common::{ExposedSample, Sonde};
use kernel::{attached, cgroup_v2_root, value, wait_for, NamedProgram, TestCgroup, NO_BUDGET};

const SLEEPS: usize = 50;

/// Run-queue waits longer than 1 ms in the histogram of `labels`.
fn slow_waits(samples: &[ExposedSample], labels: &[(&str, &str)]) -> f64 {
    let all = value(samples, "sonde_runqueue_latency_seconds_count", labels);
    let mut with_le = labels.to_vec();
    with_le.push(("le", "0.001024"));
    all - value(samples, "sonde_runqueue_latency_seconds_bucket", &with_le)
}

#[test]
fn a_task_waiting_for_a_busy_cpu_moves_the_runqueue_histogram() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "sched") {
        return;
    }
    let before = sonde.metrics();
    // Both on CPU 0: the busy loop at normal priority, the sleeper at the
    // lowest, so each wakeup finds the CPU taken.
    let mut busy = Command::new("taskset")
        .args(["-c", "0", "sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let bash = NamedProgram::new("/bin/bash", "srunq");
    let unit = format!("sonde-runq-{}.service", std::process::id());
    // Kept until sonde has read the histogram: a cgroup removed before
    // sonde first resolves its id cannot be named any more.
    let cgroup =
        cgroup_v2_root().map(|root| TestCgroup::new(&root, &format!("system.slice/{unit}")));
    let waited = {
        let args = [
            "-c",
            "0",
            "nice",
            "-n",
            "19",
            bash.path.to_str().unwrap(),
            "-c",
            // `read -t` sleeps without forking: stdin is a pipe never written.
            &format!("for i in $(seq {SLEEPS}); do read -t 0.002; done; exit 0"),
        ];
        let mut sleeper = match &cgroup {
            Some(cgroup) => cgroup.spawn_inside("taskset".as_ref(), &args),
            None => {
                let mut c = Command::new("taskset");
                c.args(args);
                c
            }
        };
        let mut child = sleeper.stdin(Stdio::piped()).spawn().unwrap();
        // Held open until the sleeper ends (wait() would close it first).
        let _stdin = child.stdin.take();
        let status = child.wait().unwrap();
        let _ = busy.kill();
        let _ = busy.wait();
        status
    };
    assert!(waited.success());

    let comm = [("comm", bash.comm.as_str()), ("kind", "voluntary")];
    let own = [("unit", unit.as_str())];
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_context_switches_total", &comm) >= SLEEPS as f64
            && slow_waits(s, &[]) > slow_waits(&before, &[])
            && value(s, "sonde_runqueue_latency_seconds_count", &own) >= SLEEPS as f64
    });
    let switches = value(&samples, "sonde_context_switches_total", &comm);
    assert!(
        switches >= SLEEPS as f64,
        "each sleep is a voluntary switch: {switches} for {SLEEPS} sleeps"
    );
    let moved = slow_waits(&samples, &[]) - slow_waits(&before, &[]);
    assert!(
        moved >= 1.0,
        "no run-queue wait over 1 ms while the CPU was busy"
    );
    if cgroup_v2_root().is_some() {
        let own = value(
            &samples,
            "sonde_runqueue_latency_seconds_count",
            &[("unit", unit.as_str())],
        );
        assert!(own >= SLEEPS as f64, "{unit}: {own} run-queue waits");
    }
    drop(cgroup);
}
