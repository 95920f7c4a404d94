//! A server a test starts as a child process (nginx, a Python server):
//! stopped on drop, and waited for until it listens.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child server stopped when dropped: SIGTERM first, so nginx's master
/// stops its workers (SIGKILL would orphan them), SIGKILL after 5 s.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signals our own child, which is not reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (at most 10 s) until something accepts on `port`.
pub fn wait_listening(port: u16, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "server exited before listening"
        );
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Python 3 running `script` (written to `dir/server.py`) with `args`
/// after the port, and `env`; returns once it listens on `port`.
pub fn python(dir: &Path, script: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Server {
    python_by(Command::new("python3"), dir, script, port, args, env)
}

/// [`python`] started by `launcher`, a command line the script's path, the
/// port and `args` are added to (an interpreter under another name, or a
/// shell that moves itself into a cgroup and execs one).
pub fn python_by(
    mut launcher: Command,
    dir: &Path,
    script: &str,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let path = dir.join("server.py");
    std::fs::write(&path, script).unwrap();
    let child = launcher
        .arg(&path)
        .arg(port.to_string())
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start python3");
    let mut server = Server(child);
    wait_listening(port, &mut server);
    server
}
