//! The syscalls collector end to end: a child process with its own name makes
//! known syscalls, and sonde's /metrics shows them under that name. Also the
//! fallback to classic tracepoints and a collector refused outright, both
//! forced with SONDE_BPF_REFUSE.

mod common;

use std::time::{Duration, Instant};

use common::{bpf_required, total, ExposedSample, Sonde, TempDir};

const CALLS: u64 = 100_000;
const FAILURES: u64 = 1_000;

/// Room for every process name on a busy machine: the test child arrives
/// after the others, and the cardinality budget would fold a newcomer into
/// comm="other" once the metric is full.
const NO_BUDGET: &str = "max_series_per_metric = 1000000\n";

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
    let name = std::ffi::CString::new(comm).unwrap();
    // SAFETY: the child only makes raw syscalls (`then` too) and _exits,
    // which is safe after fork in a multi-threaded process.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
            for _ in 0..CALLS {
                libc::getppid();
            }
            then();
            libc::_exit(0);
        }
        pid
    }
}

/// Waits for a child and checks it exited cleanly.
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0);
}

/// Runs a child named `comm` that calls getppid CALLS times and close(-1)
/// (EBADF) FAILURES times, and waits for it.
fn run_child(comm: &str) {
    reap(fork_named_child(comm, || {
        for _ in 0..FAILURES {
            // SAFETY: closing an invalid descriptor only fails.
            unsafe { libc::close(-1) };
        }
    }));
}

/// Polls /metrics (bounded) until `done` holds; returns the last samples.
fn wait_for(sonde: &Sonde, done: impl Fn(&[ExposedSample]) -> bool) -> Vec<ExposedSample> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let samples = sonde.metrics();
        if done(&samples) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn check_counts(sonde: &Sonde, comm: &str) {
    let errors = |s: &[ExposedSample]| {
        total(
            s,
            "sonde_syscall_errors_total",
            &[("syscall", "close"), ("errno", "EBADF")],
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
    // Wait for the child's own counts: the error count is every process's,
    // and a round may end between the child's calls.
    let after = wait_for(sonde, |s| {
        calls(s) >= CALLS as f64
            && closes(s) >= FAILURES as f64
            && errors(s) - errors(&before) >= FAILURES as f64
    });
    assert_eq!(
        calls(&after),
        CALLS as f64,
        "sonde_syscalls_total{{comm={comm:?},syscall=\"getppid\"}}\n{}",
        sonde.log_text()
    );
    assert_eq!(closes(&after), FAILURES as f64);
    assert!(errors(&after) - errors(&before) >= FAILURES as f64);
    assert!(latency_count(&after) - latency_count(&before) >= CALLS as f64);
    let fast = total(
        &after,
        "sonde_syscall_duration_seconds_bucket",
        &[("syscall", "getppid"), ("le", "0.001024")],
    );
    assert!(fast >= CALLS as f64, "getppid calls should take under 1 ms");
}

#[test]
fn counts_a_named_childs_syscalls() {
    let sonde = Sonde::start(NO_BUDGET);
    let Some(line) = attached(&sonde) else { return };
    assert!(line.contains("(raw_tp)"), "{line}");
    check_counts(&sonde, "sonde-ppid-raw");

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

/// A thread that is still alive has its counts in its own task storage until
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

#[test]
fn falls_back_to_tracepoints_when_raw_tp_is_refused() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        NO_BUDGET,
        &[("SONDE_BPF_REFUSE", "raw_tp")],
    );
    let Some(line) = attached(&sonde) else { return };
    assert!(line.contains("(tracepoint)"), "{line}");
    check_counts(&sonde, "sonde-ppid-tp");
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
