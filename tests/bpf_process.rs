//! The process collector end to end, and attribution: execs, exits by reason
//! and OOM kills of test programs with names of their own, and the `unit` and
//! `container` labels of programs started inside cgroups shaped like a
//! systemd service's and a Docker container's.

mod common;
mod kernel;

use std::time::Duration;

use common::{Sonde, TempDir};
use kernel::{
    attached, cgroup_v2_root, memory_limited_cgroup, value, wait_for, NamedProgram, TestCgroup,
    NO_BUDGET,
};

const SPAWNS: usize = 20;

#[test]
fn counts_execs_and_clean_exits() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "process") {
        return;
    }
    let program = NamedProgram::new("/bin/true", "strue");
    for _ in 0..SPAWNS {
        assert!(program.command().status().unwrap().success());
    }
    let comm = [("comm", program.comm.as_str())];
    let exits = [("comm", program.comm.as_str()), ("reason", "0")];
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_process_exits_total", &exits) >= SPAWNS as f64
    });
    assert_eq!(
        value(&samples, "sonde_process_execs_total", &comm),
        SPAWNS as f64
    );
    assert_eq!(
        value(&samples, "sonde_process_exits_total", &exits),
        SPAWNS as f64
    );
}

#[test]
fn names_the_signal_that_killed_a_process() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "process") {
        return;
    }
    let program = NamedProgram::new("/bin/sleep", "ssleep");
    let mut child = program.command().arg("60").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = [("comm", program.comm.as_str()), ("reason", "SIGKILL")];
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_process_exits_total", &killed) >= 1.0
    });
    assert_eq!(value(&samples, "sonde_process_exits_total", &killed), 1.0);
    let failed = [("comm", program.comm.as_str()), ("reason", "non-zero")];
    assert_eq!(value(&samples, "sonde_process_exits_total", &failed), 0.0);
}

#[test]
fn counts_an_oom_kill_by_its_victim() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "process") {
        return;
    }
    let Some(cgroup) = memory_limited_cgroup(32 << 20) else {
        assert!(
            !common::bpf_required(),
            "no memory cgroup controller to limit a process with"
        );
        eprintln!("skipping: no memory cgroup controller to limit a process with");
        return;
    };
    // tail buffers /dev/zero's endless "line" until the limit kills it.
    let program = NamedProgram::new("/usr/bin/tail", "soom");
    let status = cgroup
        .spawn_inside(&program.path, &["/dev/zero"])
        .status()
        .unwrap();
    assert!(!status.success(), "tail /dev/zero should have been killed");
    let victim = [("comm", program.comm.as_str())];
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_oom_kills_total", &victim) >= 1.0
    });
    assert_eq!(value(&samples, "sonde_oom_kills_total", &victim), 1.0);
}

/// A Docker-shaped 64-hex container id unique to this run.
fn container_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!(
        "{:016x}{nanos:016x}{:016x}{nanos:016x}",
        std::process::id(),
        !nanos
    )
}

#[test]
fn labels_processes_with_their_unit_or_container() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "process") {
        return;
    }
    let Some(root) = cgroup_v2_root() else {
        assert!(!common::bpf_required(), "no cgroup v2 hierarchy mounted");
        eprintln!("skipping: no cgroup v2 hierarchy mounted");
        return;
    };
    let id = container_id();
    let unit = format!("sonde-test-{}.service", std::process::id());
    let program = NamedProgram::new("/bin/true", "sattr");
    {
        let docker = TestCgroup::new(&root, &format!("system.slice/docker-{id}.scope"));
        let service = TestCgroup::new(&root, &format!("system.slice/{unit}"));
        for _ in 0..3 {
            let status = docker.spawn_inside(&program.path, &[]).status().unwrap();
            assert!(status.success());
        }
        for _ in 0..2 {
            let status = service.spawn_inside(&program.path, &[]).status().unwrap();
            assert!(status.success());
        }
        assert!(program.command().status().unwrap().success());
        let comm = ("comm", program.comm.as_str());
        let in_container = [comm, ("container", &id[..12])];
        let in_unit = [comm, ("unit", unit.as_str())];
        let samples = wait_for(&sonde, |s| {
            value(s, "sonde_process_execs_total", &in_container) >= 3.0
                && value(s, "sonde_process_execs_total", &in_unit) >= 2.0
                && value(s, "sonde_syscalls_total", &in_container) > 0.0
        });
        // Every per-process metric carries the place: the syscalls too.
        if attached(&sonde, "syscalls") {
            assert!(value(&samples, "sonde_syscalls_total", &in_container) > 0.0);
            assert!(value(&samples, "sonde_syscalls_total", &in_unit) > 0.0);
        }
        assert_eq!(
            value(&samples, "sonde_process_execs_total", &in_container),
            3.0
        );
        assert_eq!(value(&samples, "sonde_process_execs_total", &in_unit), 2.0);
        let execs: Vec<_> = samples
            .iter()
            .filter(|s| {
                s.name == "sonde_process_execs_total" && s.label("comm") == Some(&program.comm)
            })
            .collect();
        assert_eq!(execs.len(), 3, "{execs:?}");
        // The container has no unit label; the one started here has neither.
        assert!(execs
            .iter()
            .all(|s| !(s.label("container").is_some() && s.label("unit").is_some())));
        assert!(execs.iter().any(|s| s.label("container").is_none()
            && s.label("unit").is_none()
            && s.value == 1.0));
    }
    assert!(!root
        .join(format!("system.slice/docker-{id}.scope"))
        .exists());
}

#[test]
fn turned_off_or_refused_it_leaves_the_others_running() {
    let off = Sonde::start("[collect.bpf]\nprocess = false\n");
    assert!(
        off.log_text()
            .contains("bpf collector process: off: disabled"),
        "{}",
        off.log_text()
    );
    drop(off);
    let refused =
        Sonde::start_with_env(TempDir::new("data"), "", &[("SONDE_BPF_REFUSE", "process")]);
    assert!(
        refused
            .log_text()
            .contains("bpf collector process: off: refused"),
        "{}",
        refused.log_text()
    );
    if !attached(&refused, "syscalls") {
        return;
    }
    refused.wait_rounds(1);
    let samples = refused.metrics();
    assert!(samples
        .iter()
        .all(|s| s.name != "sonde_process_execs_total"));
    assert!(samples.iter().any(|s| s.name == "sonde_syscalls_total"));
}

#[test]
fn falls_back_to_raw_tp_when_tp_btf_is_refused() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        NO_BUDGET,
        &[("SONDE_BPF_REFUSE", "tp_btf")],
    );
    if !attached(&sonde, "process") {
        return;
    }
    assert!(
        sonde
            .log_text()
            .contains("bpf collector process: on (raw_tp)"),
        "{}",
        sonde.log_text()
    );
    let program = NamedProgram::new("/bin/true", "sraw");
    for _ in 0..5 {
        assert!(program.command().status().unwrap().success());
    }
    let comm = [("comm", program.comm.as_str())];
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_process_execs_total", &comm) >= 5.0
    });
    assert_eq!(value(&samples, "sonde_process_execs_total", &comm), 5.0);
}

#[test]
fn beyond_the_series_budget_the_smallest_fold_into_other() {
    // Appended right after the harness's own [collect] table.
    let sonde = Sonde::start("max_series_per_metric = 3\n");
    if !attached(&sonde, "process") {
        return;
    }
    // More process names than the budget has room for: every exec counted
    // still, the smallest under comm="other".
    let programs: Vec<NamedProgram> = (0..6)
        .map(|i| NamedProgram::new("/bin/true", &format!("sb{i}x")))
        .collect();
    for program in &programs {
        assert!(program.command().status().unwrap().success());
    }
    sonde.wait_rounds(2);
    let samples = sonde.metrics();
    let execs: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "sonde_process_execs_total")
        .collect();
    assert!(execs.len() <= 3, "{execs:?}");
    let other = value(&samples, "sonde_process_execs_total", &[("comm", "other")]);
    assert!(other >= 1.0, "{execs:?}");
    let ours: f64 = programs
        .iter()
        .map(|p| {
            value(
                &samples,
                "sonde_process_execs_total",
                &[("comm", p.comm.as_str())],
            )
        })
        .sum();
    assert!(ours < programs.len() as f64, "some of them were folded");
}
