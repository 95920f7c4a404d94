//! The kernel event stream and event rules end to end, with real processes
//! on the real kernel and one sonde for every case:
//!
//! - the stream: an exec with its arguments, a connect, a fatal signal, an
//!   exit, an OOM kill and an open for writing under a watched path reach
//!   `/api/v1/events` (and the exec the Kernel view);
//! - a single-event rule fires once per event, one on the unit (a cgroup
//!   shaped like a systemd service's) too;
//! - the sequence "a child of the service executes a shell, then that shell
//!   connects to a non-local address within 2 s" fires exactly once when it
//!   happens in time, and not when the connect comes too late, when it
//!   comes before the exec, or when it comes from another process that
//!   reused the shell's pid.
//!
//! `sonde test rules` feeds the events of a test group's `input_events`
//! (tests/event_rules/) to the event rules, without the kernel: the same
//! cases (a single event, a sequence in time once, too late, out of order,
//! a reused pid, resolution after `resolve_after`) pass, a wrong
//! expectation fails with what fired, a bad entry is named, promtool
//! refuses the extension.
//!
//! The "service" is a copy of bash under a name of its own (its comm is
//! what the rule names). The connects go to 192.0.2.1 (TEST-NET-1, never a
//! real host): the event is the attempt (the SYN leaving), so it is there
//! whether the network refuses, drops or routes it; the tests kill a
//! connect that hangs. A machine with no route at all refuses before any
//! SYN, and the sequence cases cannot run there.

mod common;
mod kernel;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Sonde, TempDir, SONDE};
use kernel::{
    attached, cgroup_v2_root, memory_limited_cgroup, value, NamedProgram, TestCgroup, NO_BUDGET,
};
use serde_json::Value;

const RULES: &str = r#"
groups:
  - name: intrusion
    event_rules:
      - alert: ServiceShellConnectsOut
        sequence:
          by: process
          within: 2s
          steps:
            - event: exec
              where: 'exe =~ ".*/(ba|da)?sh" && parent.comm == "SERVICE"'
            - event: connect
              where: '!is_local(peer) && port == 9'
        labels: { severity: page }
        annotations:
          summary: '{{ $labels.comm }} ({{ $labels.pid }}) under SERVICE connected out'
      - alert: MarkerRan
        event: exec
        where: 'comm == "MARKER"'
      - alert: ExecInUnit
        event: exec
        where: 'unit == "UNIT"'
"#;

/// The events of `kind` sonde holds now, newest first.
fn events(sonde: &Sonde, kind: &str) -> Vec<Value> {
    let body = sonde.get_ok(&format!("/api/v1/events?kind={kind}&limit=1000"));
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["data"].as_array().unwrap().clone()
}

/// Waits (30 s at most: the machine may be busy) for an event of `kind`
/// that `wanted` accepts.
fn wait_event(sonde: &Sonde, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(event) = events(sonde, kind).into_iter().find(&wanted) {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event as wanted; the last ones: {:?}",
            &events(sonde, kind)[..3.min(events(sonde, kind).len())]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pid_of(event: &Value) -> u64 {
    event["process"]["pid"].as_u64().unwrap()
}

/// Runs the service with `script` (bash); it prints the pids it wants the
/// test to know, one a line.
fn run_service(service: &NamedProgram, script: &str) -> Vec<u32> {
    let out = service.command().args(["-c", script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// A shell child of the service connecting out after `delay` seconds;
/// its pid. A connect that hangs is killed after a second.
fn shell_connects_after(service: &NamedProgram, delay: &str) -> u32 {
    let script = format!(
        "bash -c 'sleep {delay}; echo > /dev/tcp/192.0.2.1/9' 2>/dev/null & echo $!; \
         sleep {delay}; sleep 1; kill $! 2>/dev/null; wait"
    );
    run_service(service, &script)[0]
}

/// The connect of process `pid`, once sonde has it.
fn wait_connect(sonde: &Sonde, pid: u32) -> Value {
    wait_event(sonde, "connect", |e| {
        pid_of(e) == u64::from(pid) && e["peer"] == "192.0.2.1:9"
    })
}

fn matches(sonde: &Sonde, alertname: &str, metric: &str) -> f64 {
    sonde.wait_rounds(2);
    value(&sonde.metrics(), metric, &[("alertname", alertname)])
}

/// Starts `program` with pid `pid`, by setting the pid the kernel gave
/// last (in sonde's, the initial, pid namespace); None when another
/// process took it first every time.
/// Creates `path` for writing with the system call `call` itself (`open`,
/// `creat` or `openat2`), not the one libc would choose.
fn open_for_writing_by(call: &str, path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as libc::c_long;
    // struct open_how: flags, mode, resolve.
    let how: [u64; 3] = [flags as u64, 0o644, 0];
    // SAFETY: a NUL-terminated path and a struct open_how that outlive the
    // calls; the descriptor returned is closed below.
    let fd = unsafe {
        match call {
            "open" => libc::syscall(libc::SYS_open, path.as_ptr(), flags, 0o644),
            "creat" => libc::syscall(libc::SYS_creat, path.as_ptr(), 0o644),
            _ => libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                path.as_ptr(),
                how.as_ptr(),
                std::mem::size_of_val(&how),
            ),
        }
    };
    assert!(fd >= 0, "{call}: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just opened here and is closed once.
    unsafe { libc::close(fd as libc::c_int) };
}

fn spawn_with_pid(pid: u32, mut command: Command) -> Option<std::process::Child> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut child = command.spawn().unwrap();
        if child.id() == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

#[test]
fn events_stream_and_rules_fire_exactly_when_they_should() {
    let service = NamedProgram::new("/bin/bash", "esvc");
    let marker = NamedProgram::new("/bin/true", "emark");
    let not_a_shell = NamedProgram::new("/bin/bash", "enosh");
    let unit = format!("sonde-events-{}.service", std::process::id());
    let dir = TempDir::new("event-rules");
    let watched = dir.0.join("watched");
    std::fs::create_dir(&watched).unwrap();
    let rules = dir.0.join("events.yml");
    std::fs::write(
        &rules,
        RULES
            .replace("SERVICE", &service.comm)
            .replace("MARKER", &marker.comm)
            .replace("UNIT", &unit),
    )
    .unwrap();

    // `sonde check rules` reads the extension; a mistake names its key.
    let checked = Command::new(SONDE)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    assert!(String::from_utf8_lossy(&checked.stdout).contains("SUCCESS: 3 rules found"));
    let bad = dir.0.join("bad.yml");
    std::fs::write(&bad, RULES.replace("within: 2s", "within: soon")).unwrap();
    let checked = Command::new(SONDE)
        .args(["check", "rules"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains(r#"group "intrusion", event rule 1, "ServiceShellConnectsOut": sequence.within: not a valid duration string: "soon""#),
        "{said}"
    );

    let sonde = Sonde::start(&format!(
        "{NO_BUDGET}[collect.bpf]\nevent_write_paths = [\"{}/\"]\n\
         [alerting]\nrule_files = [\"{}\"]\nevaluation_interval = \"1s\"\n",
        watched.display(),
        rules.display()
    ));
    if !attached(&sonde, "events") {
        return;
    }

    // The stream: an exec with its arguments...
    let out = marker.command().arg("--flag").status().unwrap();
    assert!(out.success());
    let exec = wait_event(&sonde, "exec", |e| {
        e["process"]["comm"] == marker.comm.as_str()
    });
    assert_eq!(exec["args"][1], "--flag", "{exec}");
    assert_eq!(exec["exe"], marker.path.to_str().unwrap(), "{exec}");
    // The Kernel view shows the recent events (on a busy machine, not
    // necessarily this one among the last 30).
    let kernel = sonde.get_ok("/kernel?range=5m");
    let recent = kernel.split("id=\"recent-events\"").nth(1).unwrap_or("");
    assert!(recent.contains("Recent kernel events"), "{kernel}");
    assert!(
        recent.contains("<tbody>"),
        "no event in the table: {kernel}"
    );
    // ... a fatal signal and the exit it caused ...
    let sleeper = NamedProgram::new("/bin/sleep", "esig");
    let mut child = sleeper.command().arg("30").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    common::unsafe_kill(child.id(), "TERM");
    child.wait().unwrap();
    let signal = wait_event(&sonde, "signal", |e| pid_of(e) == u64::from(child.id()));
    assert_eq!(signal["signal"], 15, "{signal}");
    let exit = wait_event(&sonde, "exit", |e| pid_of(e) == u64::from(child.id()));
    assert_eq!(exit["signal"], 15, "{exit}");
    assert_eq!(exit["process"]["start_ns"], signal["process"]["start_ns"]);
    // ... an open for writing under the watched path, not elsewhere ...
    std::fs::write(watched.join("written"), "x").unwrap();
    std::fs::write(dir.0.join("unwatched"), "x").unwrap();
    let open = wait_event(&sonde, "open_write", |e| {
        e["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/watched/written"))
    });
    assert_eq!(open["process"]["pid"], std::process::id(), "{open}");
    assert!(!events(&sonde, "open_write")
        .iter()
        .any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("unwatched"))));
    // ... by whichever call opens: the legacy open and creat (static and
    // musl binaries make them) and openat2 too ...
    for call in ["open", "creat", "openat2"] {
        let name = format!("by-{call}");
        open_for_writing_by(call, &watched.join(&name));
        let open = wait_event(&sonde, "open_write", |e| {
            e["path"].as_str().is_some_and(|p| p.ends_with(&name))
        });
        assert_eq!(open["process"]["pid"], std::process::id(), "{open}");
    }
    // ... and by a relative path, to a directory fd or to the working
    // directory (resolved while the process lives), not when it falls
    // outside the watched path.
    let dir_fd = std::fs::File::open(&watched).unwrap();
    let relative = std::ffi::CString::new("by-dirfd").unwrap();
    // SAFETY: a directory fd open above and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            std::os::fd::AsRawFd::as_raw_fd(&dir_fd),
            relative.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT,
            0o644,
        )
    };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    let by_dirfd = format!("{}/by-dirfd", watched.display());
    let open = wait_event(&sonde, "open_write", |e| e["path"] == by_dirfd.as_str());
    assert_eq!(open["process"]["pid"], std::process::id(), "{open}");
    // SAFETY: fd was just opened here and is closed once.
    unsafe { libc::close(fd) };
    let shell = Command::new("/bin/sh")
        .args([
            "-c",
            "echo x > by-cwd; echo x > ../unwatched-by-cwd; sleep 1",
        ])
        .current_dir(&watched)
        .spawn()
        .unwrap();
    let by_cwd = format!("{}/by-cwd", watched.display());
    let open = wait_event(&sonde, "open_write", |e| e["path"] == by_cwd.as_str());
    assert_eq!(open["process"]["pid"], shell.id(), "{open}");
    let mut shell = shell;
    assert!(shell.wait().unwrap().success());
    assert!(!events(&sonde, "open_write").iter().any(|e| e["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("unwatched-by-cwd"))));
    // ... and an OOM kill, by its victim.
    match memory_limited_cgroup(32 << 20) {
        Some(cgroup) => {
            let tail = NamedProgram::new("/usr/bin/tail", "eoom");
            let status = cgroup
                .spawn_inside(&tail.path, &["/dev/zero"])
                .status()
                .unwrap();
            assert!(!status.success(), "tail /dev/zero should have been killed");
            wait_event(&sonde, "oom_kill", |e| {
                e["process"]["comm"] == tail.comm.as_str()
            });
        }
        None => assert!(
            !common::bpf_required(),
            "no memory cgroup controller to limit a process with"
        ),
    }
    let (status, body) =
        common::get(&format!("{}/api/v1/events?kind=fork", sonde.base_url)).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expected one of exec"), "{body}");

    // A single-event rule fires at each event.
    for _ in 0..2 {
        assert!(marker.command().status().unwrap().success());
    }
    assert_eq!(
        matches(&sonde, "MarkerRan", "sonde_event_rule_matches_total"),
        3.0
    );

    // Events name the unit from the cgroup (v2 ids); a rule keys on it.
    match cgroup_v2_root() {
        Some(root) => {
            let cgroup = TestCgroup::new(&root, &format!("system.slice/{unit}"));
            assert!(cgroup
                .spawn_inside(&marker.path, &[])
                .status()
                .unwrap()
                .success());
            wait_event(&sonde, "exec", |e| e["process"]["unit"] == unit.as_str());
            assert_eq!(
                matches(&sonde, "ExecInUnit", "sonde_event_rule_matches_total"),
                1.0
            );
        }
        None => assert!(!common::bpf_required(), "no cgroup v2 hierarchy mounted"),
    }

    // In time: exec, then connect 0.3 s later. Fires once.
    let shell = shell_connects_after(&service, "0.3");
    wait_connect(&sonde, shell);
    let rule = "ServiceShellConnectsOut";
    assert_eq!(matches(&sonde, rule, "sonde_event_rule_matches_total"), 1.0);
    let alerts: Value = serde_json::from_str(&sonde.get_ok("/api/v2/alerts")).unwrap();
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == rule)
        .unwrap_or_else(|| panic!("{alerts}"))
        .clone();
    assert_eq!(alert["labels"]["pid"], shell.to_string(), "{alert}");
    assert_eq!(alert["labels"]["severity"], "page", "{alert}");
    let told = alert["annotations"]["events"].as_str().unwrap();
    assert!(
        told.contains(" exec ") && told.contains("peer=192.0.2.1:9"),
        "{told}"
    );
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains(&shell.to_string()));
    // Prometheus's alerts API lists it with the rules' alerts, firing.
    let listed: Value = serde_json::from_str(&sonde.get_ok("/api/v1/alerts")).unwrap();
    let firing = listed["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == rule)
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(firing["state"], "firing", "{firing}");
    assert_eq!(firing["labels"]["pid"], shell.to_string(), "{firing}");
    assert_eq!(firing["value"], "2e+00", "{firing}");
    assert_eq!(firing["annotations"]["events"], told, "{firing}");
    // The rules API lists the event rule as an alerting rule, firing.
    let listed: Value = serde_json::from_str(&sonde.get_ok("/api/v1/rules?type=alert")).unwrap();
    let listed_rule = listed["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .find(|r| r["name"] == rule)
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(listed_rule["type"], "alerting", "{listed_rule}");
    assert_eq!(listed_rule["state"], "firing", "{listed_rule}");
    assert_eq!(listed_rule["alerts"][0]["labels"]["pid"], shell.to_string());
    let query = listed_rule["query"].as_str().unwrap();
    assert!(
        query.starts_with("by process within 2s: exec where '")
            && query.contains(" then connect where '"),
        "{query}"
    );
    // So does the Alerts view, with the alert's pid.
    let view = sonde.get_ok("/alerts");
    let shown = view
        .split(&format!(
            "<span class=\"state firing\">firing</span> {rule}"
        ))
        .nth(1)
        .unwrap_or_else(|| panic!("{rule} not shown firing: {view}"));
    let shown = shown.split("<h2>").next().unwrap();
    assert!(
        shown.contains("by process within 2s: exec where"),
        "{shown}"
    );
    assert!(shown.contains(&shell.to_string()), "{shown}");

    // Too late: the connect 3 s after the exec, past `within`.
    let late = shell_connects_after(&service, "3");
    wait_connect(&sonde, late);
    assert_eq!(matches(&sonde, rule, "sonde_event_rule_expired_total"), 1.0);

    // Out of order: connect first, then exec a shell (which then does not connect).
    let script = format!(
        "{} -c 'echo > /dev/tcp/192.0.2.1/9; exec /bin/bash -c \"sleep 0.2\"' 2>/dev/null & echo $!; \
         sleep 1; kill $! 2>/dev/null; wait",
        not_a_shell.path.display()
    );
    let reversed = run_service(&service, &script)[0];
    wait_connect(&sonde, reversed);
    wait_event(&sonde, "exec", |e| {
        pid_of(e) == u64::from(reversed) && e["exe"] == "/bin/bash"
    });

    // A reused pid: the shell execs and exits; another process, given the
    // same pid, connects.
    let first = run_service(&service, "bash -c 'exit 0' & echo $!; wait")[0];
    let mut command = not_a_shell.command();
    command
        .args(["-c", "echo > /dev/tcp/192.0.2.1/9"])
        .stderr(std::process::Stdio::null());
    match spawn_with_pid(first, command) {
        Some(mut second) => {
            std::thread::sleep(Duration::from_secs(1));
            let _ = second.kill();
            let _ = second.wait();
            let connect = wait_connect(&sonde, first);
            let exec = wait_event(&sonde, "exec", |e| {
                pid_of(e) == u64::from(first) && e["parent"]["comm"] == service.comm.as_str()
            });
            assert_ne!(connect["process"]["start_ns"], exec["process"]["start_ns"]);
        }
        None => eprintln!("pid {first} was taken by another process each time: reuse not shown"),
    }

    // None of these fired; the one in time still counts once.
    assert_eq!(matches(&sonde, rule, "sonde_event_rule_matches_total"), 1.0);
    let lost = value(
        &sonde.metrics(),
        "sonde_bpf_map_full_total",
        &[("map", "events")],
    );
    assert_eq!(lost, 0.0, "events lost");
}

/// `program test rules FILE`: exit code and its stdout and stderr together.
fn test_rules(program: &str, file: &Path) -> (i32, String) {
    let output = Command::new(program)
        .args(["test", "rules"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn test_rules_feeds_input_events_to_the_event_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/event_rules");
    let passing = dir.join("intrusion_test.yml");
    let (code, text) = test_rules(SONDE, &passing);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let (code, text) = test_rules("promtool", &passing);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("field input_events not found"), "{text}");

    // Expecting nothing at 2m9s, when both shells' alerts still fire.
    let temp = TempDir::new("event-rules-test");
    let wrong = temp.0.join("wrong_test.yml");
    let text = std::fs::read_to_string(&passing).unwrap();
    std::fs::write(
        &wrong,
        text.replace(
            "  - intrusion.yml",
            &format!("  - {}/intrusion.yml", dir.display()),
        )
        .replace(
            "eval_time: 3m\n        alertname: ShellUnderNginx",
            "eval_time: 2m9s\n        alertname: ShellUnderNginx",
        ),
    )
    .unwrap();
    let (code, text) = test_rules(SONDE, &wrong);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("alertname: ShellUnderNginx, time: 2m9s")
            && text.contains("pid=\"4242\"")
            && text.contains("pid=\"5000\""),
        "{text}"
    );

    let bad = dir.join("bad_input_test.yml");
    let (code, text) = test_rules(SONDE, &bad);
    assert_eq!(code, 1, "{text}");
    let named = format!(
        "{}: tests[0].input_events[1]: unknown field `peer_address`",
        bad.display()
    );
    assert!(text.contains(&named), "{text}");
}
