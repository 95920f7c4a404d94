//! The block I/O collector end to end: O_DIRECT writes and reads of known
//! size by a program with a name of its own are charged to it, byte for byte
//! and request for request, and the latency histogram counts them.

mod common;
mod kernel;

use common::{Sonde, TempDir};
use kernel::{attached, value, wait_for, NamedProgram, NO_BUDGET};

const BLOCK: u64 = 4096;
const COUNT: u64 = 1000;

/// Whether `a` is within 1% of `b`.
fn within_1pct(a: f64, b: f64) -> bool {
    (a - b).abs() <= b * 0.01
}

#[test]
fn charges_direct_io_to_the_process_that_did_it() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "block") {
        return;
    }
    // O_DIRECT needs a file system on a block device: the build's own
    // scratch directory is (tmpfs under /tmp may not be).
    let dir = TempDir(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sonde-block-{}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("data");
    let dd = NamedProgram::new("/bin/dd", "sdd");
    // Laid out first through the page cache, so the direct writes below
    // overwrite allocated blocks and nothing else is charged to dd's name.
    std::fs::write(&file, vec![1u8; (BLOCK * COUNT) as usize]).unwrap();
    std::fs::File::open(&file).unwrap().sync_all().unwrap();
    let before = sonde.metrics();
    let of = format!("of={}", file.display());
    let iff = format!("if={}", file.display());
    let bs = format!("bs={BLOCK}");
    let count = format!("count={COUNT}");
    let run = |args: &[&str]| {
        let out = dd.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "if=/dev/zero",
        &of,
        &bs,
        &count,
        "oflag=direct",
        "conv=notrunc",
    ]);
    run(&[&iff, "of=/dev/null", &bs, &count, "iflag=direct"]);

    let comm = dd.comm.as_str();
    let total = |s: &[common::ExposedSample], name: &str, op: &str| {
        value(s, name, &[("comm", comm), ("op", op)])
    };
    let expected_bytes = (BLOCK * COUNT) as f64;
    let samples = wait_for(&sonde, |s| {
        total(s, "sonde_block_io_bytes_total", "write") >= expected_bytes
            && total(s, "sonde_block_io_bytes_total", "read") >= expected_bytes
    });
    for op in ["write", "read"] {
        let bytes = total(&samples, "sonde_block_io_bytes_total", op);
        let ops = total(&samples, "sonde_block_io_ops_total", op);
        assert!(
            within_1pct(bytes, expected_bytes),
            "{op}: {bytes} bytes charged to {comm}, expected {expected_bytes}"
        );
        assert!(
            within_1pct(ops, COUNT as f64),
            "{op}: {ops} requests charged to {comm}, expected {COUNT}"
        );
    }
    // The latency histogram saw at least those requests, on a named device.
    let latency =
        |s: &[common::ExposedSample]| value(s, "sonde_block_io_duration_seconds_count", &[]);
    assert!(latency(&samples) - latency(&before) >= 2.0 * COUNT as f64);
    let device = samples
        .iter()
        .find(|s| s.name == "sonde_block_io_bytes_total" && s.label("comm") == Some(comm))
        .and_then(|s| s.label("device"))
        .unwrap()
        .to_string();
    let diskstats = std::fs::read_to_string("/proc/diskstats").unwrap();
    assert!(
        diskstats
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some(&device)),
        "device {device:?} is not named as in /proc/diskstats"
    );
}

#[test]
fn turned_off_it_is_not_loaded() {
    let sonde = Sonde::start("[collect.bpf]\nblock = false\n");
    assert!(
        sonde
            .log_text()
            .contains("bpf collector block: off: disabled"),
        "{}",
        sonde.log_text()
    );
    sonde.wait_rounds(1);
    assert!(sonde
        .metrics()
        .iter()
        .all(|s| !s.name.starts_with("sonde_block_io")));
}
