//! The syscalls collector end to end: a child process with its own name makes
//! known syscalls, some failing, and sonde's /metrics and query API show them
//! and their errors under that name. Many short-lived names failing at once
//! stay within the series budget, every failure counted once. A known sleep
//! lands in its latency bucket. Also the fallback to classic tracepoints,
//! counting in task storage and a collector refused outright, all forced
//! with SONDE_BPF_REFUSE.

mod common;
mod kernel;

use std::time::Duration;

use common::{bpf_required, total, ExposedSample, Sonde, TempDir};
use kernel::{fork_named, poll, query_value, wait_for, NO_BUDGET};
use sonde::config::DEFAULT_SYSCALL_LATENCY_SAMPLE;

const CALLS: u64 = 100_000;
const FAILURES: u64 = 1_000;

/// Whether the syscalls collector attached; when it did not, says why and
/// tells the caller to skip (or fails, when BPF is required).
fn attached(sonde: &Sonde) -> Option<String> {
    let log = sonde.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("bpf collector syscalls:"))?;
    if line.contains("syscalls: on") {
        return Some(line.to_string());
    }
    assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but: {line}");
    eprintln!("skipping: the syscalls collector cannot load here: {line}");
    None
}

/// Forks a child named `comm` that calls getppid CALLS times, then runs
/// `then` and exits; returns its pid.
fn fork_named_child(comm: &str, then: impl FnOnce()) -> libc::pid_t {
    fork_named(comm, || {
        for _ in 0..CALLS {
            // SAFETY: getppid cannot fail.
            unsafe { libc::getppid() };
        }
        then();
    })
}

/// Waits for a child and checks it exited cleanly.
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0);
}

/// A path that does not exist: opening it fails with ENOENT.
const MISSING: &std::ffi::CStr = c"/nonexistent-sonde-test/missing";

/// Runs a child named `comm` that calls getppid CALLS times, then close(-1)
/// (EBADF) and openat of a missing path (ENOENT) FAILURES times each, and
/// waits for it.
fn run_child(comm: &str) {
    reap(fork_named_child(comm, || {
        for _ in 0..FAILURES {
            // SAFETY: closing an invalid descriptor and opening a missing
            // path only fail.
            unsafe {
                libc::close(-1);
                libc::open(MISSING.as_ptr(), libc::O_RDONLY);
            }
        }
    }));
}

/// Polls the query API (bounded) until `promql` answers `expected`; returns
/// the last answer.
fn wait_for_query(sonde: &Sonde, promql: &str, expected: f64) -> Option<f64> {
    poll(|| query_value(sonde, promql), |v| *v == Some(expected))
}

/// Runs a named child and checks its counts and errors are exact, and the
/// getppid latency histogram: its `_count` exact, its buckets exact when
/// sonde times every call (`timed_every` 1), else scaled from a sample of
/// one call in `timed_every` and within a tenth of the calls.
fn check_counts(sonde: &Sonde, comm: &str, timed_every: u32) {
    let errors = |s: &[ExposedSample], syscall: &str, errno: &str| {
        total(
            s,
            "sonde_syscall_errors_total",
            &[("comm", comm), ("syscall", syscall), ("errno", errno)],
        )
    };
    let latency_count = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscall_duration_seconds_count",
            &[("syscall", "getppid")],
        )
    };
    let before = sonde.metrics();
    run_child(comm);
    let calls = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscalls_total",
            &[("comm", comm), ("syscall", "getppid")],
        )
    };
    // close (3) and getppid (110) sit in different words of a thread's
    // bitmap of used syscalls: both are moved.
    let closes = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscalls_total",
            &[("comm", comm), ("syscall", "close")],
        )
    };
    // A round may end between the child's calls: wait for all of them.
    let after = wait_for(sonde, |s| {
        calls(s) >= CALLS as f64
            && closes(s) >= FAILURES as f64
            && errors(s, "close", "EBADF") >= FAILURES as f64
            && errors(s, "openat", "ENOENT") >= FAILURES as f64
    });
    assert_eq!(
        calls(&after),
        CALLS as f64,
        "sonde_syscalls_total{{comm={comm:?},syscall=\"getppid\"}}\n{}",
        sonde.log_text()
    );
    assert_eq!(closes(&after), FAILURES as f64);
    // Its failures, exactly, under its own name: in /metrics and stored.
    for (syscall, errno) in [("close", "EBADF"), ("openat", "ENOENT")] {
        assert_eq!(
            errors(&after, syscall, errno),
            FAILURES as f64,
            "sonde_syscall_errors_total{{comm={comm:?},syscall={syscall:?},errno={errno:?}}}"
        );
        let promql = format!(
            "sonde_syscall_errors_total{{comm=\"{comm}\",syscall=\"{syscall}\",errno=\"{errno}\"}}"
        );
        assert_eq!(
            wait_for_query(sonde, &promql, FAILURES as f64),
            Some(FAILURES as f64),
            "{promql}"
        );
    }
    // Every process's getppid calls: at least the child's.
    assert!(latency_count(&after) - latency_count(&before) >= CALLS as f64);
    let fast = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscall_duration_seconds_bucket",
            &[("syscall", "getppid"), ("le", "0.001024")],
        )
    };
    let fast = fast(&after) - fast(&before);
    let least = match timed_every {
        1 => CALLS as f64,
        _ => 0.9 * CALLS as f64,
    };
    assert!(
        fast >= least,
        "getppid calls take under 1 ms: {fast} of {CALLS} counted in le=0.001024, \
         one call in {timed_every} timed"
    );
}

#[test]
fn counts_a_named_childs_syscalls() {
    let sonde = Sonde::start(NO_BUDGET);
    let Some(line) = attached(&sonde) else { return };
    assert!(line.contains("(raw_tp)"), "{line}");
    check_counts(&sonde, "sonde-ppid-raw", DEFAULT_SYSCALL_LATENCY_SAMPLE);

    let samples = sonde.metrics();
    let runs = total(
        &samples,
        "sonde_bpf_program_runs_total",
        &[("program", "raw_sys_enter")],
    );
    assert!(runs >= CALLS as f64, "raw_sys_enter ran {runs} times");
    assert!(samples
        .iter()
        .any(|s| s.name == "sonde_bpf_map_full_total" && s.label("map") == Some("syscall_counts")));
    assert!(samples
        .iter()
        .any(|s| s.name == "sonde_bpf_events_lost_total"));
    let run_seconds = total(
        &samples,
        "sonde_bpf_program_run_seconds_total",
        &[("program", "raw_sys_enter")],
    );
    assert!(
        run_seconds > 0.0,
        "run time statistics are on while sonde runs"
    );
}

/// With the array of threads' counters refused (`SONDE_BPF_REFUSE`), every
/// thread counts in its task storage, as the threads beyond the array's
/// slots do: counts, errors and latency stay exact.
#[test]
fn counts_in_task_storage_without_the_slots() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        NO_BUDGET,
        &[("SONDE_BPF_REFUSE", "thread_counts")],
    );
    if attached(&sonde).is_none() {
        return;
    }
    check_counts(&sonde, "sonde-ppid-task", DEFAULT_SYSCALL_LATENCY_SAMPLE);
}

/// A thread that is still alive has its counts in its own counters until
/// sonde's collection moves them: they show up exactly, without an exit.
#[test]
fn counts_a_living_threads_syscalls() {
    let sonde = Sonde::start(NO_BUDGET);
    if attached(&sonde).is_none() {
        return;
    }
    let comm = "sonde-ppid-live";
    let mut pipe = [0; 2];
    // SAFETY: pipe fills the two descriptors.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let pid = fork_named_child(comm, || {
        let mut byte = 0u8;
        // SAFETY: blocks on our pipe until the test writes to it.
        unsafe { libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1) };
    });
    let calls = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscalls_total",
            &[("comm", comm), ("syscall", "getppid")],
        )
    };
    let samples = wait_for(&sonde, |s| calls(s) >= CALLS as f64);
    // SAFETY: wakes the child made above and closes our pipe.
    unsafe {
        libc::write(pipe[1], [1u8].as_ptr().cast(), 1);
    }
    reap(pid);
    // SAFETY: closes the pipe made above.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    assert_eq!(calls(&samples), CALLS as f64, "{}", sonde.log_text());
}

/// Sleeps of the latency test, each 5 ms: the middle of the bucket
/// (4.096 ms, 8.192 ms], with 3 ms for a late wakeup on a busy machine.
const SLEEPS: u64 = 200;

/// A known sleep's latency lands in its bucket, timed on the default sample:
/// a child sleeps SLEEPS times 5 ms in select(2), which nothing else here
/// calls. No timed call may come out shorter than it slept, and the scaled
/// bucket holds most of the calls (about one in the sample is timed, each
/// standing for as many calls).
#[test]
fn a_known_sleep_lands_in_its_bucket() {
    let sonde = Sonde::start(NO_BUDGET);
    if attached(&sonde).is_none() {
        return;
    }
    let comm = "sonde-sleeper";
    let bucket = |s: &[ExposedSample], le: &str| {
        total(
            s,
            "sonde_syscall_duration_seconds_bucket",
            &[("syscall", "select"), ("le", le)],
        )
    };
    let calls = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscalls_total",
            &[("comm", comm), ("syscall", "select")],
        )
    };
    let before = sonde.metrics();
    reap(fork_named(comm, || {
        for _ in 0..SLEEPS {
            let mut timeout = libc::timeval {
                tv_sec: 0,
                tv_usec: 5_000,
            };
            let none = std::ptr::null_mut::<libc::fd_set>();
            // SAFETY: select with no descriptors only sleeps.
            unsafe { libc::syscall(libc::SYS_select, 0, none, none, none, &mut timeout) };
        }
    }));
    let after = wait_for(&sonde, |s| calls(s) >= SLEEPS as f64);
    assert_eq!(calls(&after), SLEEPS as f64, "{}", sonde.log_text());
    let added = |le: &str| bucket(&after, le) - bucket(&before, le);
    assert_eq!(added("0.004096"), 0.0, "a 5 ms sleep timed under 4.096 ms");
    let slept = added("0.008192");
    assert!(
        slept >= SLEEPS as f64 / 2.0,
        "{slept} of {SLEEPS} 5 ms sleeps in le=0.008192, one call in \
         {DEFAULT_SYSCALL_LATENCY_SAMPLE} timed"
    );
}

/// `syscall_latency = false`: exact counts, and no latency or error families.
#[test]
fn counts_only_when_latency_is_off() {
    let sonde = Sonde::start(&format!(
        "{NO_BUDGET}[collect.bpf]\nsyscall_latency = false\n"
    ));
    if attached(&sonde).is_none() {
        return;
    }
    let comm = "sonde-ppid-cnt";
    run_child(comm);
    let calls = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscalls_total",
            &[("comm", comm), ("syscall", "getppid")],
        )
    };
    let samples = wait_for(&sonde, |s| calls(s) >= CALLS as f64);
    assert_eq!(calls(&samples), CALLS as f64, "{}", sonde.log_text());
    assert!(samples.iter().all(|s| {
        !s.name.starts_with("sonde_syscall_duration_seconds")
            && s.name != "sonde_syscall_errors_total"
    }));
    let exit_runs = total(
        &samples,
        "sonde_bpf_program_runs_total",
        &[("program", "raw_sys_exit")],
    );
    assert_eq!(exit_runs, 0.0, "no sys_exit program is attached");
}

/// Series per metric in the churn test: fewer than the churn's names, so
/// most of them are folded into comm="other".
const CHURN_BUDGET: usize = 100;
/// Short-lived processes in the churn, each with a name of its own, and the
/// failing calls each makes: afs_syscall, which x86_64 does not implement
/// (ENOSYS) and nothing else calls, so its total is exact on a shared machine.
const CHURN_PROCESSES: usize = 300;
const CHURN_FAILURES: usize = 10;

/// The number of series of `name` in /metrics.
fn series_of(samples: &[ExposedSample], name: &str) -> usize {
    samples.iter().filter(|s| s.name == name).count()
}

/// Many short-lived processes, each with a name of its own, fail while sonde
/// runs: the error series stay within `max_series_per_metric`, the names
/// beyond it are folded into comm="other", and every failure is counted
/// once, in its process's series or in `other`.
#[test]
fn errors_of_churning_names_stay_within_the_budget() {
    let sonde = Sonde::start(&format!("max_series_per_metric = {CHURN_BUDGET}\n"));
    if attached(&sonde).is_none() {
        return;
    }
    let errors = "sonde_syscall_errors_total";
    let prefix = format!("e{:x}-", std::process::id() & 0xfff);
    let mut most_series = 0;
    for i in 0..CHURN_PROCESSES {
        reap(fork_named(&format!("{prefix}{i}"), || {
            for _ in 0..CHURN_FAILURES {
                // SAFETY: an unimplemented syscall only fails.
                unsafe { libc::syscall(libc::SYS_afs_syscall) };
            }
        }));
        // Spread over a few rounds, so names arrive in several of them.
        std::thread::sleep(Duration::from_millis(10));
        if i % 50 == 0 {
            most_series = most_series.max(series_of(&sonde.metrics(), errors));
        }
    }
    let expected = (CHURN_PROCESSES * CHURN_FAILURES) as f64;
    // Every failure once: the last stored value of every series, ended
    // ones included (a name may have shown before being folded).
    let promql = format!("sum(last_over_time({errors}{{syscall=\"afs_syscall\"}}[10m]))");
    assert_eq!(
        wait_for_query(&sonde, &promql, expected),
        Some(expected),
        "{promql}\n{}",
        sonde.log_text()
    );
    let samples = sonde.metrics();
    most_series = most_series.max(series_of(&samples, errors));
    assert!(
        most_series <= CHURN_BUDGET,
        "{most_series} series of {errors}, budget {CHURN_BUDGET}"
    );
    let folded = total(
        &samples,
        errors,
        &[("comm", "other"), ("syscall", "afs_syscall")],
    );
    assert!(
        folded > 0.0,
        "{CHURN_PROCESSES} names beyond a budget of {CHURN_BUDGET}: some are folded"
    );
    let full = total(
        &samples,
        "sonde_bpf_map_full_total",
        &[("map", "syscall_errors")],
    );
    assert_eq!(full, 0.0, "syscall_errors was full");
}

/// Classic tracepoints, timing every call: the histogram is exact too.
#[test]
fn falls_back_to_tracepoints_when_raw_tp_is_refused() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        &format!("{NO_BUDGET}[collect.bpf]\nsyscall_latency_sample = 1\n"),
        &[("SONDE_BPF_REFUSE", "raw_tp")],
    );
    let Some(line) = attached(&sonde) else { return };
    assert!(line.contains("(tracepoint)"), "{line}");
    check_counts(&sonde, "sonde-ppid-tp", 1);
}

#[test]
fn runs_on_without_a_refused_collector() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        "",
        &[("SONDE_BPF_REFUSE", "syscalls")],
    );
    let log = sonde.log_text();
    assert!(
        log.contains("bpf collector syscalls: off: refused"),
        "{log}"
    );
    sonde.wait_rounds(1);
    let samples = sonde.metrics();
    assert!(samples.iter().all(|s| s.name != "sonde_syscalls_total"));
    assert!(samples.iter().any(|s| s.name == "sonde_build_info"));
}

#[test]
fn bench_runs_and_detaches() {
    let output = std::process::Command::new(common::SONDE)
        .args([
            "bench",
            "syscalls",
            "--calls",
            "20000",
            "--rounds",
            "1",
            "--no-bpftrace",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!bpf_required(), "sonde bench syscalls failed: {err}");
        eprintln!("skipping: sonde bench syscalls cannot attach here: {err}");
        return;
    }
    assert!(text.contains("median"), "{text}");
    assert!(text.contains("beyond the empty pair"), "{text}");
}
