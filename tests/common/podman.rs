//! Podman as tests and benchmarks use it: Debian's podman with a
//! configuration of the test's own (this machine needs runc, cgroupfs and
//! lower ulimits), an image imported from a directory (no registry here)
//! holding busybox-static with every applet and the caller's scripts, and
//! containers removed on drop.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{bpf_required, TempDir};

/// The image every container runs.
pub const IMAGE: &str = "localhost/sonde-test-busybox:latest";

/// Podman with this test's own configuration (this machine needs runc,
/// cgroupfs and lower ulimits).
pub struct Podman {
    conf: std::path::PathBuf,
    /// Also podman's working directory: conmon writes its `oom` marker
    /// there when a container is OOM-killed, not in the repository.
    dir: TempDir,
}

impl Podman {
    /// Imports [`IMAGE`] holding `scripts` (name under /bin, text); None
    /// (the caller skips) when podman is not installed and not required.
    pub fn new(scripts: &[(&str, &str)]) -> Option<Podman> {
        let podman = Podman::configured()?;
        podman.build_image(scripts);
        Some(podman)
    }

    /// Podman and its configuration, no image; None as for [`Podman::new`].
    pub fn configured() -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            assert!(!bpf_required(), "podman is missing: run `make test-deps`");
            eprintln!("skipping: podman is not installed");
            return None;
        }
        let dir = TempDir::new("podman");
        let conf = dir.0.join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .unwrap();
        Some(Podman { conf, dir })
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .current_dir(&self.dir.0)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The image: busybox-static with every applet linked, and the scripts.
    fn build_image(&self, scripts: &[(&str, &str)]) {
        let root = TempDir::new("image");
        for dir in ["bin", "tmp", "data"] {
            std::fs::create_dir_all(root.0.join(dir)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.0.join("bin/busybox"))
            .expect("busybox-static is missing");
        let applets = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.0.join("bin").join(applet)).unwrap();
            }
        }
        for (name, text) in scripts {
            write_script(&root.0.join("bin").join(name), text);
        }
        let tar = Command::new("tar")
            .args(["-C", root.0.to_str().unwrap(), "-cf", "-", "."])
            .output()
            .unwrap();
        let mut import = Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .args(["import", "-q", "-", IMAGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        assert!(import.wait().unwrap().success(), "podman import failed");
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A container removed (with force) on drop.
pub struct Container<'a> {
    podman: &'a Podman,
    pub name: String,
    pub id: String,
}

impl<'a> Container<'a> {
    /// Runs `command` in [`IMAGE`], with `extra` options.
    pub fn start(
        podman: &'a Podman,
        name: &str,
        extra: &[&str],
        command: &[&str],
    ) -> Container<'a> {
        let mut args = vec!["--tmpfs", "/data:rw,size=256m"];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        Container::run(podman, name, &args)
    }

    /// Boots this machine's own systemd as the container's PID 1, on an
    /// overlay of this machine's root (changes stay in the container), with
    /// `volume` (`HOST:CONTAINER[:ro]`) mounted.
    pub fn boot_systemd(podman: &'a Podman, name: &str, volume: &str) -> Container<'a> {
        let container = Container::run(
            podman,
            name,
            &[
                "--privileged",
                "--systemd=always",
                // Fresh, not copies of this machine's /tmp and /run.
                "--tmpfs",
                "/tmp:rw,notmpcopyup",
                "--tmpfs",
                "/run:rw,notmpcopyup",
                "-v",
                volume,
                "--rootfs",
                "/:O",
                "/lib/systemd/systemd",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = container.exec(&["systemctl", "is-system-running"]);
            if matches!(state.1.trim(), "running" | "degraded") {
                return container;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: systemd not up in 60 s: {}",
                state.1
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn run(podman: &'a Podman, name: &str, args: &[&str]) -> Container<'a> {
        let _ = Command::new("podman")
            .env("CONTAINERS_CONF", &podman.conf)
            .args(["rm", "-f", "-t", "0", name])
            .output();
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        let id = podman.run(&all);
        Container {
            podman,
            name: name.to_string(),
            id,
        }
    }

    /// Runs `command` inside the container: (success, stdout + stderr).
    pub fn exec(&self, command: &[&str]) -> (bool, String) {
        let out = Command::new("podman")
            .env("CONTAINERS_CONF", &self.podman.conf)
            .args(["exec", &self.name])
            .args(command)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A file of the container's, read through its first process's root
    /// (an exec would run inside the container and add to its CPU).
    pub fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{}/root{path}", self.pid())).ok()
    }

    /// Waits (at most 60 s) for the workload to finish.
    pub fn wait_done(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.read("/tmp/done").is_none() {
            assert!(
                Instant::now() < deadline,
                "{}: workload not done in 60 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn pid(&self) -> u32 {
        self.podman
            .run(&["inspect", "-f", "{{.State.Pid}}", &self.name])
            .parse()
            .unwrap()
    }

    /// The cgroup path cAdvisor's `id` label shows.
    pub fn cgroup(&self) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("no cgroup v2 line")
            .to_string()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .env("CONTAINERS_CONF", &self.podman.conf)
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}
