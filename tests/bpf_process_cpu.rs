//! Per-process CPU time and resident memory end to end, each against what the
//! kernel's own files say: a process living for 20 ms is counted whole (its
//! own rusage, printed before it exits); busy processes, one in user space
//! and one making syscalls, are counted as /proc/PID/stat counts them over
//! the same stretch (both are stopped at its ends, so neither moves while the
//! two are read); one that ran before sonde started is counted from then
//! only; a process holding 64 MiB shows its VmRSS.

mod common;
mod kernel;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::{unsafe_kill, ExposedSample, Sonde};
use kernel::{attached, value, wait_for, NamedProgram, NO_BUDGET};

const CPU: &str = "sonde_process_cpu_seconds_total";
const RSS: &str = "sonde_process_resident_memory_bytes";

/// A child killed and reaped however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu(samples: &[ExposedSample], comm: &str, mode: Option<&str>) -> f64 {
    let mut labels = vec![("comm", comm)];
    labels.extend(mode.map(|m| ("mode", m)));
    value(samples, CPU, &labels)
}

/// Field `n` (1-based, as proc(5) numbers them) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    after_comm.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

/// utime and stime of /proc/PID/stat, in seconds (USER_HZ is 100 on Linux).
fn proc_times(pid: u32) -> (f64, f64) {
    (stat_field(pid, 14) / 100.0, stat_field(pid, 15) / 100.0)
}

#[test]
fn a_process_living_20_ms_is_counted_whole() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "sched") {
        return;
    }
    let bash = NamedProgram::new("/bin/bash", "scpu");
    // Burns 20 ms of wall clock without forking, then prints its rusage
    // (`times`: getrusage, user and system each cut to the millisecond).
    let out = bash
        .command()
        .args([
            "-c",
            r#"s=${EPOCHREALTIME/./}; while (( ${EPOCHREALTIME/./} - s < 20000 )); do :; done; times"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // "0m0.019s 0m0.001s": the shell's own user and system time.
    let printed: f64 = text
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .map(|t| {
            let (m, s) = t.trim_end_matches('s').split_once('m').unwrap();
            m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
        })
        .sum();
    // Each of the two lost up to a millisecond to the cut: half a one each
    // on average.
    let rusage = printed + 0.001;

    let samples = wait_for(&sonde, |s| cpu(s, &bash.comm, None) > 0.0);
    assert!(
        cpu(&samples, &bash.comm, None) > 0.0,
        "{} not counted",
        bash.comm
    );
    // Moved in parts by rounds while it ran and at its last switch: two
    // rounds after it appeared, all of it is in.
    sonde.wait_rounds(2);
    let counted = cpu(&sonde.metrics(), &bash.comm, None);
    eprintln!("20 ms process: sonde {counted:.6} s, its rusage {printed:.3} s");
    assert!(
        (counted - rusage).abs() <= (0.05 * rusage).max(0.002),
        "sonde counted {counted:.6} s, its rusage said {printed:.3} s (to the ms)"
    );
}

#[test]
fn busy_processes_are_counted_as_proc_counts_them() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "sched") {
        return;
    }
    let bash = NamedProgram::new("/bin/bash", "sbusy");
    let dd = NamedProgram::new("/bin/dd", "ssys");
    let spin = Running(
        bash.command()
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    // One byte per read and write: mostly system time.
    let syscalls = Running(
        dd.command()
            .args(["if=/dev/zero", "of=/dev/null", "bs=1"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pids = [spin.0.id(), syscalls.0.id()];
    let comms = [bash.comm.as_str(), dd.comm.as_str()];

    // Stopped, neither the kernel's counts nor sonde's (a round later) move.
    let stopped_reading = || {
        pids.iter().for_each(|pid| unsafe_kill(*pid, "STOP"));
        sonde.wait_rounds(2);
        let samples = sonde.metrics();
        let read = |i: usize| {
            let sonde = |mode| cpu(&samples, comms[i], Some(mode));
            let (user, system) = proc_times(pids[i]);
            ((sonde("user"), sonde("system")), (user, system))
        };
        [read(0), read(1)]
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = stopped_reading();
    pids.iter().for_each(|pid| unsafe_kill(*pid, "CONT"));
    std::thread::sleep(Duration::from_secs(3));
    let after = stopped_reading();

    for i in 0..2 {
        let (((su0, ss0), (ku0, ks0)), ((su1, ss1), (ku1, ks1))) = (before[i], after[i]);
        let (sonde_total, proc_total) = (su1 + ss1 - su0 - ss0, ku1 + ks1 - ku0 - ks0);
        eprintln!(
            "{}: sonde user {:.3} system {:.3}, /proc/PID/stat user {:.3} system {:.3}",
            comms[i],
            su1 - su0,
            ss1 - ss0,
            ku1 - ku0,
            ks1 - ks0
        );
        assert!(proc_total > 0.3, "{}: ran only {proc_total} s", comms[i]);
        // /proc counts in 10 ms ticks: the slack covers both ends' truncation.
        assert!(
            (sonde_total - proc_total).abs() <= 0.05 * proc_total,
            "{}: sonde {sonde_total:.3} s, /proc/PID/stat {proc_total:.3} s",
            comms[i]
        );
        let (sonde_system, proc_system) = ((ss1 - ss0) / sonde_total, (ks1 - ks0) / proc_total);
        assert!(
            (sonde_system - proc_system).abs() <= 0.1,
            "{}: system share sonde {sonde_system:.2}, /proc/PID/stat {proc_system:.2}",
            comms[i]
        );
    }
    let dd_system = (after[1].0 .1 - before[1].0 .1)
        / (after[1].0 .0 + after[1].0 .1 - before[1].0 .0 - before[1].0 .1);
    assert!(dd_system > 0.3, "dd bs=1 shows system share {dd_system:.2}");
}

#[test]
fn a_process_running_before_sonde_is_counted_from_sonde_start() {
    let bash = NamedProgram::new("/bin/bash", "searly");
    let spin = Running(
        bash.command()
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let pid = spin.0.id();
    std::thread::sleep(Duration::from_secs(1));
    // Stopped while sonde starts: what it ran so far is all before sonde.
    unsafe_kill(pid, "STOP");
    std::thread::sleep(Duration::from_millis(100));
    let before = proc_times(pid);
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "sched") {
        return;
    }
    unsafe_kill(pid, "CONT");
    std::thread::sleep(Duration::from_secs(2));
    unsafe_kill(pid, "STOP");
    sonde.wait_rounds(2);
    let counted = cpu(&sonde.metrics(), &bash.comm, None);
    let after = proc_times(pid);
    let ran = after.0 + after.1 - before.0 - before.1;
    eprintln!(
        "started before sonde: sonde {counted:.3} s, ran {ran:.3} s since sonde, {:.3} s before",
        before.0 + before.1
    );
    // Enough for counting it to show beside 5 % of what ran since.
    assert!(
        before.0 + before.1 > 0.1,
        "ran only {before:?} before sonde"
    );
    assert!(
        (counted - ran).abs() <= 0.05 * ran,
        "sonde counted {counted:.3} s, the process ran {ran:.3} s since sonde started"
    );
}

#[test]
fn resident_memory_matches_vmrss() {
    const MIB: usize = 64;
    let sonde = Sonde::start(NO_BUDGET);
    let bash = NamedProgram::new("/bin/bash", "srss");
    // Fills a 64 MiB string (touching every page), then waits on stdin.
    let mut child = bash
        .command()
        .args([
            "-c",
            &format!("printf -v x '%*s' {} ''; echo ready; read -t 30", MIB << 20),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    let child = Running(child);
    assert_eq!(ready, "ready\n");
    let vmrss = || -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
            * 1024.0
    };
    let held = vmrss();
    assert!(held >= (MIB << 20) as f64, "VmRSS {held}");
    // A round that began before the string was whole would show less.
    sonde.wait_rounds(2);
    let shown = value(&sonde.metrics(), RSS, &[("comm", bash.comm.as_str())]);
    let now = vmrss();
    eprintln!("resident: sonde {shown} bytes, VmRSS {now}");
    assert!(
        (shown - now).abs() <= (0.01 * now).max(4.0 * 4096.0),
        "sonde {shown} bytes, VmRSS {now} (at start {held})"
    );
    drop(stdin);
}
