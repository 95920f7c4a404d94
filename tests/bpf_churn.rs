//! Weeks of process churn, compressed: tens of thousands of short processes,
//! each with a name of its own, pass through while sonde runs. The kernel's
//! maps must hold only one interval of them (no insert refused at the stated
//! rate), every event must be counted once (in its own series or folded into
//! `other`), a process arriving after the churn is counted exactly, and once
//! the churn is forgotten sonde's memory is back where it started.

mod common;
mod kernel;

use std::ffi::CString;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ExposedSample, Sonde};
use kernel::{attached, query_value, value, wait_for};

/// Processes in the churn, and how many start per second: 200 new names a
/// one-second interval, each with 20-30 distinct syscalls, about a third of
/// a half of `syscall_counts` (16,384 keys).
const PROCESSES: usize = 20_000;
const PER_SECOND: usize = 200;
/// getpmsg calls per churn process: a syscall nothing else makes (it is not
/// implemented on x86_64 and fails with ENOSYS), so its total is exact on a
/// shared machine.
const CALLS: usize = 50;
const CALL: &str = "getpmsg";
/// getppid calls of the process that comes after the churn.
const AFTER_CALLS: u64 = 100_000;
/// How long sonde remembers an idle process name here.
const FORGET_AFTER: Duration = Duration::from_secs(15);
/// How far sonde's anonymous RSS may be above where it started once the
/// churn is forgotten.
const RSS_SLACK_KIB: u64 = 10 * 1024;

/// The median of five samples of a process's anonymous resident memory, a
/// second apart, in KiB: its level between rounds, not the peak of one.
fn settled_rss_kib(pid: u32) -> u64 {
    let mut samples: Vec<u64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_secs(1));
            rss_kib(pid)
        })
        .collect();
    samples.sort_unstable();
    samples[2]
}

/// The anonymous resident memory of a process (heap, arenas, stacks), in
/// KiB: the state a churn grows and must give back. Not VmRSS: that also
/// counts the pages of the binary's code, and the churn runs code an idle
/// round does not (laid out apart from it, link/hot-text.txt), which stays
/// mapped from the file after it.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

/// The sum of the last stored value of every series `selector` picks, ended
/// ones included: a churn process's series ends once it is forgotten, so
/// /metrics alone no longer shows its count.
fn stored_total(sonde: &Sonde, selector: &str) -> f64 {
    let query = format!("sum(last_over_time({selector}[10m]))");
    query_value(sonde, &query).unwrap_or_else(|| panic!("no value for {query}"))
}

fn map_full(samples: &[ExposedSample]) -> Vec<(String, f64)> {
    samples
        .iter()
        .filter(|s| s.name == "sonde_bpf_map_full_total" && s.value > 0.0)
        .map(|s| (s.label("map").unwrap_or_default().to_string(), s.value))
        .collect()
}

/// What a churn process does after fork, with only async-signal-safe calls:
/// take its name, make its calls, connect once, then exec a shell through a
/// link of the same name (so it keeps it) that kills itself with SIGSTKFLT,
/// a signal nothing else sends, so its exits are told from everyone's.
struct ChurnProcess {
    name: CString,
    link: CString,
}

fn churn_child(process: &ChurnProcess, port: u16, shell_argv: &[*const libc::c_char]) -> ! {
    // SAFETY: raw syscalls on valid pointers prepared before the fork.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, process.name.as_ptr());
        for _ in 0..CALLS {
            libc::syscall(libc::SYS_getpmsg);
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let connected = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        libc::close(fd);
        if connected != 0 {
            libc::_exit(2);
        }
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        libc::execve(process.link.as_ptr(), shell_argv.as_ptr(), envp.as_ptr());
        libc::_exit(127)
    }
}

/// Runs the churn from a thread named `churner` (so its forks are its own):
/// PER_SECOND processes a second, at most 64 alive at once, every one reaped
/// and checked to have been killed by SIGSTKFLT.
fn churn(processes: Vec<ChurnProcess>, port: u16) {
    let churner = CString::new("churner").unwrap();
    // SAFETY: names the calling thread.
    unsafe { libc::prctl(libc::PR_SET_NAME, churner.as_ptr()) };
    let (sh, dash_c, script) = (
        CString::new("sh").unwrap(),
        CString::new("-c").unwrap(),
        CString::new("kill -16 $$").unwrap(),
    );
    let shell_argv = [
        sh.as_ptr(),
        dash_c.as_ptr(),
        script.as_ptr(),
        std::ptr::null(),
    ];
    let started = Instant::now();
    let mut alive = 0;
    let reap = |alive: &mut usize| {
        let mut status = 0;
        // SAFETY: waits for any of our own children.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        assert!(pid > 0, "waitpid failed");
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSTKFLT,
            "a churn process failed (status {status:#x})"
        );
        *alive -= 1;
    };
    for (i, process) in processes.iter().enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / PER_SECOND as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        while alive >= 64 {
            reap(&mut alive);
        }
        // SAFETY: the child runs only async-signal-safe calls (churn_child).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            churn_child(process, port, &shell_argv);
        }
        alive += 1;
    }
    while alive > 0 {
        reap(&mut alive);
    }
}

/// Forks a child named `comm` that calls getppid AFTER_CALLS times; reaps it.
fn run_named(comm: &str) {
    let name = CString::new(comm).unwrap();
    // SAFETY: the child makes raw syscalls and _exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
            for _ in 0..AFTER_CALLS {
                libc::getppid();
            }
            libc::_exit(0);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(status, 0);
    }
}

#[test]
fn tens_of_thousands_of_named_processes_pass_and_nothing_is_lost() {
    let sonde = Sonde::start(&format!("forget_after = \"{}s\"\n", FORGET_AFTER.as_secs()));
    if !["syscalls", "process", "net"]
        .iter()
        .all(|name| attached(&sonde, name))
    {
        return;
    }
    let pid = sonde.child.id();
    // Settled: the store, its caches and the first rounds' allocations
    // (an idle sonde's RSS still grows over its first minute).
    sonde.wait_rounds(45);
    let rss_before = settled_rss_kib(pid);

    let links = common::TempDir::new("churn-links");
    let prefix = format!("c{:x}-", std::process::id() & 0xfff);
    let processes: Vec<ChurnProcess> = (0..PROCESSES)
        .map(|i| {
            let name = format!("{prefix}{i}");
            let link = links.0.join(&name);
            std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
            ChurnProcess {
                name: CString::new(name).unwrap(),
                link: CString::new(link.into_os_string().into_encoded_bytes()).unwrap(),
            }
        })
        .collect();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut accepted = 0usize;
            while !done.load(Ordering::Relaxed) || accepted < PROCESSES {
                match listener.accept() {
                    Ok(_) => accepted += 1,
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            accepted
        })
    };

    let churner = std::thread::spawn(move || churn(processes, port));
    let mut peak_rss = rss_before;
    while !churner.is_finished() {
        std::thread::sleep(Duration::from_secs(5));
        let samples = sonde.metrics();
        assert_eq!(
            map_full(&samples),
            [],
            "a map was full at {PER_SECOND} new process names a second"
        );
        peak_rss = peak_rss.max(rss_kib(pid));
        let took = value(
            &samples,
            "sonde_collector_duration_seconds",
            &[("collector", "syscalls")],
        );
        eprintln!(
            "churn: RSS {} KiB, syscalls round {took:.3} s",
            rss_kib(pid)
        );
    }
    churner.join().unwrap();
    done.store(true, Ordering::Relaxed);
    assert_eq!(acceptor.join().unwrap(), PROCESSES);

    // Every event once: in the churn's own series (ended or not) or folded
    // into `other`. Three rounds drain the last processes' counts.
    sonde.wait_rounds(3);
    let samples = sonde.metrics();
    assert_eq!(map_full(&samples), []);
    assert_eq!(
        stored_total(
            &sonde,
            &format!("sonde_syscalls_total{{syscall=\"{CALL}\"}}")
        ),
        (PROCESSES * CALLS) as f64,
        "{CALL} calls across every series"
    );
    assert_eq!(
        value(
            &samples,
            "sonde_process_forks_total",
            &[("comm", "churner")]
        ),
        PROCESSES as f64,
        "forks of the churner"
    );
    assert_eq!(
        stored_total(&sonde, "sonde_process_exits_total{reason=\"SIGSTKFLT\"}"),
        PROCESSES as f64,
        "exits by SIGSTKFLT across every series"
    );
    // Execs and connects of other processes on the machine may be folded
    // into `other` too: the churn's are all there, and few more.
    let noise = PROCESSES as f64 * 0.05;
    for selector in [
        "sonde_process_execs_total{COMM}",
        "sonde_tcp_connects_total{COMM,result=\"ok\"}",
    ] {
        let selector = selector.replace("COMM", &format!("comm=~\"{prefix}.*|other\""));
        let counted = stored_total(&sonde, &selector);
        assert!(
            (PROCESSES as f64..=PROCESSES as f64 + noise).contains(&counted),
            "{selector}: {counted} for {PROCESSES} churn processes"
        );
    }

    // Forgotten: the churn's names leave /metrics, and memory comes back.
    std::thread::sleep(FORGET_AFTER + Duration::from_secs(3));
    let samples = sonde.metrics();
    let left = samples
        .iter()
        .filter(|s| s.label("comm").is_some_and(|c| c.starts_with(&prefix)))
        .count();
    assert_eq!(left, 0, "churn series still exported after forget_after");
    // The store closes them once idle as long, at its next maintenance.
    std::thread::sleep(2 * FORGET_AFTER);
    let rss_after = settled_rss_kib(pid);
    eprintln!(
        "sonde RSS: {rss_before} KiB before, {peak_rss} KiB at the peak, {rss_after} KiB after"
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "RSS {rss_after} KiB after the churn was forgotten, {rss_before} KiB before"
    );

    // On a machine with more active names than the budget (a build running
    // beside the test), a process that counts for one round is folded into
    // `other` (collect/budget.rs); either way each call is counted once.
    let getppid = |samples: &[ExposedSample], comm: &str| {
        value(
            samples,
            "sonde_syscalls_total",
            &[("comm", comm), ("syscall", "getppid")],
        )
    };
    let other_before = getppid(&sonde.metrics(), "other");
    run_named("afterchurn");
    let samples = wait_for(&sonde, |s| {
        getppid(s, "afterchurn") + getppid(s, "other") - other_before >= AFTER_CALLS as f64
    });
    let own = getppid(&samples, "afterchurn");
    let folded = getppid(&samples, "other") - other_before;
    if folded == 0.0 {
        assert_eq!(own, AFTER_CALLS as f64);
    } else {
        // Other processes' rare getppid calls may land in `other` too.
        let counted = own + folded;
        assert!(
            (AFTER_CALLS as f64..AFTER_CALLS as f64 + 100.0).contains(&counted),
            "afterchurn's {AFTER_CALLS} getppid calls: {own} its own, {folded} in other"
        );
    }
    assert_eq!(map_full(&samples), []);
}
