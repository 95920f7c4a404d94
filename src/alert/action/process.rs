//! One run of an action's command: no shell, stdin from /dev/null, stdout
//! and stderr into one pipe of which the first [`MAX_OUTPUT`] bytes are
//! kept, and a deadline at which the whole process group is killed.
//!
//! The command runs without sonde's ambient capabilities (the packaged
//! service's CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH): an action has what
//! its user has, not what sonde was granted to observe. It runs in a
//! process group of its own, so the kill at the
//! timeout reaches what it started too (a script's `sleep`). A command that
//! exits while something it left behind still holds the pipe is not waited
//! for beyond [`OUTPUT_GRACE`]: its output is what arrived by then.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Output kept per run, for the log.
pub const MAX_OUTPUT: usize = 4096;

/// How long the output is read after the command is gone.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// How often a running command is checked on; the cost is one `waitpid`.
const POLL: Duration = Duration::from_millis(10);

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    /// `None` when the timeout killed it.
    pub status: Option<ExitStatus>,
    /// The first [`MAX_OUTPUT`] bytes of stdout and stderr, interleaved.
    pub output: String,
    pub truncated: bool,
    pub elapsed: Duration,
}

impl Finished {
    /// "exit status 3", "killed by signal 9", "killed at the 2s timeout".
    pub fn describe(&self, timeout: Duration) -> String {
        match self.status {
            None => format!(
                "killed at the {} timeout",
                humantime::format_duration(timeout)
            ),
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => status.to_string(),
            },
        }
    }
}

/// Runs `argv` to its end or to `timeout`; an error only when it cannot
/// start (no such program, not executable).
pub fn run(argv: &[String], timeout: Duration) -> std::io::Result<Finished> {
    let began = Instant::now();
    let (mut reader, writer) = std::io::pipe()?;
    let (program, arguments) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("an empty command"))?;
    let mut command = Command::new(program);
    // SAFETY: prctl is async-signal-safe and touches only the new process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0)
        .spawn()?;
    // The Command holds the pipe's write ends: drop them, so the reader
    // sees the end once the child's copies close.
    drop(command);
    let kept = Arc::new(Mutex::new((Vec::new(), false)));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let kept = kept.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut chunk) {
                let mut kept = kept.lock().expect("lock poisoned");
                let (buffer, truncated): &mut (Vec<u8>, bool) = &mut kept;
                let room = MAX_OUTPUT - buffer.len();
                buffer.extend_from_slice(&chunk[..n.min(room)]);
                *truncated |= n > room;
            }
            let _ = done_tx.send(());
        });
    }
    let deadline = began + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: signals the process group the child leads, which
            // exists until the child is reaped below.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            child.wait()?;
            break None;
        }
        std::thread::sleep(POLL);
    };
    let _ = done_rx.recv_timeout(OUTPUT_GRACE);
    let (buffer, truncated) = std::mem::take(&mut *kept.lock().expect("lock poisoned"));
    Ok(Finished {
        status,
        output: String::from_utf8_lossy(&buffer).into_owned(),
        truncated,
        elapsed: began.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn output_and_status_are_kept() {
        let finished = run(
            &argv(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(finished.describe(Duration::ZERO), "exit status 3");
        assert_eq!(finished.output, "out\nerr\n");
        assert!(!finished.truncated);
    }

    #[test]
    fn the_timeout_kills_the_group() {
        // The shell's child sleep holds the pipe: only a kill of the
        // group ends the run within the grace.
        let finished = run(
            &argv(&["/bin/sh", "-c", "sleep 30; echo never"]),
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(finished.status.is_none());
        assert!(finished.elapsed < Duration::from_secs(5), "{finished:?}");
        assert_eq!(
            finished.describe(Duration::from_millis(200)),
            "killed at the 200ms timeout"
        );
    }

    #[test]
    fn output_is_truncated() {
        let finished = run(
            &argv(&["/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(finished.output.len(), MAX_OUTPUT);
        assert!(finished.truncated);
    }

    #[test]
    fn a_missing_program_is_an_error() {
        assert!(run(&argv(&["/nonexistent/program"]), Duration::from_secs(1)).is_err());
    }
}
