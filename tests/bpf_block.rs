//! The block I/O collector end to end: O_DIRECT writes and reads of known
//! size by a program with a name of its own are charged to it, byte for byte
//! and request for request, and the latency histogram counts them.

mod common;
mod kernel;

use common::Sonde;
use kernel::{attached, value, wait_for, DirectFile, NamedProgram, NO_BUDGET};

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
    let file = DirectFile::new("block", BLOCK * COUNT);
    let dd = NamedProgram::new("/bin/dd", "sdd");
    let before = sonde.metrics();
    file.write_then_read(&dd, BLOCK, COUNT);

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
