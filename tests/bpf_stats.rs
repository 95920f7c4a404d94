//! `kernel.bpf_stats_enabled` while sonde runs: on while any sonde runs,
//! restored when the last one stops with SIGTERM, and a descriptor as the
//! fallback when the sysctl cannot be written (forced with SONDE_BPF_REFUSE).

mod common;

use std::time::{Duration, Instant};

use common::{bpf_required, Sonde, TempDir};

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// The value the sondes' group recorded to restore (left by a killed
/// sonde), if any.
const RECORD: &str = "/run/sonde/bpf-stats";

fn sysctl() -> String {
    std::fs::read_to_string(SYSCTL).unwrap().trim().to_string()
}

/// The log line about run-time statistics, or None (after saying why) when
/// no BPF collector loaded here.
fn stats_line(log: &str) -> Option<String> {
    if let Some(line) = log
        .lines()
        .find(|line| line.contains("bpf run-time statistics:"))
    {
        return Some(line.to_string());
    }
    assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but:\n{log}");
    eprintln!("skipping: no BPF collector loaded here:\n{log}");
    None
}

fn stopped_log(data: &TempDir) -> String {
    std::fs::read_to_string(data.0.join("sonde.log")).unwrap_or_default()
}

#[test]
fn sysctl_is_on_while_sondes_run_and_restored_by_the_last() {
    let before = sysctl();
    let restore_to = std::fs::read_to_string(RECORD)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| before.clone());

    let first = Sonde::start("");
    let Some(line) = stats_line(&first.log_text()) else {
        return;
    };
    assert!(line.contains(&format!("{SYSCTL} ")), "{line}");
    assert_eq!(sysctl(), "1", "{line}");

    // A second sonde joins; the first one stopping must not turn it off.
    let second = Sonde::start("");
    let first_log = stopped_log(&first.stop());
    assert!(
        first_log.contains("another sonde still runs"),
        "{first_log}"
    );
    assert_eq!(sysctl(), "1");

    let second_log = stopped_log(&second.stop());
    if second_log.contains("another sonde still runs") {
        eprintln!("a sonde outside this test holds {SYSCTL}; its restore is not checked");
        return;
    }
    assert_eq!(sysctl(), restore_to, "{second_log}");
}

#[test]
fn refused_sysctl_falls_back_to_a_descriptor() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        "",
        &[("SONDE_BPF_REFUSE", "bpf_stats_enabled")],
    );
    let Some(line) = stats_line(&sonde.log_text()) else {
        return;
    };
    assert!(line.contains("BPF_ENABLE_STATS descriptor"), "{line}");
    // The descriptor alone counts run time.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let run_seconds: f64 = sonde
            .metrics()
            .iter()
            .filter(|s| s.name == "sonde_bpf_program_run_seconds_total")
            .map(|s| s.value)
            .sum();
        if run_seconds > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no program run time counted:\n{}",
            sonde.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `run_time_stats = false`: sonde leaves the statistics alone and exports
/// no run time or run count (zeros would read as "never ran").
#[test]
fn turned_off_in_the_config_no_run_time_is_exported() {
    let sonde = Sonde::start("[collect.bpf]\nrun_time_stats = false\n");
    let Some(line) = stats_line(&sonde.log_text()) else {
        return;
    };
    assert!(
        line.contains("off ([collect.bpf] run_time_stats = false)"),
        "{line}"
    );
    sonde.wait_rounds(1);
    let samples = sonde.metrics();
    assert!(samples.iter().any(|s| s.name == "sonde_bpf_map_full_total"));
    assert!(samples.iter().all(|s| {
        s.name != "sonde_bpf_program_run_seconds_total" && s.name != "sonde_bpf_program_runs_total"
    }));
}
