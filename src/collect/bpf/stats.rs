//! The kernel's per-program run-time statistics while sonde runs: what
//! `sonde_bpf_program_run_seconds_total` and `sonde_bpf_program_runs_total`
//! read.
//!
//! The kernel counts run time while a reference count is above zero; two
//! kinds of holders add to it, and sonde uses both:
//! - a `BPF_ENABLE_STATS` descriptor, dropped by the kernel when its holder
//!   exits however it exits. This is what keeps sonde's own figures right,
//!   whatever anyone writes to the sysctl meanwhile.
//! - the sysctl `kernel.bpf_stats_enabled`, which is what people and tools
//!   (`bpftool prog`, `sysctl`) look at: sonde writes 1 to it while it runs
//!   so the machine says what it does, and restores it at exit.
//!
//! # Several sondes at once
//! Every sonde that turns the sysctl on joins a group of holders: a shared
//! `flock` on [`HOLDERS`], held for sonde's whole life (the kernel releases
//! it when the process dies). Joining and leaving are serialized by an
//! exclusive lock on [`MUTEX`]. The rule:
//! - The first holder (no other holder's lock is held) records the sysctl's
//!   value from before any sonde in [`HOLDERS`], then writes 1.
//! - The last holder to leave (its lock can be made exclusive) writes the
//!   recorded value back, if the sysctl still reads 1, and clears the record.
//!   Any other leaves it on: a sonde still running needs it.
//!
//! So a value that was 1 before the first sonde stays 1, and sondes started
//! and stopped in any order (tests run many at once) never turn the sysctl
//! off under each other.
//!
//! A sonde killed with SIGKILL cannot restore anything: the sysctl stays 1
//! and the record stays, so the next sonde to start takes the recorded value
//! (not the 1 it finds) as the one to restore when it exits. `sonde doctor`
//! shows this state. A process other than sonde that writes the sysctl while
//! sondes run is not told apart from them: the last sonde restores the value
//! from before the first one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context};
use libbpf_rs::libbpf_sys;

use super::check_refused;

/// The sysctl sonde turns on.
pub const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Where the group of sondes holding the sysctl on keeps its state.
const STATE_DIR: &str = "/run/sonde";

/// Locked exclusively while a sonde joins or leaves the group.
const MUTEX: &str = "/run/sonde/bpf-stats.lock";

/// Locked shared by every sonde holding the sysctl on; holds the value to
/// restore (`0` or `1`) while the group exists, empty otherwise.
pub const HOLDERS: &str = "/run/sonde/bpf-stats";

/// The name `SONDE_BPF_REFUSE` takes to make writing the sysctl fail.
pub const REFUSE_NAME: &str = "bpf_stats_enabled";

/// Run-time statistics turned on for as long as this lives.
/// Both holders are kept to be dropped at exit.
pub struct RunTimeStats {
    _descriptor: Option<OwnedFd>,
    sysctl: Option<SysctlHold>,
    /// What was done, for the log and `sonde doctor`; Err when the
    /// statistics could not be turned on at all.
    pub summary: Result<String, String>,
}

impl RunTimeStats {
    /// Turns the statistics on both ways it can (module docs), and logs how.
    pub fn enable() -> RunTimeStats {
        let descriptor = enable_descriptor();
        let sysctl = SysctlHold::join();
        // Without CAP_SYS_ADMIN (the packaged service) sonde can do neither,
        // but an administrator may have set the sysctl: the kernel counts then.
        let set_outside = sysctl.is_err()
            && descriptor.is_err()
            && File::open(SYSCTL)
                .ok()
                .and_then(|mut file| read_value(&mut file).ok())
                == Some(1);
        let summary = match (&sysctl, &descriptor) {
            (Ok(hold), _) => Ok(hold.joined.clone()),
            (Err(why), Ok(_)) => Ok(format!(
                "cannot turn on {SYSCTL} ({why:#}); counting through a BPF_ENABLE_STATS descriptor instead, the sysctl keeps reading 0"
            )),
            (Err(_), Err(_)) if set_outside => Ok(format!(
                "{SYSCTL} is 1, set outside sonde: the kernel counts while it stays so (sonde cannot change it without CAP_SYS_ADMIN)"
            )),
            (Err(why), Err(fd_err)) => Err(format!(
                "cannot turn on {SYSCTL} ({why:#}) nor get a BPF_ENABLE_STATS descriptor ({fd_err}); sonde_bpf_program_run_seconds_total stays 0: grant CAP_SYS_ADMIN, or set {SYSCTL} to 1 (sysctl.d)"
            )),
        };
        match &summary {
            Ok(text) if sysctl.is_ok() || set_outside => {
                tracing::info!("bpf run-time statistics: {text}")
            }
            Ok(text) | Err(text) => tracing::warn!("bpf run-time statistics: {text}"),
        }
        RunTimeStats {
            _descriptor: descriptor.ok(),
            sysctl: sysctl.ok(),
            summary,
        }
    }

    /// Whether this sonde turned the sysctl on with the others and may have
    /// to restore it at exit (which takes CAP_SYS_ADMIN then).
    pub fn restores_sysctl(&self) -> bool {
        self.sysctl.is_some()
    }
}

fn enable_descriptor() -> std::io::Result<OwnedFd> {
    // SAFETY: a plain syscall wrapper; it returns a new descriptor or -errno.
    let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// This sonde's membership in the group holding the sysctl on; leaves it
/// (restoring the sysctl if this was the last member) when dropped.
struct SysctlHold {
    holders: File,
    joined: String,
}

impl SysctlHold {
    fn join() -> anyhow::Result<SysctlHold> {
        check_refused(REFUSE_NAME)?;
        let mut sysctl = OpenOptions::new()
            .read(true)
            .write(true)
            .open(SYSCTL)
            .with_context(|| format!("opening {SYSCTL} for writing"))?;
        let current = read_value(&mut sysctl)?;
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let _mutex = lock_file(MUTEX)?;
        let mut holders = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(HOLDERS)
            .with_context(|| format!("opening {HOLDERS}"))?;
        let first = try_flock(&holders, libc::LOCK_EX | libc::LOCK_NB)?;
        let recorded = read_record(&mut holders)?;
        let restore_to = match (first, recorded) {
            // A group killed without cleaning up left its record: that is
            // the value from before sonde, not the 1 it left behind.
            (true, Some(recorded)) => recorded,
            // Recorded before the sysctl changes, so a change is never left
            // without a record of what to restore.
            (true, None) => {
                write_record(&mut holders, Some(current))?;
                current
            }
            (false, recorded) => recorded.unwrap_or(current),
        };
        if current != 1 {
            // The kernel checks CAP_SYS_ADMIN here, not at open.
            if let Err(err) = write_value(&mut sysctl, 1) {
                if first && recorded.is_none() {
                    write_record(&mut holders, None)?;
                }
                return Err(err);
            }
        }
        flock(&holders, libc::LOCK_SH)?;
        let joined = match (first, restore_to) {
            (true, 0) if current == 1 => format!(
                "{SYSCTL} kept at 1 (left on by a killed sonde); restored to 0 when sonde exits"
            ),
            (true, 0) => format!("{SYSCTL} set to 1; restored to 0 when sonde exits"),
            (true, _) => format!("{SYSCTL} was already 1 before sonde; left at 1 when sonde exits"),
            (false, _) => format!(
                "{SYSCTL} already held at 1 by another sonde; the last one to exit restores {restore_to}"
            ),
        };
        Ok(SysctlHold { holders, joined })
    }

    /// Leaves the group: the last member restores the recorded value.
    fn leave(&mut self) -> anyhow::Result<String> {
        let _mutex = lock_file(MUTEX)?;
        // Fails while another member holds its shared lock. (A failed
        // conversion drops this one's shared lock: fine, it is leaving.)
        if !try_flock(&self.holders, libc::LOCK_EX | libc::LOCK_NB)? {
            return Ok(format!("left {SYSCTL} at 1: another sonde still runs"));
        }
        let recorded = read_record(&mut self.holders)?;
        write_record(&mut self.holders, None)?;
        let mut sysctl = OpenOptions::new().read(true).write(true).open(SYSCTL)?;
        match recorded {
            Some(0) if read_value(&mut sysctl)? == 1 => {
                write_value(&mut sysctl, 0)?;
                Ok(format!("restored {SYSCTL} to 0"))
            }
            Some(0) => Ok(format!(
                "left {SYSCTL} as it is: someone else turned it off"
            )),
            _ => Ok(format!("left {SYSCTL} at 1, as it was before sonde")),
        }
    }
}

impl Drop for SysctlHold {
    fn drop(&mut self) {
        match self.leave() {
            Ok(done) => tracing::info!("bpf run-time statistics: {done}"),
            Err(err) => tracing::warn!("bpf run-time statistics: cannot restore {SYSCTL}: {err:#}"),
        }
    }
}

/// The state of the sysctl as `sonde doctor` shows it, without changing it.
pub fn describe_sysctl() -> anyhow::Result<String> {
    let value = read_value(&mut File::open(SYSCTL).with_context(|| format!("reading {SYSCTL}"))?)?;
    let Ok(mut holders) = OpenOptions::new().read(true).write(true).open(HOLDERS) else {
        return Ok(format!("{value} (no sonde holds it)"));
    };
    // A sonde joining must not see this probe's lock as another member.
    let _mutex = lock_file(MUTEX)?;
    let record = read_record(&mut holders)?;
    let held = !try_flock(&holders, libc::LOCK_SH | libc::LOCK_NB)?
        || !try_flock(&holders, libc::LOCK_EX | libc::LOCK_NB)?;
    Ok(match (held, record) {
        (true, Some(before)) => {
            format!("{value} (held on by running sondes; the last restores {before})")
        }
        (false, Some(before)) => format!(
            "{value} (left on by a sonde that was killed; the next sonde to exit restores {before})"
        ),
        (_, None) => format!("{value} (no sonde holds it)"),
    })
}

fn lock_file(path: &str) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    flock(&file, libc::LOCK_EX)?;
    Ok(file) // closing it unlocks
}

fn flock(file: &File, operation: libc::c_int) -> anyhow::Result<()> {
    if try_flock(file, operation)? {
        Ok(())
    } else {
        bail!("flock of {HOLDERS} would block")
    }
}

/// Ok(false) when a LOCK_NB request conflicts with another holder.
fn try_flock(file: &File, operation: libc::c_int) -> anyhow::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor this File owns.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err).context("flock"),
        }
    }
}

fn read_value(file: &mut File) -> anyhow::Result<u8> {
    parse_value(&read_all(file)?).with_context(|| format!("{SYSCTL} holds no 0 or 1"))
}

fn read_record(file: &mut File) -> anyhow::Result<Option<u8>> {
    Ok(parse_value(&read_all(file)?))
}

fn write_record(file: &mut File, value: Option<u8>) -> anyhow::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    if let Some(value) = value {
        writeln!(file, "{value}")?;
    }
    Ok(())
}

fn write_value(file: &mut File, value: u8) -> anyhow::Result<()> {
    file.rewind()?;
    file.write_all(format!("{value}\n").as_bytes())
        .with_context(|| format!("writing {value} to {SYSCTL}"))
}

fn read_all(file: &mut File) -> anyhow::Result<String> {
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    Ok(text)
}

fn parse_value(text: &str) -> Option<u8> {
    match text.trim() {
        "0" => Some(0),
        "1" => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_strictly() {
        assert_eq!(parse_value("0\n"), Some(0));
        assert_eq!(parse_value("1"), Some(1));
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("2\n"), None);
    }
}
