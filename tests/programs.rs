//! Custom eBPF programs in ebpf_exporter's format end to end: the programs
//! under tests/programs/ are compiled with clang against bpf/vmlinux.h, put
//! with their YAML in a directory sonde loads (`[programs] dir`), and a
//! forked child named `sonde-pt-...` makes a known number of syscalls. Its
//! counts must come out exact in /metrics and in /api/v1/query, with the
//! labels the decoders make; a program this kernel refuses is left out while
//! the rest of its object counts; bad configs are refused with clear
//! messages.

mod common;
mod kernel;
#[path = "programs/support.rs"]
mod support;

use std::process::Command;

use common::{bpf_required, ExposedSample, Sonde, TempDir, SONDE};
use support::{
    compile, loaded, program_id, query, run_child, value, wait_for, CHILDREN, ONLY_PROGRAMS,
};

const PPID_CALLS: u64 = 10_000;
const PID_CALLS: u64 = 3_000;
const OTHER_PPID_CALLS: u64 = 7;
const EXITS: u64 = 20;

/// The configs under tests/programs/ the main test loads together.
const CONFIGS: [&str; 8] = [
    "calls", "writes", "percpu", "mixed", "exits", "events", "kaddrs", "clock",
];

#[test]
fn counts_exactly_with_ebpf_exporters_names_and_decoders() {
    let _alone = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("programs");
    if compile(&dir.0, &CONFIGS, &[]).is_none() {
        return;
    }
    let sonde = Sonde::start(&format!(
        "{ONLY_PROGRAMS}[programs]\ndir = \"{}\"\n",
        dir.0.display()
    ));
    if !CONFIGS.iter().all(|name| loaded(&sonde, name)) {
        return;
    }
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    run_child("sonde-pt-calls1", || {
        for _ in 0..PPID_CALLS {
            // SAFETY: plain syscalls.
            unsafe { libc::getppid() };
        }
        for _ in 0..PID_CALLS {
            // SAFETY: plain syscalls.
            unsafe { libc::getpid() };
        }
        for (size, times) in [(1usize, 10), (100, 5)] {
            let bytes = vec![b'x'; size];
            for _ in 0..times {
                // SAFETY: writes `size` bytes of `bytes` to /dev/null.
                unsafe { libc::write(fd, bytes.as_ptr().cast(), size) };
            }
        }
    });
    // A dynamically linked program under a test name: its libc exit()
    // runs once per run.
    let true_copy = dir.0.join("sonde-pt-true");
    kernel::copy_executable("/bin/true", &true_copy);
    for _ in 0..EXITS {
        assert!(Command::new(&true_copy).status().unwrap().success());
    }
    // A second of CPU time, for the perf_event section sampling at 99 Hz.
    run_child("sonde-pt-busy", || {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        while now.tv_sec < 1 {
            // SAFETY: clock_gettime writes one timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
        }
    });
    run_child("sonde-pt-other", || {
        for _ in 0..OTHER_PPID_CALLS {
            // SAFETY: plain syscalls.
            unsafe { libc::getppid() };
        }
    });

    let calls = |s: &[ExposedSample], syscall| {
        value(
            s,
            "ebpf_exporter_calls_total",
            &[("comm", "calls1"), ("syscall", syscall)],
        )
    };
    let samples = wait_for(&sonde, |s| {
        calls(s, "getppid") == Some(PPID_CALLS as f64)
            && value(s, "ebpf_exporter_ppid_calls_total", &[])
                == Some((PPID_CALLS + OTHER_PPID_CALLS) as f64)
            && value(s, "ebpf_exporter_write_size_bytes_count", &[]) == Some(15.0)
            && value(s, "ebpf_exporter_libc_exits_total", &[]) == Some(EXITS as f64)
            && value(s, "ebpf_exporter_pid_events_total", &[])
                .is_some_and(|n| n >= PID_CALLS as f64)
    });
    let log = sonde.log_text();

    // A raw_tp counter: the syscall decoder names the number, the regexp
    // keeps its group and drops the comm it does not match.
    assert_eq!(calls(&samples, "getppid"), Some(PPID_CALLS as f64), "{log}");
    assert_eq!(calls(&samples, "getpid"), Some(PID_CALLS as f64));
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "ebpf_exporter_calls_total" && s.label("comm") != Some("calls1")),
        "the regexp drops every other comm"
    );
    // The same keys through a static map: known numbers named, others
    // unknown:N (allow_unknown is off).
    let kind = |comm, kind| {
        value(
            &samples,
            "ebpf_exporter_calls_kind_total",
            &[("comm", comm), ("kind", kind)],
        )
    };
    assert_eq!(kind("sonde-pt-calls1", "parent"), Some(PPID_CALLS as f64));
    assert_eq!(kind("sonde-pt-calls1", "self"), Some(PID_CALLS as f64));
    assert_eq!(
        kind("sonde-pt-other", "parent"),
        Some(OTHER_PPID_CALLS as f64)
    );
    assert_eq!(
        kind("sonde-pt-calls1", "unknown:1"),
        Some(15.0),
        "the writes"
    );

    // An exp2 histogram from a classic tracepoint: 10 writes of 1 byte, 5 of
    // 100 (bucket 7, up to 128), the sum at the key after bucket_max.
    let bucket = |le| {
        value(
            &samples,
            "ebpf_exporter_write_size_bytes_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(bucket("1"), Some(10.0));
    assert_eq!(bucket("64"), Some(10.0));
    assert_eq!(bucket("128"), Some(15.0));
    assert_eq!(bucket("524288"), Some(15.0));
    assert_eq!(bucket("+Inf"), Some(15.0));
    assert_eq!(
        value(&samples, "ebpf_exporter_write_size_bytes_sum", &[]),
        Some(510.0)
    );

    // A per-CPU array: summed without a cpu label, one series per CPU with.
    let total = (PPID_CALLS + OTHER_PPID_CALLS) as f64;
    assert_eq!(
        value(&samples, "ebpf_exporter_ppid_calls_total", &[]),
        Some(total)
    );
    let per_cpu: Vec<&ExposedSample> = samples
        .iter()
        .filter(|s| s.name == "ebpf_exporter_ppid_calls_by_cpu_total")
        .collect();
    assert_eq!(per_cpu.len(), libbpf_rs::num_possible_cpus().unwrap());
    for (cpu, sample) in per_cpu.iter().enumerate() {
        assert!(per_cpu
            .iter()
            .any(|s| s.label("cpu") == Some(&cpu.to_string())));
        assert!(sample.value <= total);
    }
    assert_eq!(per_cpu.iter().map(|s| s.value).sum::<f64>(), total);

    // The object mixing a raw_tp with a kprobe and an fentry this kernel
    // refuses: the raw_tp counts alone, the others show as not attached.
    assert_eq!(
        value(&samples, "ebpf_exporter_pid_calls_total", &[]),
        Some(PID_CALLS as f64)
    );
    let attached = |program| {
        let id = program_id(&samples, "mixed", program);
        value(
            &samples,
            "ebpf_exporter_ebpf_program_attached",
            &[("id", &id)],
        )
    };
    assert_eq!(attached("count_getpid"), Some(1.0));
    assert_eq!(attached("kprobe_getpid"), Some(0.0));
    assert_eq!(attached("fentry_getpid"), Some(0.0));
    assert_eq!(attached("missing_tracepoint"), Some(0.0));
    assert!(
        log.contains("program kprobe_getpid (kprobe/__x64_sys_getpid) cannot attach"),
        "{log}"
    );
    assert!(
        log.contains("program fentry_getpid refused by this kernel"),
        "{log}"
    );
    // A perf_event_array counter: one event per getpid, counted by comm.
    assert_eq!(
        value(
            &samples,
            "ebpf_exporter_pid_events_total",
            &[("comm", "sonde-pt-calls1")]
        ),
        Some(PID_CALLS as f64)
    );
    assert_eq!(
        value(
            &samples,
            "dropped_perf_event_map_events_pid_events_total",
            &[]
        ),
        Some(0.0)
    );
    // kaddrs: schedule()'s address reached the program.
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let schedule = kallsyms
        .lines()
        .find_map(|l| l.strip_suffix(" T schedule"))
        .and_then(|addr| u64::from_str_radix(addr, 16).ok())
        .expect("schedule in /proc/kallsyms");
    assert_eq!(
        value(&samples, "ebpf_exporter_kaddr_schedule_low32", &[]),
        Some((schedule & 0xffff_ffff) as f64)
    );
    // A perf_event/type=1,config=0,frequency=99 section: about 99 samples
    // land in a second of the busy child's CPU time.
    let clock = value(&samples, "ebpf_exporter_clock_samples_total", &[]).unwrap_or(0.0);
    assert!(
        (80.0..=120.0).contains(&clock),
        "{clock} CPU clock samples\n{log}"
    );
    // A uprobe on libc.so.6, attached from its section name.
    assert_eq!(
        value(&samples, "ebpf_exporter_libc_exits_total", &[]),
        Some(EXITS as f64)
    );
    for name in CONFIGS {
        let enabled = value(&samples, "ebpf_exporter_enabled_configs", &[("name", name)]);
        assert_eq!(enabled, Some(1.0));
    }
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "ebpf_exporter_decoder_errors_total"),
        "no decoder failed"
    );

    // Stored and queryable like every metric.
    sonde.wait_rounds(1);
    let stored = query(
        &sonde,
        "ebpf_exporter_calls_total{comm=\"calls1\",syscall=\"getppid\"}",
    );
    assert_eq!(stored, PPID_CALLS as f64);
    assert_eq!(
        query(&sonde, "sum(ebpf_exporter_ppid_calls_by_cpu_total)"),
        total
    );
    assert_eq!(query(&sonde, "ebpf_exporter_write_size_bytes_count"), 15.0);
    let p50 = query(
        &sonde,
        "histogram_quantile(0.5, ebpf_exporter_write_size_bytes_bucket)",
    );
    assert!(p50 <= 1.0, "half the writes are of 1 byte: {p50}");
}

#[test]
fn refuses_bad_configs_with_the_file_the_key_and_what_is_expected() {
    let dir = TempDir::new("programs-bad");
    if compile(&dir.0, &["calls", "writes"], &[]).is_none() {
        return;
    }
    let good = std::fs::read_to_string(dir.0.join("calls.yaml")).unwrap();
    let object = dir.0.join("calls.bpf.o");
    let bad = [
        ("wrong_size", good.replacen("size: 16", "size: 8", 1)),
        (
            "unknown_decoder",
            good.replacen(
                "uint\n            - name: syscall",
                "uint\n            - name: syscal",
                1,
            ),
        ),
        ("unknown_key", good.replacen("help:", "hlep:", 1)),
        ("missing", good.clone()),
    ];
    // Loads, but errno without uint first gets raw bytes, not a number:
    // every key fails and is counted.
    let writes = std::fs::read_to_string(dir.0.join("writes.yaml")).unwrap();
    std::fs::write(
        dir.0.join("decoder_fails.yaml"),
        writes.replace("- name: uint", "- name: errno"),
    )
    .unwrap();
    std::fs::copy(
        dir.0.join("writes.bpf.o"),
        dir.0.join("decoder_fails.bpf.o"),
    )
    .unwrap();
    // A second config exporting calls' metrics.
    std::fs::write(dir.0.join("twice.yaml"), &good).unwrap();
    std::fs::copy(&object, dir.0.join("twice.bpf.o")).unwrap();
    for (name, yaml) in &bad {
        std::fs::write(dir.0.join(format!("{name}.yaml")), yaml).unwrap();
        if *name != "missing" {
            std::fs::copy(&object, dir.0.join(format!("{name}.bpf.o"))).unwrap();
        }
    }
    let config = format!(
        "{ONLY_PROGRAMS}[programs]\ndir = \"{}\"\nnames = [\"calls\", \"wrong_size\", \"unknown_decoder\", \"unknown_key\", \"missing\", \"decoder_fails\", \"twice\"]\n",
        dir.0.display()
    );
    let sonde = Sonde::start(&config);
    if !loaded(&sonde, "calls") {
        return;
    }
    let log = sonde.log_text();
    let refused = |name: &str, expected: &[&str]| {
        let prefix = format!("programs config {name}: off: ");
        let line = log
            .lines()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("config {name} not refused:\n{log}"));
        for part in expected {
            assert!(line.contains(part), "{name}: {part:?} not in {line}");
        }
    };
    let yaml = |name: &str| dir.0.join(format!("{name}.yaml")).display().to_string();
    refused(
        "wrong_size",
        &[
            "metric calls_total",
            "labels describe a 16-byte key (comm 8+0, syscall 8+0)",
            "key is 24 bytes",
        ],
    );
    refused(
        "unknown_decoder",
        &[
            &yaml("unknown_decoder"),
            "label syscall",
            "unknown decoder \"syscal\"",
            "expected one of uint",
        ],
    );
    refused(
        "unknown_key",
        &[
            &yaml("unknown_key"),
            "metrics.counters[0]",
            "unknown field `hlep`",
            "expected one of",
        ],
    );
    refused("missing", &["has no object beside it", "missing.bpf.o"]);
    refused(
        "twice",
        &[
            "metric calls_kind_total is already config calls's",
            "unique across configs",
        ],
    );
    // The good config beside them runs; the one whose decoder fails counts
    // its failures by decoder and shows no series for the keys.
    let _alone = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    run_child("sonde-pt-calls2", || {
        // SAFETY: a plain syscall; one byte written to /dev/null.
        unsafe {
            libc::getppid();
            libc::write(fd, b"x".as_ptr().cast(), 1);
        }
    });
    let errors = |s: &[ExposedSample]| {
        value(
            s,
            "ebpf_exporter_decoder_errors_total",
            &[("config", "decoder_fails"), ("decoder", "errno")],
        )
    };
    let calls = |s: &[ExposedSample]| {
        value(
            s,
            "ebpf_exporter_calls_total",
            &[("comm", "calls2"), ("syscall", "getppid")],
        )
    };
    let samples = wait_for(&sonde, |s| {
        errors(s).is_some_and(|n| n >= 1.0) && calls(s).is_some()
    });
    assert!(
        errors(&samples).is_some_and(|n| n >= 1.0),
        "{}",
        sonde.log_text()
    );
    assert_eq!(calls(&samples), Some(1.0), "{}", sonde.log_text());
    assert!(!samples
        .iter()
        .any(|s| s.name.starts_with("ebpf_exporter_write_size_bytes") && s.label("le").is_some()));
    assert_eq!(
        value(
            &samples,
            "ebpf_exporter_enabled_configs",
            &[("name", "calls")]
        ),
        Some(1.0)
    );
    assert!(value(
        &samples,
        "ebpf_exporter_enabled_configs",
        &[("name", "missing")]
    )
    .is_none());

    // `sonde doctor` lists each with the same reason.
    let doctor = Command::new(SONDE)
        .args(["doctor", "--config"])
        .arg(sonde.data.0.join("sonde.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("programs config calls"), "{text}");
    assert!(text.contains("unknown field `hlep`"), "{text}");

    // `sonde programs check DIR` says the same without loading anything;
    // the directory's default list is every NAME.yaml with a NAME.bpf.o.
    let check = Command::new(SONDE)
        .args(["programs", "check"])
        .arg(&dir.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{text}");
    assert!(text.contains("calls: ok"), "{text}");
    assert!(
        text.contains("wrong_size: config wrong_size: metric calls_total"),
        "{text}"
    );
    assert!(text.contains("unknown decoder \"syscal\""), "{text}");
    assert!(!text.contains("missing"), "{text}");
    let good = Command::new(SONDE)
        .args(["programs", "check"])
        .arg(&dir.0)
        .arg("calls")
        .status()
        .unwrap();
    assert!(good.success());
}

/// SIGHUP re-reads the directory: a config removed stops, one added starts,
/// one changed is loaded again, and one unchanged keeps counting on.
#[test]
fn reload_adds_removes_and_keeps_configs() {
    let _alone = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("programs-reload");
    if compile(&dir.0, &["percpu", "calls", "writes"], &[]).is_none() {
        return;
    }
    let mixed = TempDir::new("programs-reload-mixed");
    if compile(&mixed.0, &["mixed"], &[]).is_none() {
        return;
    }
    let sonde = Sonde::start(&format!(
        "{ONLY_PROGRAMS}[programs]\ndir = \"{}\"\n",
        dir.0.display()
    ));
    if !loaded(&sonde, "percpu") {
        return;
    }
    let ppid_child = |comm: &str| {
        run_child(comm, || {
            for _ in 0..OTHER_PPID_CALLS {
                // SAFETY: plain syscalls.
                unsafe { libc::getppid() };
            }
        })
    };
    let ppid = |s: &[ExposedSample]| value(s, "ebpf_exporter_ppid_calls_total", &[]);
    ppid_child("sonde-pt-reload1");
    let before = wait_for(&sonde, |s| ppid(s) == Some(OTHER_PPID_CALLS as f64));
    assert_eq!(ppid(&before), Some(OTHER_PPID_CALLS as f64));
    let writes_id = program_id(&before, "writes", "count_write");

    std::fs::remove_file(dir.0.join("calls.yaml")).unwrap();
    for file in ["mixed.yaml", "mixed.bpf.o"] {
        std::fs::copy(mixed.0.join(file), dir.0.join(file)).unwrap();
    }
    let writes = std::fs::read_to_string(dir.0.join("writes.yaml")).unwrap();
    std::fs::write(
        dir.0.join("writes.yaml"),
        writes.replace("Sizes of the tests' writes", "Write sizes"),
    )
    .unwrap();
    common::unsafe_kill(sonde.child.id(), "HUP");
    let enabled = |s: &[ExposedSample], name| {
        value(s, "ebpf_exporter_enabled_configs", &[("name", name)]).is_some()
    };
    let after = wait_for(&sonde, |s| enabled(s, "mixed") && !enabled(s, "calls"));
    assert!(enabled(&after, "mixed"), "{}", sonde.log_text());
    assert!(!enabled(&after, "calls"));
    assert!(!after.iter().any(|s| s.name == "ebpf_exporter_calls_total"));
    assert_ne!(
        program_id(&after, "writes", "count_write"),
        writes_id,
        "reloaded"
    );

    ppid_child("sonde-pt-reload2");
    let grown = wait_for(&sonde, |s| ppid(s) == Some(2.0 * OTHER_PPID_CALLS as f64));
    assert_eq!(
        ppid(&grown),
        Some(2.0 * OTHER_PPID_CALLS as f64),
        "the unchanged config kept counting across the reload"
    );
    assert!(sonde
        .log_text()
        .contains("programs config percpu: on (unchanged"));

    // POST /-/reload does the same: mixed removed, gone.
    std::fs::remove_file(dir.0.join("mixed.yaml")).unwrap();
    let answer = common::remote::post(&format!("{}/-/reload", sonde.base_url), b"", &[]).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let gone = wait_for(&sonde, |s| !enabled(s, "mixed"));
    assert!(!enabled(&gone, "mixed"), "{}", sonde.log_text());
    assert!(enabled(&gone, "percpu"));
}

/// cgroup_id_map: only calls from a cgroup whose path the regexps match
/// are counted; the map is kept filled by sonde.
#[test]
fn cgroup_id_map_counts_only_matching_cgroups() {
    let _alone = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(root) = kernel::cgroup_v2_root() else {
        assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but no cgroup v2 here");
        eprintln!("skipping: no cgroup v2 here");
        return;
    };
    let dir = TempDir::new("programs-cgroups");
    if compile(&dir.0, &["cgroups"], &[]).is_none() {
        return;
    }
    let cgroup = kernel::TestCgroup::new(&root, &format!("sonde-pt-cgroup-{}", std::process::id()));
    let sonde = Sonde::start(&format!(
        "{ONLY_PROGRAMS}[programs]\ndir = \"{}\"\n",
        dir.0.display()
    ));
    if !loaded(&sonde, "cgroups") {
        return;
    }
    let procs = std::ffi::CString::new(cgroup.path.join("cgroup.procs").to_str().unwrap()).unwrap();
    run_child("sonde-pt-incg", || {
        // SAFETY: raw syscalls: the child moves itself into the cgroup.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            for _ in 0..PID_CALLS {
                libc::getppid();
            }
        }
    });
    run_child("sonde-pt-outcg", || {
        for _ in 0..OTHER_PPID_CALLS {
            // SAFETY: plain syscalls.
            unsafe { libc::getppid() };
        }
    });
    let calls = |s: &[ExposedSample]| value(s, "ebpf_exporter_cgroup_ppid_calls_total", &[]);
    let samples = wait_for(&sonde, |s| calls(s) == Some(PID_CALLS as f64));
    assert_eq!(
        calls(&samples),
        Some(PID_CALLS as f64),
        "{}",
        sonde.log_text()
    );
}
