//! A full disk: writes fail, the failures are counted, reads keep answering (samples taken during the outage included),
//! and ingest resumes by itself once the disk accepts writes again, with
//! nothing taken during the outage lost. Runs on a small tmpfs mounted for
//! the test (needs root; skipped otherwise).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sonde::model::{Labels, Matcher, Sample, METRIC_NAME};
use sonde::store::{Store, StoreOptions};

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = common::TempDir::new("tmpfs");
        let path = dir.0.clone();
        std::mem::forget(dir);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(path))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a store leaked on purpose (to skip its final checkpoint)
        // may still hold files open here.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn round(t: i64) -> Vec<Sample> {
    (0..50)
        .map(|s| Sample {
            labels: Labels::new([(METRIC_NAME, "full_demo"), ("s", &s.to_string())]),
            timestamp_ms: t,
            value: (t / 1000 + s) as f64 * 1.37,
        })
        .collect()
}

/// Fills the file system with a filler file until it refuses more.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0xa5u8; 64 << 10];
    for _ in 0..10_000 {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    let _ = file.sync_all();
    filler
}

fn stored_rounds(store: &Store) -> Vec<i64> {
    let got = store
        .select(&[Matcher::equal("s", "3")], 0, i64::MAX)
        .unwrap();
    got[0].samples.iter().map(|s| s.0).collect()
}

#[test]
fn full_disk_counts_errors_and_resumes() {
    let Some(fs) = Tmpfs::mount("6m") else {
        if common::bpf_required() {
            panic!("cannot mount a tmpfs: this test needs root");
        }
        println!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let dir = fs.0.join("store");
    let options = StoreOptions::default();
    let mut store = Store::open_with(&dir, options.clone()).unwrap();
    let mut t = 1_700_000_000_000i64;
    let mut taken = Vec::new();
    for _ in 0..300 {
        store.append(&round(t)).unwrap();
        taken.push(t);
        t += 10_000;
    }

    // Disk full: appends fail and are counted; reads still answer.
    let filler = fill(&fs.0);
    let mut failed = 0;
    for _ in 0..2000 {
        if store.append(&round(t)).is_err() {
            failed += 1;
        }
        taken.push(t);
        t += 10_000;
        if failed >= 20 {
            break;
        }
    }
    assert!(failed >= 20, "appends kept succeeding on a full disk");
    assert!(store.stats().write_errors >= 20);
    assert_eq!(stored_rounds(&store), taken, "reads during the outage");

    // Space returns: the next append succeeds without any intervention.
    std::fs::remove_file(&filler).unwrap();
    store.append(&round(t)).unwrap();
    taken.push(t);
    t += 10_000;
    for _ in 0..5 {
        store.append(&round(t)).unwrap();
        taken.push(t);
        t += 10_000;
    }

    // Nothing taken during the outage was lost: all of it is on disk.
    std::mem::forget(store); // no final checkpoint: as if killed
    let store = Store::open_with(&dir, options).unwrap();
    assert_eq!(stored_rounds(&store), taken);
}
