//! What the tests of custom programs share: compiling tests/programs/*.bpf.c
//! with clang against bpf/vmlinux.h into a directory sonde loads, forking
//! children named `sonde-pt-...` (the only tasks the programs count), and
//! reading what sonde made of them from /metrics and /api/v1/query.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{bpf_required, ExposedSample, Sonde};

/// Held by a test while its children run: every test's programs count
/// every `sonde-pt-*` task, so two at once would see each other's calls.
pub static CHILDREN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Only the programs: the built-in BPF collectors would cost CPU and show
/// nothing these tests check.
pub const ONLY_PROGRAMS: &str =
    "[collect.bpf]\nsyscalls = false\nblock = false\nnet = false\nprocess = false\nsched = false\n";

/// Compiles tests/programs/NAME.bpf.c into `dir`/NAME.bpf.o beside a copy
/// of NAME.yaml, with the libbpf headers libbpf-sys ships; None (after
/// saying why) when clang cannot, unless BPF is required. `flags` go to
/// clang after the usual ones (a -D for a path a section names).
pub fn compile(dir: &Path, names: &[&str], flags: &[String]) -> Option<()> {
    let include = dir.join("include");
    std::fs::create_dir_all(include.join("bpf")).unwrap();
    for (file, text) in libbpf_rs::libbpf_sys::API_HEADERS {
        std::fs::write(include.join("bpf").join(file), text).unwrap();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in names {
        let source = root.join(format!("tests/programs/{name}.bpf.c"));
        // The flags build.rs gives sonde's own programs, plus the target.
        let out = Command::new("clang")
            .args([
                "-g",
                "-O2",
                "-target",
                "bpf",
                "-D__TARGET_ARCH_x86",
                "-Wall",
                "-Werror",
            ])
            .arg("-I")
            .arg(root.join("bpf"))
            .arg("-I")
            .arg(&include)
            .args(flags)
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(dir.join(format!("{name}.bpf.o")))
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            other => {
                let why = format!("cannot compile {}: {other:?}", source.display());
                assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but {why}");
                eprintln!("skipping: {why}");
                return None;
            }
        }
        std::fs::copy(
            root.join(format!("tests/programs/{name}.yaml")),
            dir.join(format!("{name}.yaml")),
        )
        .unwrap();
    }
    Some(())
}

/// Whether config `name` loaded; when it did not, says why and tells the
/// caller to skip (or fails, when BPF is required).
pub fn loaded(sonde: &Sonde, name: &str) -> bool {
    let log = sonde.log_text();
    let prefix = format!("programs config {name}:");
    let line = log.lines().find(|l| l.contains(&prefix)).unwrap_or("");
    if line.contains(&format!("{prefix} on")) {
        return true;
    }
    assert!(
        !bpf_required(),
        "SONDE_REQUIRE_BPF=1 but config {name}: {line}\n{log}"
    );
    eprintln!("skipping: config {name} cannot load here: {line}");
    false
}

/// Forks a child named `comm` that runs `work` and exits; waits for it.
pub fn run_child(comm: &str, work: impl FnOnce()) {
    let pid = crate::kernel::fork_named(comm, work);
    let mut status = 0;
    // SAFETY: waitpid writes the status it is given.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(status, 0);
}

pub fn value(samples: &[ExposedSample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Polls /metrics (bounded) until `done` holds; returns the last samples.
pub fn wait_for(sonde: &Sonde, done: impl Fn(&[ExposedSample]) -> bool) -> Vec<ExposedSample> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let samples = sonde.metrics();
        if done(&samples) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The value /api/v1/query gives for an instant vector of one series.
pub fn query(sonde: &Sonde, promql: &str) -> f64 {
    let encoded: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let body = sonde.get_ok(&format!("/api/v1/query?query={encoded}"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = json["data"]["result"].as_array().expect("a vector");
    assert_eq!(result.len(), 1, "{promql}: {body}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

/// The `id` label sonde gave program `program` of config `config`.
pub fn program_id(samples: &[ExposedSample], config: &str, program: &str) -> String {
    samples
        .iter()
        .find(|s| {
            s.name == "ebpf_exporter_ebpf_program_info"
                && s.label("config") == Some(config)
                && s.label("program") == Some(program)
        })
        .and_then(|s| s.label("id"))
        .unwrap_or_else(|| panic!("no ebpf_exporter_ebpf_program_info for {config}/{program}"))
        .to_string()
}
