//! Alert actions end to end, with real processes: an alert on a test
//! process's syscall rate (the syscalls BPF collector's
//! `sonde_syscalls_total`) runs a script that kills the process, the rate
//! drops and the alert resolves; beside it a failing action and a hanging
//! one (killed at its timeout) are counted in `sonde_actions_total` and
//! logged, while the rules keep being evaluated every second; a reload
//! turns an action into a dry run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{bpf_required, total, ExposedSample, Sonde, TempDir};

/// The flooding process's name (its comm, and so its `comm` label).
const FLOODER: &str = "sondeflood";

/// The flooder stops by itself after this, should the action never come.
const FLOOD_FOR: Duration = Duration::from_secs(90);

const RULES: &str = r#"groups:
  - name: actions
    interval: 1s
    rules:
      - alert: SyscallFlood
        expr: sum by (comm) (rate(sonde_syscalls_total{comm="sondeflood"}[3s])) > 1000
      - alert: Failing
        expr: vector(1)
      - alert: Hanging
        expr: vector(1)
"#;

/// Kills the process whose pid the test wrote beside the script, by the
/// name the alert's `comm` label gives.
const KILL_SCRIPT: &str = r#"#!/bin/sh
pid=$(cat "$(dirname "$0")/$1.pid") || exit 1
kill -KILL "$pid" && echo "killed $1 ($pid) at $2 calls/s"
"#;

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"max_series_per_metric = 1000000
[alerting]
rule_files = ["{dir}/rules.yml"]
evaluation_interval = "1s"
resend_delay = "1s"

[[alerting.actions]]
name = "kill-flooder"
matchers = ['alertname="SyscallFlood"']
command = ["{dir}/kill.sh", "{{{{ $labels.comm }}}}", "{{{{ printf \"%.0f\" $value }}}}"]
timeout = "10s"

[[alerting.actions]]
name = "failing"
matchers = ['alertname="Failing"']
command = ["/bin/sh", "-c", "echo cannot restart it >&2; exit 3"]
min_interval = "5s"

[[alerting.actions]]
name = "hanging"
matchers = ['alertname="Hanging"']
command = ["/bin/sleep", "600"]
timeout = "1s"
min_interval = "0s"
"#,
        dir = dir.display()
    )
}

/// Forks a child named [`FLOODER`] that calls getppid until [`FLOOD_FOR`]
/// passes or it is killed.
fn fork_flooder() -> libc::pid_t {
    let name = std::ffi::CString::new(FLOODER).unwrap();
    let until = Instant::now() + FLOOD_FOR;
    // SAFETY: the child only makes raw syscalls, reads the vDSO clock and
    // _exits, which is safe after fork in a multi-threaded process.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
            while Instant::now() < until {
                for _ in 0..10_000 {
                    libc::getppid();
                }
            }
            libc::_exit(0);
        }
        pid
    }
}

/// The signal that ended child `pid`, waiting up to `timeout`; None when
/// it still runs or exited by itself.
fn killed_by(pid: libc::pid_t, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    loop {
        // SAFETY: polls our own child.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped == pid {
            return libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
        }
        if Instant::now() >= deadline {
            // Bounded either way: do not leave the flooder behind.
            // SAFETY: our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn actions(sonde: &Sonde, action: &str, result: &str) -> f64 {
    total(
        &sonde.metrics(),
        "sonde_actions_total",
        &[("action", action), ("result", result)],
    )
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

fn firing(sonde: &Sonde, alertname: &str) -> bool {
    sonde
        .get_ok("/api/v1/alerts")
        .contains(&format!("\"alertname\":\"{alertname}\""))
}

/// The `/bin/sleep 600`s sonde started that run now.
fn hanging_sleeps(sonde_pid: u32) -> Vec<String> {
    let parent = sonde_pid.to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            let dir = entry.path();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .unwrap_or("");
            cmdline == b"/bin/sleep\x00600\x00" && ppid == parent
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_action_kills_the_flooder_and_bad_actions_are_reported() {
    let dir = TempDir::new("actions");
    std::fs::write(dir.0.join("rules.yml"), RULES).unwrap();
    let script = dir.0.join("kill.sh");
    std::fs::write(&script, KILL_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sonde = Sonde::start(&config(&dir.0));
    let log = sonde.log_text();
    if !log.contains("syscalls: on") {
        assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but:\n{log}");
        eprintln!("skipping: the syscalls collector cannot load here");
        return;
    }

    let flooder = fork_flooder();
    std::fs::write(dir.0.join(format!("{FLOODER}.pid")), flooder.to_string()).unwrap();
    let signal = killed_by(flooder, Duration::from_secs(60));
    assert_eq!(signal, Some(libc::SIGKILL), "log:\n{}", sonde.log_text());
    assert!(
        eventually(Duration::from_secs(10), || actions(
            &sonde,
            "kill-flooder",
            "ok"
        ) >= 1.0),
        "log:\n{}",
        sonde.log_text()
    );
    assert!(sonde
        .log_text()
        .contains(&format!("killed {FLOODER} ({flooder}) at ")));
    // The rate drops with the process gone, and the alert resolves.
    assert!(
        eventually(Duration::from_secs(30), || !firing(&sonde, "SyscallFlood")),
        "SyscallFlood still firing:\n{}",
        sonde.get_ok("/api/v1/alerts")
    );
    assert_eq!(actions(&sonde, "kill-flooder", "failed"), 0.0);

    // The failing action is skipped at the resends inside its 5 s interval.
    assert!(eventually(Duration::from_secs(15), || {
        actions(&sonde, "failing", "failed") >= 1.0
            && actions(&sonde, "failing", "skipped") >= 1.0
            && actions(&sonde, "hanging", "timeout") >= 2.0
    }));
    let log = sonde.log_text();
    assert!(log.contains("action failed: exit status 3"), "{log}");
    assert!(log.contains("cannot restart it"), "{log}");
    assert!(
        log.contains("action timeout: killed at the 1s timeout"),
        "{log}"
    );

    // Evaluation keeps its 1 s slots while the actions fail and hang:
    // three rules a second.
    let evaluations = |s: &[ExposedSample]| total(s, "sonde_rule_evaluations_total", &[]);
    let before = evaluations(&sonde.metrics());
    std::thread::sleep(Duration::from_secs(5));
    let after = sonde.metrics();
    let done = evaluations(&after) - before;
    assert!(done >= 3.0 * 4.0, "{done} rule evaluations in 5 s");
    let last = total(&after, "sonde_rule_group_last_duration_seconds", &[]);
    assert!(last < 0.5, "the group took {last} s");
    eprintln!("{done} rule evaluations in 5 s; the group's last took {last} s");
    // One may have just started (it runs again at every resend); none
    // outlives its 1 s timeout.
    let running = hanging_sleeps(sonde.child.id());
    std::thread::sleep(Duration::from_millis(1500));
    let left: Vec<String> = hanging_sleeps(sonde.child.id())
        .into_iter()
        .filter(|pid| running.contains(pid))
        .collect();
    assert!(
        left.is_empty(),
        "hanging actions outlived their timeout: {left:?}"
    );

    // A reload turns the hanging action into a dry run: logged, not run.
    let config_file = sonde.data.0.join("sonde.toml");
    let text = std::fs::read_to_string(&config_file).unwrap();
    let text = text.replace(
        "command = [\"/bin/sleep\", \"600\"]\n",
        "command = [\"/bin/sleep\", \"600\"]\ndry_run = true\n",
    );
    std::fs::write(&config_file, text).unwrap();
    let answer = common::remote::post(&format!("{}/-/reload", sonde.base_url), b"", &[]).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let timeouts = actions(&sonde, "hanging", "timeout");
    assert!(eventually(Duration::from_secs(10), || {
        actions(&sonde, "hanging", "dry_run") >= 2.0
    }));
    // A run started before the reload may still time out, none after.
    assert!(actions(&sonde, "hanging", "timeout") <= timeouts + 1.0);
    assert!(sonde
        .log_text()
        .contains("dry run, would run [\"/bin/sleep\", \"600\"]"));
    for line in sonde.log_text().lines().filter(|l| l.contains("action")) {
        eprintln!("{line}");
    }

    // The Alerts view lists the actions and their last runs, newest first.
    let page = sonde.get_ok("/alerts");
    let runs = page
        .split("<h3>Last runs</h3>")
        .nth(1)
        .unwrap_or_else(|| panic!("no runs on the Alerts view:\n{page}"));
    let row = |action: &str, result: &str| {
        runs.split("<tr class=\"run ")
            .find(|row| row.starts_with(result) && row.contains(&format!("<td>{action}</td>")))
            .unwrap_or_else(|| panic!("no {result} run of {action} in:\n{runs}"))
    };
    assert!(row("kill-flooder", "ok").contains(&format!("killed {FLOODER} ({flooder}) at ")));
    assert!(row("failing", "failed").contains("exit status 3"));
    assert!(row("failing", "failed").contains("cannot restart it"));
    assert!(row("hanging", "timeout").contains("killed at the 1s timeout"));
    assert!(row("hanging", "dry_run").contains("would run"));
    let newest = runs.split("<tr class=\"run ").nth(1).unwrap();
    assert!(newest.starts_with("dry_run"), "newest run: {newest}");
    assert!(page.contains("<span class=\"state pending\">dry run</span>"));
}

/// An action has none of sonde's capabilities: sonde run as nobody with
/// CAP_DAC_READ_SEARCH in its ambient set (as the packaged unit grants it)
/// starts an action that shows its own sets.
#[test]
fn an_action_runs_without_sondes_capabilities() {
    let data = TempDir::new("actions-caps");
    std::fs::write(
        data.0.join("rules.yml"),
        "groups:\n  - name: caps\n    interval: 1s\n    rules:\n      - alert: Always\n        expr: vector(1)\n",
    )
    .unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&data.0)
        .status()
        .unwrap();
    assert!(chown.success());
    let config = format!(
        r#"[alerting]
rule_files = ["{}/rules.yml"]
evaluation_interval = "1s"

[[alerting.actions]]
name = "show-caps"
matchers = ['alertname="Always"']
command = ["/bin/grep", "^Cap", "/proc/self/status"]
"#,
        data.0.display()
    );
    let setpriv = common::unprivileged_sonde("-all,+dac_read_search");
    let sonde = Sonde::start_command(data, &config, setpriv);
    let status = std::fs::read_to_string(format!("/proc/{}/status", sonde.child.id())).unwrap();
    assert!(
        !status.contains("CapAmb:\t0000000000000000"),
        "sonde itself has no ambient capability, nothing to drop:\n{status}"
    );
    assert!(
        eventually(Duration::from_secs(15), || actions(
            &sonde,
            "show-caps",
            "ok"
        ) >= 1.0),
        "log:\n{}",
        sonde.log_text()
    );
    let log = sonde.log_text();
    let ran = log
        .lines()
        .find(|line| line.contains("action=show-caps"))
        .unwrap();
    // The output is logged quoted: a tab shows as \t.
    assert!(ran.contains("CapAmb:\\t0000000000000000"), "{ran}");
    assert!(ran.contains("CapEff:\\t0000000000000000"), "{ran}");
}
