//! The packages as people install them. `make package` builds the .deb and
//! the .rpm; the .deb is installed on this machine with dpkg (the sonde user,
//! files and modes, conffiles, an upgrade that keeps a changed config, a
//! purge), the .rpm into a scratch root; lintian, rpmlint and systemd-analyze
//! check them; and the packaged sonde runs as the sonde user with exactly the
//! unit's capabilities, then without CAP_BPF.
//!
//! Nothing here needs systemd as this machine's PID 1: on the test machines it
//! is not, so there the maintainer scripts start nothing and the tests start
//! sonde themselves, on a free loopback port with a data directory of their
//! own. The unit itself runs under this machine's systemd booted in a
//! container (podman) on an overlay of this machine's root. The package is
//! purged at the end, also when a check fails. The tests need root, dpkg,
//! rpm, lintian, rpmlint, systemd-analyze, setpriv and the cargo packaging
//! tools (`make test` installs them): without them they skip, unless
//! SONDE_REQUIRE_BPF=1 (CI), where they fail.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::podman::{Container, Podman};
use common::{bpf_required, get, Sonde, TempDir, SONDE};

/// The tests build packages from one target directory and install one
/// package on one machine: one at a time.
static MACHINE: Mutex<()> = Mutex::new(());

/// Files of the .deb that the .rpm has no place for: Debian's copyright,
/// changelog (the .rpm holds it as [`RPM_CHANGELOG`]) and lintian overrides.
const DEB_ONLY: [&str; 3] = [
    "/usr/share/doc/sonde/changelog.Debian.gz",
    "/usr/share/doc/sonde/copyright",
    "/usr/share/lintian/overrides/sonde",
];

/// The .rpm's record of changes: the Debian changelog as a document.
const RPM_CHANGELOG: &str = "/usr/share/doc/sonde/changelog";

/// What the unit file grants, as setpriv names capabilities.
fn unit_capabilities(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("AmbientCapabilities="))
        .expect("the unit has no AmbientCapabilities= line");
    line.split_whitespace()
        .map(|cap| cap.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect()
}

/// Whether these tests can run here; when not, says why (or fails under CI).
fn can_run() -> bool {
    let tools = [
        "dpkg",
        "rpm",
        "lintian",
        "rpmlint",
        "systemd-analyze",
        "setpriv",
        "cargo-deb",
        "cargo-generate-rpm",
        "make",
    ];
    let mut missing: Vec<&str> = tools
        .into_iter()
        .filter(|tool| !run_ok("sh", &["-c", &format!("command -v {tool}")]).0)
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (dpkg -i)");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        !bpf_required(),
        "SONDE_REQUIRE_BPF=1 but packaging tests lack: {}",
        missing.join(", ")
    );
    eprintln!("skipping: missing {}", missing.join(", "));
    false
}

/// Runs a command; (success, stdout + stderr).
fn run_ok(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs a command that must succeed; its output.
fn run(program: &str, args: &[&str]) -> String {
    let (ok, text) = run_ok(program, args);
    assert!(ok, "`{program} {}` failed:\n{text}", args.join(" "));
    text
}

/// The packages `make package` builds with `revision`, in `dir`.
struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

/// The packages of `revision` (1 or 2), built once for all tests under
/// TARGET_DIR/packaging-test/REVISION.
fn packages(revision: u32) -> &'static Packages {
    static BUILT: [OnceLock<Packages>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[revision as usize - 1].get_or_init(|| {
        let dir = target_dir().join(format!("packaging-test/{revision}"));
        let _ = std::fs::remove_dir_all(&dir);
        build_packages(&dir, revision)
    })
}

/// The target directory: the Makefile's binary is the one cargo built for
/// these tests.
fn target_dir() -> &'static Path {
    Path::new(SONDE)
        .ancestors()
        .nth(3)
        .expect("the sonde binary is in TARGET_DIR/TRIPLE/release")
}

fn build_packages(dir: &Path, revision: u32) -> Packages {
    let mut make = Command::new("make");
    // Cargo gives this test sonde's OUT_DIR, CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME and such; build scripts (ring's) rerun when those
    // change, so `make`'s cargo would rebuild dependencies, and the next
    // `cargo test` again.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CARGO_") || key_text == "OUT_DIR" {
            make.env_remove(key);
        }
    }
    let status = make
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "package"])
        .arg(format!("PACKAGE_DIR={}", dir.display()))
        .arg(format!("REVISION={revision}"))
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .status()
        .expect("cannot run make");
    assert!(status.success(), "make package failed");
    let find = |suffix: &str| {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("make package wrote no *{suffix} in {}", dir.display()))
    };
    Packages {
        deb: find(&format!("-{revision}_amd64.deb")),
        rpm: find(&format!("-{revision}.x86_64.rpm")),
    }
}

/// The .deb installed on this machine; purged when dropped, whatever
/// happened meanwhile.
struct Installed;

impl Installed {
    fn install(deb: &Path) -> Installed {
        assert!(
            !run_ok("dpkg", &["-s", "sonde"]).0,
            "the sonde package is already installed here: these tests install and purge their own"
        );
        let installed = Installed;
        run("dpkg", &["-i", &deb.to_string_lossy()]);
        installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let (ok, text) = run_ok("dpkg", &["-P", "sonde"]);
        if !ok {
            eprintln!("dpkg -P sonde failed:\n{text}");
        }
    }
}

/// Mode and owner of a path, as `stat` prints them: "644 root:root".
fn mode(path: &str) -> String {
    run("stat", &["-c", "%a %U:%G", path]).trim().to_string()
}

/// Regular files a package installs, from `dpkg-deb -c` or `rpm -qlp`.
fn deb_files(deb: &Path) -> BTreeSet<String> {
    run("dpkg-deb", &["-c", &deb.to_string_lossy()])
        .lines()
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| line.split_whitespace().last())
        .map(|path| path.trim_start_matches('.').to_string())
        .collect()
}

/// Processes running a given executable.
fn running(exe: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path().join("exe")).ok()?;
            (target == Path::new(exe)).then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn packages_pass_lintian_and_rpmlint_and_hold_the_same_files() {
    if !can_run() {
        return;
    }
    // `make package` writes the man page beside the binary: one at a time.
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let packages = packages(1);

    let lintian = run_ok(
        "lintian",
        &[
            "--fail-on",
            "error,warning",
            &packages.deb.to_string_lossy(),
        ],
    );
    assert!(lintian.0, "lintian:\n{}", lintian.1);
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/rpm/sonde.rpmlintrc");
    let rpmlint = run_ok("rpmlint", &["-r", rules, &packages.rpm.to_string_lossy()]);
    assert!(
        rpmlint.0 && rpmlint.1.contains(" 0 errors, 0 warnings"),
        "rpmlint:\n{}",
        rpmlint.1
    );

    // The .rpm's scripts are the .deb's (one set, packaging/scripts).
    let rpm = packages.rpm.to_string_lossy();
    let listed = run("rpm", &["-qp", "--scripts", "-l", &rpm]);
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(format!(
            "{}/packaging/scripts/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(
            listed.contains(text.trim()),
            "rpm lacks {script}:\n{listed}"
        );
    }
    let rpm_listed: BTreeSet<String> = listed
        .lines()
        .filter(|line| line.starts_with('/'))
        .map(str::to_string)
        .collect();

    let root = TempDir::new("rpm-root");
    let root_arg = root.0.to_string_lossy().into_owned();
    run("rpm", &["--root", &root_arg, "--initdb"]);
    // Without scripts: they would run in the scratch root, which has no shell.
    run(
        "rpm",
        &["-i", "--nodeps", "--noscripts", "--root", &root_arg, &rpm],
    );
    let installed: BTreeSet<String> = run(
        "find",
        &[
            &format!("{root_arg}/etc"),
            &format!("{root_arg}/usr"),
            "-type",
            "f",
        ],
    )
    .lines()
    .map(|path| path.trim_start_matches(&root_arg).to_string())
    .collect();
    assert_eq!(installed, rpm_listed, "rpm -i --root vs rpm -qlp");

    let mut deb = deb_files(&packages.deb);
    for only in DEB_ONLY {
        assert!(deb.remove(only), "the .deb lacks {only}");
    }
    deb.insert(RPM_CHANGELOG.to_string());
    assert_eq!(deb, rpm_listed, ".deb vs .rpm");
    for path in [
        "/usr/bin/sonde",
        "/etc/sonde/sonde.toml",
        "/etc/sonde/rules/sonde.yml",
        "/usr/lib/systemd/system/sonde.service",
        "/usr/lib/sysusers.d/sonde.conf",
        "/usr/share/sonde/grafana/sonde-ebpf.json",
        "/usr/share/man/man1/sonde.1.gz",
    ] {
        assert!(deb.contains(path), "the packages lack {path}: {deb:?}");
    }
}

#[test]
fn deb_installs_runs_least_privileged_upgrades_and_purges() {
    if !can_run() {
        return;
    }
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let (first, second) = (packages(1), packages(2));

    let installed = Installed::install(&first.deb);
    let user = run("getent", &["passwd", "sonde"]);
    assert!(
        user.trim_end()
            .ends_with(":/var/lib/sonde:/usr/sbin/nologin"),
        "{user}"
    );
    for (path, expected) in [
        ("/usr/bin/sonde", "755 root:root"),
        ("/etc/sonde/sonde.toml", "644 root:root"),
        ("/etc/sonde/rules/sonde.yml", "644 root:root"),
        ("/etc/sonde/programs", "755 root:root"),
        ("/usr/lib/systemd/system/sonde.service", "644 root:root"),
        ("/usr/lib/sysusers.d/sonde.conf", "644 root:root"),
        ("/usr/share/sonde/grafana/sonde-ebpf.json", "644 root:root"),
        ("/usr/share/man/man1/sonde.1.gz", "644 root:root"),
        ("/usr/share/doc/sonde/changelog.Debian.gz", "644 root:root"),
        ("/var/lib/sonde", "750 sonde:sonde"),
    ] {
        assert_eq!(mode(path), expected, "{path}");
    }
    let conffiles = run(
        "dpkg-query",
        &["--showformat=${Conffiles}", "--show", "sonde"],
    );
    for file in ["/etc/sonde/sonde.toml", "/etc/sonde/rules/sonde.yml"] {
        assert!(
            conffiles.contains(&format!(" {file} ")),
            "{file} is no conffile:\n{conffiles}"
        );
    }
    assert!(
        running("/usr/bin/sonde").is_empty(),
        "the package started sonde where PID 1 is not systemd"
    );

    let unit_path = "/usr/lib/systemd/system/sonde.service";
    run("systemd-analyze", &["verify", unit_path]);
    let security = run(
        "systemd-analyze",
        &["security", "--offline=true", "--threshold=25", unit_path],
    );
    let score: f64 = security
        .lines()
        .find_map(|line| line.split("sonde.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    assert!(score <= 2.5, "exposure level {score}:\n{security}");

    let unit = std::fs::read_to_string(unit_path).unwrap();
    runs_with_the_units_capabilities(&unit_capabilities(&unit));
    runs_without_cap_bpf();

    let config = "/etc/sonde/sonde.toml";
    let mut changed = std::fs::read_to_string(config).unwrap();
    changed.push_str("# changed by tests/packaging.rs\n");
    std::fs::write(config, &changed).unwrap();
    run("dpkg", &["-i", &second.deb.to_string_lossy()]);
    let version = run(
        "dpkg-query",
        &["--showformat=${Version}", "--show", "sonde"],
    );
    assert!(version.ends_with("-2"), "upgraded to {version}");
    assert_eq!(
        std::fs::read_to_string(config).unwrap(),
        changed,
        "the upgrade lost the change to {config}"
    );

    drop(installed); // dpkg -P
    assert!(!run_ok("dpkg", &["-s", "sonde"]).0, "still installed");
    for gone in [
        "/usr/bin/sonde",
        "/etc/sonde",
        "/usr/lib/systemd/system/sonde.service",
        "/usr/lib/sysusers.d/sonde.conf",
        "/usr/share/sonde",
        "/usr/share/doc/sonde",
        "/var/lib/sonde",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} survived the purge");
    }
    // Debian policy keeps system users: files they own elsewhere must not
    // fall to a later user given the same id.
    assert!(run_ok("getent", &["passwd", "sonde"]).0);
}

/// The installed rule pack, which the sonde user can read (the checkout's
/// may be closed to it).
const PACKAGED_RULES: &str =
    "[alerting]\nrule_files = [\"/etc/sonde/rules/*.yml\"]\nevaluation_interval = \"1s\"\n";

/// The packages under a real systemd: this machine's own, booted as PID 1
/// of a container on an overlay of this machine's root. The .deb's scripts
/// create the user and enable and start the unit; under the unit's sandbox
/// every collector succeeds and sonde ends with the capabilities it keeps;
/// an upgrade restarts it with the changed config kept; a purge stops and
/// disables it. Then the .rpm's scripts (the same ones) do the same.
#[test]
fn packages_start_and_stop_the_unit_under_systemd() {
    if !can_run() {
        return;
    }
    let Some(podman) = Podman::configured() else {
        return;
    };
    let _machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let (first, second) = (packages(1), packages(2));
    let dir = first.deb.parent().unwrap().parent().unwrap();
    let systemd = Container::boot_systemd(
        &podman,
        "sonde-systemd",
        &format!("{}:/pkg:ro", dir.display()),
    );
    let sh = |script: &str| {
        let (ok, text) = systemd.exec(&["sh", "-c", script]);
        assert!(ok, "`{script}` failed under systemd:\n{text}");
        text
    };
    let in_pkg = |package: &Path| {
        let relative = package.strip_prefix(dir).unwrap();
        format!("/pkg/{}", relative.display())
    };
    // The user comes from the package, not from an earlier test here.
    sh("userdel sonde 2>/dev/null; groupdel sonde 2>/dev/null; true");

    sh(&format!("dpkg -i {}", in_pkg(&first.deb)));
    let pid = serving_under_systemd(&systemd);
    let status = sh(&format!("cat /proc/{pid}/status"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
    };
    let sonde_uid = sh("id -u sonde");
    assert_eq!(
        field("Uid:"),
        sonde_uid.trim(),
        "sonde runs as the sonde user"
    );
    // CAP_DAC_READ_SEARCH (bit 2) kept; CAP_BPF and CAP_PERFMON dropped
    // from the effective set once the programs were attached, still bounded.
    assert_eq!(field("CapEff:"), format!("{:016x}", 1u64 << 2));
    assert_eq!(
        field("CapBnd:"),
        format!("{:016x}", 1u64 << 2 | 1 << 38 | 1 << 39)
    );
    let metrics = sh("curl -sf http://127.0.0.1:9977/metrics");
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("sonde_collector_success{") && line.ends_with(" 0"))
        .collect();
    assert!(
        failed.is_empty(),
        "collectors failing under the unit: {failed:?}\n{}",
        sh("journalctl -u sonde --no-pager | tail -40")
    );

    let config = "/etc/sonde/sonde.toml";
    sh(&format!("echo '# changed under systemd' >> {config}"));
    sh(&format!("dpkg -i {}", in_pkg(&second.deb)));
    let upgraded = serving_under_systemd(&systemd);
    assert_ne!(upgraded, pid, "the upgrade did not restart sonde");
    assert!(sh(&format!("cat {config}")).ends_with("# changed under systemd\n"));

    sh("dpkg -P sonde");
    assert_stopped_under_systemd(&systemd);

    sh(&format!("rpm -i --nodeps {}", in_pkg(&first.rpm)));
    serving_under_systemd(&systemd);
    sh("rpm -e sonde");
    assert_stopped_under_systemd(&systemd);
}

/// Waits (at most 60 s) for the unit to be active and sonde to answer on
/// its default port; sonde's PID.
fn serving_under_systemd(systemd: &Container) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, pid) = systemd.exec(&["systemctl", "show", "-p", "MainPID", "--value", "sonde"]);
        let pid = pid.trim().to_string();
        let ready = systemd
            .exec(&["curl", "-sf", "http://127.0.0.1:9977/-/ready"])
            .0;
        if ready && pid != "0" && !pid.is_empty() {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "sonde.service not serving in 60 s:\n{}",
            systemd
                .exec(&["systemctl", "status", "--no-pager", "sonde"])
                .1
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_stopped_under_systemd(systemd: &Container) {
    let (active, state) = systemd.exec(&["systemctl", "is-active", "sonde"]);
    assert!(!active, "sonde.service still {state}");
    let (enabled, state) = systemd.exec(&["systemctl", "is-enabled", "sonde"]);
    assert!(!enabled, "sonde.service still {state}");
}

/// A data directory the sonde user may write.
fn sonde_data() -> TempDir {
    let data = TempDir::new("sonde-user");
    run("chown", &["sonde:sonde", &data.0.to_string_lossy()]);
    data
}

/// `setpriv` running the packaged sonde as the sonde user with `caps` only
/// (inheritable, ambient and bounding sets, as systemd sets them).
fn as_sonde_with(caps: &[String]) -> Command {
    let set = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|cap| format!("+{cap}")))
        .collect::<Vec<_>>()
        .join(",");
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=sonde",
        "--regid=sonde",
        "--init-groups",
        &format!("--inh-caps={set}"),
        &format!("--ambient-caps={set}"),
        &format!("--bounding-set={set}"),
        "/usr/bin/sonde",
    ]);
    command
}

/// `sonde doctor`'s table.
fn doctor(mut command: Command) -> String {
    let output = command.arg("doctor").stdin(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The collector rows of a doctor table: name → the row.
fn doctor_collectors(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("collector ")?;
            let name = rest.split_whitespace().next()?;
            Some((name.to_string(), line.to_string()))
        })
        .collect()
}

/// Every BPF collector that loads as root loads as the sonde user with the
/// unit's capabilities, and sonde gives CAP_BPF and CAP_PERFMON up once they
/// are attached.
fn runs_with_the_units_capabilities(caps: &[String]) {
    let mut root = Command::new("/usr/bin/sonde");
    root.env("SONDE_LOG", "error");
    let loaded_as_root: Vec<String> = doctor_collectors(&doctor(root))
        .into_iter()
        .filter(|(_, row)| row.contains(" ok ") && row.contains(" on ("))
        .map(|(name, _)| name)
        .collect();
    if loaded_as_root.is_empty() {
        assert!(
            !bpf_required(),
            "SONDE_REQUIRE_BPF=1 but no BPF collector loads as root"
        );
        eprintln!("skipping the capability checks: no BPF collector loads here, even as root");
        return;
    }

    let table = doctor(as_sonde_with(caps));
    let after_start = table
        .lines()
        .find(|line| line.starts_with("capabilities after start "))
        .unwrap_or_else(|| panic!("no capabilities after start row:\n{table}"));
    assert!(
        after_start.contains("keeps CAP_DAC_READ_SEARCH; drops CAP_PERFMON, CAP_BPF"),
        "{after_start}"
    );

    let sonde = Sonde::start_command(sonde_data(), PACKAGED_RULES, as_sonde_with(caps));
    sonde.wait_rounds(2);
    let metrics = sonde.metrics();
    for name in &loaded_as_root {
        let success = metrics.iter().find(|sample| {
            sample.name == "sonde_collector_success" && sample.label("collector") == Some(name)
        });
        assert_eq!(
            success.map(|sample| sample.value),
            Some(1.0),
            "collector {name} loads as root but not with {caps:?}:\n{}",
            sonde.log_text()
        );
    }
    assert!(
        sonde
            .log_text()
            .contains("capabilities: dropped CAP_PERFMON, CAP_BPF"),
        "{}",
        sonde.log_text()
    );
    let pid = sonde.child.id();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let effective = status
            .lines()
            .find_map(|line| line.strip_prefix("CapEff:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap());
        // CAP_DAC_READ_SEARCH (bit 2) alone.
        assert_eq!(effective, Some(1 << 2), "a thread of sonde:\n{status}");
    }
}

/// Without CAP_BPF, sonde serves node metrics, queries and the dashboard,
/// and `sonde doctor` says what each BPF collector lacks.
fn runs_without_cap_bpf() {
    let caps = ["perfmon".to_string(), "dac_read_search".to_string()];
    let sonde = Sonde::start_command(sonde_data(), PACKAGED_RULES, as_sonde_with(&caps));
    sonde.wait_rounds(2);
    assert!(
        sonde
            .metrics()
            .iter()
            .any(|sample| sample.name == "node_cpu_seconds_total"),
        "no node metrics without CAP_BPF"
    );
    let query = sonde.get_ok("/api/v1/query?query=node_load1");
    assert!(query.contains("\"status\":\"success\""), "{query}");
    assert!(query.contains("node_load1"), "{query}");
    let (status, _) = get(&format!("{}/", sonde.base_url)).unwrap();
    assert_eq!(status, 200, "the dashboard");
    assert!(
        sonde.log_text().contains("sonde lacks CAP_BPF"),
        "{}",
        sonde.log_text()
    );

    for (name, row) in doctor_collectors(&doctor(as_sonde_with(&caps))) {
        assert!(
            row.contains("sonde lacks CAP_BPF (to load BPF programs"),
            "collector {name}: {row}"
        );
    }
}
