//! The data directory's file system turning read-only under a running
//! sonde: writes fail and are counted, the failure is logged once (not once
//! per round), `/api/v1/query` and the dashboard keep answering (samples
//! taken during the outage included), and once the file system is back
//! ingest resumes without a restart, with no sample lost.
//!
//! Linux refuses `mount -o remount,ro` while a process holds a file open for
//! writing (sonde always does), so a file system goes read-only under a
//! running process only by the kernel's own emergency remount after an error
//! (ext4's `errors=remount-ro`). That is what the test does: ext4 in a loop
//! device, an error triggered through `/sys/fs/ext4/DEV/trigger_fs_error`.
//! Such a file system stays read-only until it is checked and mounted again,
//! so the repair is the one an administrator would make: unmount, `e2fsck`,
//! mount again at the same place. sonde must then reopen its database there
//! by itself. Needs root, loop devices and ext4 (skipped otherwise, unless
//! `SONDE_REQUIRE_BPF=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Sonde, TempDir};

const NO_BPF: &str =
    "[collect.bpf]\nsyscalls = false\nblock = false\nnet = false\nprocess = false\nsched = false\nhttp = false\n";

/// An ext4 image on loop devices mounted at `mount_point`; on drop (even
/// after a failed assertion) unmounted and its loop devices detached.
struct Ext4 {
    image: PathBuf,
    mount_point: PathBuf,
    loops: Vec<String>,
}

impl Ext4 {
    fn mount(image: PathBuf, mount_point: &Path) -> Result<Ext4, String> {
        run("truncate", &["-s", "64M", path(&image)])?;
        run("mkfs.ext4", &["-q", "-F", path(&image)])?;
        std::fs::create_dir_all(mount_point).map_err(|e| e.to_string())?;
        let mut fs = Ext4 {
            image,
            mount_point: mount_point.to_path_buf(),
            loops: Vec::new(),
        };
        fs.attach_and_mount()?;
        Ok(fs)
    }

    /// Attaches the image to a new loop device and mounts that: a device
    /// still held by the lazily unmounted old file system cannot be reused.
    fn attach_and_mount(&mut self) -> Result<(), String> {
        let dev = run("losetup", &["--find", "--show", path(&self.image)])?;
        self.loops.push(dev.clone());
        run(
            "mount",
            &["-o", "errors=remount-ro", &dev, path(&self.mount_point)],
        )?;
        Ok(())
    }

    fn device_name(&self) -> String {
        let dev = self.loops.last().expect("mounted");
        dev.trim_start_matches("/dev/").to_string()
    }

    /// Makes the kernel remount the file system read-only, as after an
    /// on-disk error.
    fn fail(&self) -> Result<(), String> {
        // What the file system holds so far reaches the image first; an
        // error discards what it had not written.
        run("sync", &["-f", path(&self.mount_point)])?;
        let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", self.device_name());
        std::fs::write(&trigger, "sonde read-only test").map_err(|e| format!("{trigger}: {e}"))
    }

    /// The administrator's repair, first step: unmount (lazily: sonde
    /// still holds the old files). Until [`Ext4::check_and_mount`], the
    /// path names the bare mount point, a writable directory without the
    /// database.
    fn unmount(&self) -> Result<(), String> {
        run("umount", &["-l", path(&self.mount_point)]).map(drop)
    }

    /// The repair's second step: check, mount again at the same place.
    fn check_and_mount(&mut self) -> Result<(), String> {
        // e2fsck exits 1 when it fixed something, which is expected here.
        let status = Command::new("e2fsck")
            .args(["-f", "-y", path(&self.image)])
            .output()
            .map_err(|e| e.to_string())?;
        if status.status.code().is_none_or(|c| c > 1) {
            return Err(format!(
                "e2fsck: {}",
                String::from_utf8_lossy(&status.stdout)
            ));
        }
        self.attach_and_mount()
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
        for dev in &self.loops {
            // Detaches now, or as soon as the last user lets go.
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_dir(&self.mount_point);
    }
}

fn data_file_exists(fs: &Ext4) -> bool {
    fs.mount_point.join("sonde.db").exists()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn counter(sonde: &Sonde, name: &str) -> f64 {
    sonde
        .metrics()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .value
}

/// The timestamps (ms) of the stored samples of a series sonde writes every
/// round, from `/api/v1/query` with a range selector.
fn stored_rounds(sonde: &Sonde) -> Vec<i64> {
    let body = sonde.get_ok("/api/v1/query?query=node_load1%5B1h%5D");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = answer["data"]["result"].as_array().expect("a matrix");
    assert_eq!(result.len(), 1, "{body}");
    result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pair[0].as_f64().unwrap() * 1000.0).round() as i64)
        .collect()
}

/// Waits (bounded) until `done` holds, checking every half second.
fn wait_for(what: &str, sonde: &Sonde, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\nlog:\n{}",
            sonde.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn read_only_file_system_counts_errors_keeps_serving_and_resumes() {
    let data = TempDir::new("read-only");
    let image = std::env::temp_dir().join(format!("sonde-ro-{}.img", std::process::id()));
    let mut fs = match Ext4::mount(image, &data.0.join("store")) {
        Ok(fs) => fs,
        Err(why) => {
            if common::bpf_required() {
                panic!("cannot set up an ext4 loop mount (needs root): {why}");
            }
            println!("skipped: cannot set up an ext4 loop mount (needs root): {why}");
            return;
        }
    };
    let sonde = Sonde::start_in(data, NO_BPF);
    wait_for("three stored rounds", &sonde, || {
        stored_rounds(&sonde).len() >= 3
    });

    // The file system fails: writes fail and are counted, reads still answer.
    if let Err(why) = fs.fail() {
        if common::bpf_required() {
            panic!("cannot make the file system fail: {why}");
        }
        println!("skipped: cannot make the file system fail: {why}");
        return;
    }
    let before = stored_rounds(&sonde);
    wait_for("three write errors", &sonde, || {
        counter(&sonde, "sonde_store_write_errors_total") >= 3.0
    });
    let during = stored_rounds(&sonde);
    assert!(
        during.len() >= before.len() + 2 && during.starts_with(&before),
        "samples taken during the outage are readable: {before:?} then {during:?}"
    );
    assert!(sonde.get_ok("/").contains("<svg"), "the dashboard draws");
    let logged = sonde.log_text().matches("store: cannot write").count();
    assert_eq!(
        logged,
        1,
        "logged once, not per round:\n{}",
        sonde.log_text()
    );
    assert!(
        sonde.log_text().matches("cannot store").count() <= 1,
        "the collection loop repeats no store error per round:\n{}",
        sonde.log_text()
    );

    // The file system comes back: ingest resumes without a restart. The
    // check takes rounds (as a real one may): sonde must not make a new
    // database in the bare mount point meanwhile, which the mount would
    // then hide with every write made to it.
    fs.unmount().expect("unmount the failed file system");
    sonde.wait_rounds(3);
    assert!(
        !data_file_exists(&fs),
        "no database made in the bare mount point:\n{}",
        sonde.log_text()
    );
    fs.check_and_mount()
        .expect("check and mount the file system");
    // A write that failed just before the repair (the rules write between
    // rounds too) may still be counted in the next round's metrics.
    sonde.wait_rounds(2);
    let errors = counter(&sonde, "sonde_store_write_errors_total");
    sonde.wait_rounds(3);
    assert_eq!(
        counter(&sonde, "sonde_store_write_errors_total"),
        errors,
        "writes succeed again:\n{}",
        sonde.log_text()
    );
    let after = stored_rounds(&sonde);
    assert!(after.starts_with(&during), "{during:?} then {after:?}");
    let log = sonde.log_text();
    assert_eq!(log.matches("succeed again").count(), 1, "{log}");
    assert_eq!(log.matches("store: cannot write").count(), 1, "{log}");

    // Nothing taken before, during or after the outage was lost: it is all
    // in the file on the repaired file system, as a restart after SIGKILL
    // finds it.
    let mut sonde = sonde;
    let data = std::mem::replace(&mut sonde.data, TempDir(PathBuf::new()));
    drop(sonde); // SIGKILL
    let sonde = Sonde::start_in(data, NO_BPF);
    let restarted = stored_rounds(&sonde);
    assert!(
        restarted.starts_with(&after),
        "{after:?} after the restart: {restarted:?}"
    );
}
