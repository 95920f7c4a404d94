//! `sonde doctor`: the table, forced probe failures (SONDE_BPF_REFUSE) and the
//! exit status when no kernel metrics can be collected.

mod common;

use std::process::{Command, Output};

use common::{bpf_required, TempDir, SONDE};

fn doctor(refuse: &str, args: &[&str]) -> Output {
    Command::new(SONDE)
        .arg("doctor")
        .args(args)
        .env("SONDE_BPF_REFUSE", refuse)
        .output()
        .expect("cannot run sonde doctor")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The table line whose check column is `check`.
fn row(table: &str, check: &str) -> String {
    table
        .lines()
        .find(|line| line.starts_with(&format!("{check} ")))
        .unwrap_or_else(|| panic!("no row {check:?} in:\n{table}"))
        .to_string()
}

/// Whether BPF works here; when not, says why and tells the test to skip.
fn bpf_works() -> bool {
    let output = doctor("", &[]);
    if output.status.success() {
        return true;
    }
    assert!(
        !bpf_required(),
        "SONDE_REQUIRE_BPF=1 but sonde doctor fails:\n{}",
        stdout(&output)
    );
    eprintln!("skipping: BPF unusable here:\n{}", stdout(&output));
    false
}

#[test]
fn reports_every_check() {
    let output = doctor("", &[]);
    let table = stdout(&output);
    for check in [
        "kernel",
        "BTF",
        "bpf() syscall",
        "attach raw_tp",
        "attach tp_btf",
        "attach tracepoint",
        "attach uprobe",
        "attach ringbuf",
        "capabilities",
        "pid namespace",
        "tracefs",
        "kernel.bpf_stats_enabled",
        "collector syscalls",
    ] {
        row(&table, check);
    }
    if !bpf_works() {
        return;
    }
    for kind in ["raw_tp", "tp_btf", "tracepoint", "uprobe", "ringbuf"] {
        let line = row(&table, &format!("attach {kind}"));
        assert!(line.contains(" ok "), "{line}");
    }
    assert!(row(&table, "collector syscalls").contains("on (raw_tp)"));
    let stats = row(&table, "bpf run-time stats");
    assert!(stats.contains(" ok "), "{stats}");
    assert!(row(&table, "capabilities").contains("CAP_BPF"));
    let namespace = row(&table, "pid namespace");
    assert!(
        namespace.contains(" ok ") && namespace.ends_with("the host's"),
        "{namespace}"
    );
    assert!(row(&table, "kernel").contains(
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .trim()
    ));
}

#[test]
fn a_refused_attach_kind_fails_its_row_and_collectors_fall_back() {
    if !bpf_works() {
        return;
    }
    let output = doctor("raw_tp", &[]);
    let table = stdout(&output);
    assert!(output.status.success(), "{table}");
    let line = row(&table, "attach raw_tp");
    assert!(line.contains("FAIL") && line.contains("refused"), "{line}");
    assert!(row(&table, "attach tp_btf").contains(" ok "));
    assert!(row(&table, "collector syscalls").contains("on (tracepoint)"));
}

#[test]
fn exits_non_zero_when_no_kernel_metrics_can_be_collected() {
    if !bpf_works() {
        return;
    }
    // Every kind a collector may attach with: none can collect.
    let output = doctor("raw_tp,tp_btf,tracepoint,uprobe", &[]);
    let table = stdout(&output);
    assert!(!output.status.success(), "{table}");
    let line = row(&table, "collector syscalls");
    assert!(
        line.contains("FAIL") && line.contains("raw_tp: refused"),
        "{line}"
    );
    assert!(table.contains("cannot collect kernel metrics"), "{table}");

    let output = doctor("bpf", &[]);
    assert!(!output.status.success());
    assert!(row(&stdout(&output), "bpf() syscall").contains("FAIL"));
}

#[test]
fn honours_collectors_turned_off_in_the_config() {
    if !bpf_works() {
        return;
    }
    let dir = TempDir::new("doctor");
    let config = dir.0.join("sonde.toml");
    std::fs::write(&config, "[collect.bpf]\nsyscalls = false\n").unwrap();
    let output = doctor("", &["--config", config.to_str().unwrap()]);
    let table = stdout(&output);
    assert!(
        row(&table, "collector syscalls").contains("disabled"),
        "{table}"
    );
}

#[test]
fn checks_that_every_actions_program_can_run() {
    let dir = TempDir::new("doctor-actions");
    let config = dir.0.join("sonde.toml");
    let action = |name: &str, program: &str| {
        format!("[[alerting.actions]]\nname = \"{name}\"\nmatchers = ['alertname=\"X\"']\ncommand = [\"{program}\"]\n")
    };
    let table = stdout(&doctor("", &[]));
    assert!(
        row(&table, "alert actions").contains("ok    none configured"),
        "{table}"
    );

    std::fs::write(
        &config,
        action("restart", "/bin/true") + "dry_run = true\n" + &action("page", "/bin/false"),
    )
    .unwrap();
    let table = stdout(&doctor("", &["--config", config.to_str().unwrap()]));
    let line = row(&table, "alert actions");
    assert!(
        line.contains("ok    2 configured: restart (/bin/true, dry run), page (/bin/false)"),
        "{line}"
    );

    let missing = dir.0.join("missing.sh");
    std::fs::write(
        &config,
        action("restart", "/bin/true") + &action("capture", missing.to_str().unwrap()),
    )
    .unwrap();
    let table = stdout(&doctor("", &["--config", config.to_str().unwrap()]));
    let line = row(&table, "alert actions");
    assert!(line.contains("FAIL"), "{line}");
    assert!(
        line.contains("create it or fix alerting.actions[1].command[0]"),
        "{line}"
    );
}

#[test]
fn has_help() {
    let output = Command::new(SONDE)
        .args(["doctor", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(stdout(&output).contains("SONDE_BPF_REFUSE"));
}

#[test]
fn lists_each_kernel_collector_on_off_or_refused() {
    if !bpf_works() {
        return;
    }
    let collectors = ["block", "net", "process", "sched"];
    let table = stdout(&doctor("", &[]));
    for name in collectors {
        let line = row(&table, &format!("collector {name}"));
        assert!(line.contains("on (tp_btf)"), "{line}");
    }
    let dir = TempDir::new("doctor");
    let config = dir.0.join("sonde.toml");
    let off: String = collectors
        .iter()
        .map(|c| format!("{c} = false\n"))
        .collect();
    std::fs::write(&config, format!("[collect.bpf]\n{off}")).unwrap();
    let table = stdout(&doctor("", &["--config", config.to_str().unwrap()]));
    for name in collectors {
        assert!(
            row(&table, &format!("collector {name}")).contains("disabled"),
            "{table}"
        );
    }
    // One refused: it fails with the reason, the others still attach.
    let output = doctor("net", &[]);
    let table = stdout(&output);
    assert!(output.status.success(), "{table}");
    let line = row(&table, "collector net");
    assert!(line.contains("FAIL") && line.contains("refused"), "{line}");
    for name in ["block", "process", "sched", "syscalls"] {
        assert!(
            row(&table, &format!("collector {name}")).contains("on ("),
            "{table}"
        );
    }
}

#[test]
fn shows_how_the_tls_probes_attach_and_runs_on_without_them() {
    if !bpf_works() {
        return;
    }
    let multi = stdout(&doctor("", &[]));
    let tls = row(&multi, "collector http TLS");
    assert!(
        tls.contains(" ok ") && tls.contains("by uprobe.multi"),
        "{tls}"
    );
    let perf = stdout(&doctor("uprobe.multi", &[]));
    let tls = row(&perf, "collector http TLS");
    assert!(
        tls.contains(" ok ") && tls.contains("by uprobe on"),
        "{tls}"
    );
    // No uprobes at all: TLS is off and says why, plain HTTP still on.
    let none = stdout(&doctor("uprobe", &[]));
    let tls = row(&none, "collector http TLS");
    assert!(
        tls.contains("FAIL") && tls.contains("no TLS probes"),
        "{tls}"
    );
    assert!(row(&none, "collector http").contains(" on ("), "{none}");
    // Turned off in the config: said so, no failure; plain HTTP still on.
    let dir = TempDir::new("doctor-tls");
    let config = dir.0.join("sonde.toml");
    std::fs::write(&config, "[collect.bpf]\nhttp_tls = false\n").unwrap();
    let off = stdout(&doctor("", &["--config", config.to_str().unwrap()]));
    let tls = row(&off, "collector http TLS");
    assert!(
        tls.contains(" ok ") && tls.contains("http_tls = false"),
        "{tls}"
    );
    assert!(row(&off, "collector http").contains(" on ("), "{off}");
}

/// In a pid namespace of its own (a container without `--pid=host`), the
/// pids the kernel's programs report are not this /proc's: the row says so
/// and what to do.
#[test]
fn says_when_it_runs_in_a_pid_namespace_of_its_own() {
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", SONDE, "doctor"])
        .output()
        .expect("cannot run unshare");
    let table = stdout(&output);
    if table.is_empty() {
        assert!(
            !bpf_required(),
            "unshare --pid failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let line = row(&table, "pid namespace");
    assert!(
        line.contains("FAIL") && line.contains("--pid=host"),
        "{line}"
    );
}
