//! The XOR codec against a real Prometheus: promtool (Prometheus 2.42) writes
//! a TSDB block from OpenMetrics text, and every chunk in the block's chunk
//! files must decode with sonde's decoder to a run of the samples given, and
//! re-encode with sonde's encoder to the very same bytes.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use sonde::store::xor;

/// Samples of every shape the codec distinguishes: regular and jittered
/// timestamps, gaps reaching every delta-of-delta bucket, counters, noisy
/// gauges, constants, integers and negative values.
fn series() -> Vec<(String, Vec<(i64, f64)>)> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    let start = 1_700_000_000_000i64;
    let mut all = Vec::new();
    for kind in 0..8 {
        for instance in 0..3 {
            let mut t = start + instance * 7;
            let mut v = (next() % 1000) as f64;
            let mut samples = Vec::new();
            for i in 0..400 {
                samples.push((t, v));
                t += match (kind, i % 97) {
                    (6, 50) => 3_600_000, // 64-bit delta-of-delta
                    (6, 10) => 400_000,   // 20 bits
                    (6, 20) => 50_000,    // 17 bits
                    (_, _) if kind >= 4 => 10_000 + (next() % 7) as i64 - 3,
                    _ => 10_000,
                };
                v = match kind {
                    0 => v,
                    1 => v + 1.0,
                    2 => v + (next() % 10_000) as f64 / 997.0,
                    3 => (next() % 100_000) as f64 * 0.001,
                    4 => -v + 0.5,
                    5 => v + (next() % 3) as f64,
                    6 => f64::from_bits(next() >> 2),
                    _ => (v * 1.01).floor(),
                };
            }
            all.push((format!("codec_{kind}{{instance=\"{instance}\"}}"), samples));
        }
    }
    all
}

#[test]
fn prometheus_chunks_decode_and_reencode_byte_for_byte() {
    let dir = common::TempDir::new("codec");
    let input = dir.0.join("input.om");
    let mut text = String::new();
    let all = series();
    for (i, (name, samples)) in all.iter().enumerate() {
        if i % 3 == 0 {
            text.push_str(&format!(
                "# TYPE {} gauge\n",
                &name[..name.find('{').unwrap()]
            ));
        }
        for &(t, v) in samples {
            text.push_str(&format!("{name} {v:?} {}.{:03}\n", t / 1000, t % 1000));
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    let out = dir.0.join("blocks");
    let status = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&out)
        .output()
        .expect("promtool not found: install the Debian package prometheus (make test-deps)");
    assert!(
        status.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );

    // Every sample run a series may produce, keyed by its first sample.
    let mut by_first: HashMap<(i64, u64), &[(i64, f64)]> = HashMap::new();
    for (_, samples) in &all {
        for i in 0..samples.len() {
            by_first.insert((samples[i].0, samples[i].1.to_bits()), &samples[i..]);
        }
    }
    let mut chunks = Vec::new();
    for block in std::fs::read_dir(&out).unwrap() {
        let chunk_dir = block.unwrap().path().join("chunks");
        for file in std::fs::read_dir(chunk_dir).unwrap() {
            read_chunk_file(&file.unwrap().path(), &mut chunks);
        }
    }
    let mut decoded_samples = 0;
    for data in &chunks {
        let samples = xor::decode(data).expect("sonde cannot decode a Prometheus chunk");
        assert!(!samples.is_empty());
        let run = by_first
            .get(&(samples[0].0, samples[0].1.to_bits()))
            .expect("a chunk starting with a sample never given");
        for (got, want) in samples.iter().zip(run.iter()) {
            assert_eq!((got.0, got.1.to_bits()), (want.0, want.1.to_bits()));
        }
        assert_eq!(&xor::encode(&samples), data, "re-encoding differs");
        decoded_samples += samples.len();
    }
    let given: usize = all.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(decoded_samples, given, "{} chunks", chunks.len());
}

/// A block's chunk segment: magic 0x85BD40DD, version, 3 bytes padding, then
/// chunks, each `uvarint length | encoding byte | data | CRC32`.
fn read_chunk_file(path: &Path, chunks: &mut Vec<Vec<u8>>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes[..4], [0x85, 0xBD, 0x40, 0xDD], "{}", path.display());
    let mut pos = 8;
    while pos < bytes.len() {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = bytes[pos];
            pos += 1;
            len |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let encoding = bytes[pos];
        pos += 1;
        assert_eq!(encoding, 1, "only XOR chunks were written");
        chunks.push(bytes[pos..pos + len].to_vec());
        pos += len + 4;
    }
}
