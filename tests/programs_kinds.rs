//! Custom programs of every kind tests/programs.rs does not cover, loaded
//! together in one sonde: the linear, fixed and exp2zero bucket types, a
//! program per decoder family (errno and syscall, ksym and kstack, cgroup
//! and majorminor, inet_ip, ifname and static_map with allow_unknown,
//! pci_*, hex and dname), an `xdp/lo` section and a `usdt/...` section on
//! a target built here with <sys/sdt.h>. Each workload has a known effect;
//! the counts and labels must come out exact in /metrics and in
//! /api/v1/query, and the dashboard's Programs view must list them with a
//! chart each. The XDP program must leave lo when its config is removed
//! and when sonde stops.

mod common;
mod kernel;
#[path = "programs/support.rs"]
mod support;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bpf_required, ExposedSample, Sonde, TempDir};
use support::{compile, loaded, query, run_child, value, wait_for, CHILDREN, ONLY_PROGRAMS};

/// The configs compiled as they are; `usdt` needs its target's path.
/// `mixed` (programs this kernel refuses beside one it takes) is there for
/// the Programs view's reasons.
const CONFIGS: [&str; 7] = [
    "buckets", "errors", "symbols", "origin", "pci", "xdp", "mixed",
];

/// Write sizes and how many writes of each the child makes: 10 writes,
/// 614 bytes.
const WRITES: [(usize, u64); 6] = [(0, 1), (1, 3), (3, 2), (5, 1), (50, 2), (500, 1)];
const MISSING_OPENS: u64 = 4;
const BAD_CLOSES: u64 = 2;
const NULL_READS: u64 = 3;
const GETPPIDS: u64 = 5;
/// PCI ids (vendor, device, class as in the config space) sent through
/// getuid()'s registers, and how often.
const PCI_IDS: [(u64, u64, u64, u64); 2] = [
    (0x1af4, 0x1000, 0x02_00_00, 2),
    (0x8086, 0x1237, 0x06_00_00, 1),
];
/// The port the XDP program counts (tests/programs/xdp.bpf.c).
const XDP_PORT: u16 = 997;
const UDP4_PACKETS: u64 = 5;
const UDP6_PACKETS: u64 = 3;
const TCP_SYNS: u64 = 2;
const USDT_TICKS: u64 = 10;

/// Builds tests/programs/usdt_target.c into `dir`; None (after saying why)
/// when the C compiler or <sys/sdt.h> is missing, unless BPF is required.
fn build_usdt_target(dir: &Path) -> Option<std::path::PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/usdt_target.c");
    // Not a `sonde-pt-` name: its loader's failed opens are no test's.
    let target = dir.join("sonde-usdt-target");
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&target)
        .arg(&source)
        .output();
    match out {
        Ok(out) if out.status.success() => Some(target),
        other => {
            let why = format!(
                "cannot build {} (systemtap-sdt-dev?): {other:?}",
                source.display()
            );
            assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but {why}");
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// The USDT target and usdt.bpf.o (whose section names the target's path)
/// in `dir`; the target's path, or None after saying why.
fn compile_usdt(dir: &Path) -> Option<std::path::PathBuf> {
    let target = build_usdt_target(dir)?;
    let flags = [
        format!("-DUSDT_TARGET=\"{}\"", target.display()),
        // usdt.bpf.h includes <linux/errno.h>, which wants <asm/errno.h>.
        "-I/usr/include/x86_64-linux-gnu".to_string(),
    ];
    compile(dir, &["usdt"], &flags)?;
    Some(target)
}

/// What `ip link show lo` says of XDP programs on it ("" when none).
fn xdp_on_loopback() -> String {
    let out = Command::new("ip")
        .args(["-d", "link", "show", "lo"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("xdp"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The workloads of every program but XDP and USDT, in one child.
fn run_syscalls() {
    let null = std::ffi::CString::new("/dev/null").unwrap();
    let missing = std::ffi::CString::new("/nonexistent/sonde-pt").unwrap();
    run_child("sonde-pt-kinds", || {
        // SAFETY: raw syscalls on the child's own descriptors and buffers.
        unsafe {
            let write_fd = libc::open(null.as_ptr(), libc::O_WRONLY);
            let bytes = [b'x'; 500];
            for (size, times) in WRITES {
                for _ in 0..times {
                    libc::write(write_fd, bytes.as_ptr().cast(), size);
                }
            }
            for _ in 0..MISSING_OPENS {
                libc::open(missing.as_ptr(), libc::O_RDONLY);
            }
            for _ in 0..BAD_CLOSES {
                libc::close(-1);
            }
            let read_fd = libc::open(null.as_ptr(), libc::O_RDONLY);
            let mut buffer = [0u8; 1];
            for _ in 0..NULL_READS {
                libc::read(read_fd, buffer.as_mut_ptr().cast(), 1);
            }
            for _ in 0..GETPPIDS {
                libc::getppid();
            }
            for (vendor, device, class, times) in PCI_IDS {
                for _ in 0..times {
                    libc::syscall(libc::SYS_getuid, vendor, device, class);
                }
            }
        }
    });
}

/// UDP to the XDP port over IPv4 and IPv6 (a socket receives them, so no
/// ICMP answers), and TCP connections to it that nothing accepts: one SYN
/// each reaches the port, the RST goes back to the client's.
fn send_packets() {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, XDP_PORT));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, XDP_PORT));
    let receivers = [UdpSocket::bind(v4).unwrap(), UdpSocket::bind(v6).unwrap()];
    for (to, times) in [(v4, UDP4_PACKETS), (v6, UDP6_PACKETS)] {
        let sender = UdpSocket::bind(SocketAddr::new(to.ip(), 0)).unwrap();
        for _ in 0..times {
            sender.send_to(b"sonde", to).unwrap();
        }
    }
    for _ in 0..TCP_SYNS {
        let refused = TcpStream::connect_timeout(&v4, Duration::from_secs(5));
        assert!(refused.is_err(), "nothing listens on TCP {XDP_PORT}");
    }
    drop(receivers);
}

#[test]
fn every_bucket_type_decoder_family_and_attach_kind_counts_exactly() {
    let _alone = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("programs-kinds");
    let Some(target) = compile_usdt(&dir.0) else {
        return;
    };
    if compile(&dir.0, &CONFIGS, &[]).is_none() {
        return;
    }
    let sonde = Sonde::start(&format!(
        "{ONLY_PROGRAMS}[programs]\ndir = \"{}\"\n",
        dir.0.display()
    ));
    if !CONFIGS
        .iter()
        .chain(&["usdt"])
        .all(|name| loaded(&sonde, name))
    {
        return;
    }
    assert!(
        xdp_on_loopback().contains("xdp"),
        "the XDP program is on lo"
    );

    run_syscalls();
    send_packets();
    let usdt = Command::new(&target)
        .arg(USDT_TICKS.to_string())
        .status()
        .unwrap();
    assert!(usdt.success());

    let count = |s: &[ExposedSample], name: &str| value(s, name, &[]);
    let samples = wait_for(&sonde, |s| {
        count(s, "ebpf_exporter_write_bytes_fixed_count") == Some(10.0)
            && count(s, "ebpf_exporter_syscall_errors_total")
                == Some((MISSING_OPENS + BAD_CLOSES) as f64)
            && count(s, "ebpf_exporter_getppid_origin_total") == Some(GETPPIDS as f64)
            && count(s, "ebpf_exporter_getppid_stacks_total") == Some(GETPPIDS as f64)
            && count(s, "ebpf_exporter_read_functions_total") == Some(NULL_READS as f64)
            && count(s, "ebpf_exporter_pci_ids_total") == Some(3.0)
            && count(s, "ebpf_exporter_loopback_packets_total")
                == Some((UDP4_PACKETS + UDP6_PACKETS + TCP_SYNS) as f64)
            && count(s, "ebpf_exporter_usdt_ticks_total") == Some(USDT_TICKS as f64)
    });
    let log = sonde.log_text();
    check_buckets(&sonde, &samples);
    check_kernel_names(&samples, &log);
    check_pci(&samples);
    check_xdp(&samples, &log);
    check_usdt(&samples, &log);
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "ebpf_exporter_decoder_errors_total"),
        "no decoder failed\n{log}"
    );

    check_programs_view(&sonde);

    // Removing the XDP config takes its program off lo.
    std::fs::remove_file(dir.0.join("xdp.yaml")).unwrap();
    common::unsafe_kill(sonde.child.id(), "HUP");
    let enabled = |s: &[ExposedSample]| {
        value(s, "ebpf_exporter_enabled_configs", &[("name", "xdp")]).is_some()
    };
    let after = wait_for(&sonde, |s| !enabled(s));
    assert!(!enabled(&after), "{}", sonde.log_text());
    assert_eq!(xdp_on_loopback(), "", "removed from lo on reload");
    // Back again, then sonde stops: off lo again.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/xdp.yaml"),
        dir.0.join("xdp.yaml"),
    )
    .unwrap();
    common::unsafe_kill(sonde.child.id(), "HUP");
    let back = wait_for(&sonde, enabled);
    assert!(enabled(&back), "{}", sonde.log_text());
    assert!(xdp_on_loopback().contains("xdp"));
    sonde.stop();
    assert_eq!(xdp_on_loopback(), "", "removed from lo when sonde stops");
}

/// As the packaged unit runs it (a user with CAP_BPF, CAP_PERFMON and
/// CAP_DAC_READ_SEARCH): the USDT probe attaches and counts exactly (libbpf
/// attaches it as a uprobe.multi link, which CAP_SYS_ADMIN is not needed
/// for), and the XDP program, which the kernel loads only with
/// CAP_NET_ADMIN, is left out with a reason that says so.
#[test]
fn as_the_packaged_unit_usdt_counts_and_xdp_says_what_it_lacks() {
    use std::os::unix::fs::PermissionsExt;
    let _alone = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("programs-unprivileged");
    let Some(target) = compile_usdt(&dir.0) else {
        return;
    };
    if compile(&dir.0, &["xdp"], &[]).is_none() {
        return;
    }
    let data = TempDir::new("data-unprivileged");
    for path in [&dir.0, &data.0] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let setpriv = common::unprivileged_sonde("-all,+bpf,+perfmon,+dac_read_search");
    let sonde = Sonde::start_command(
        data,
        &format!("{ONLY_PROGRAMS}[programs]\ndir = \"{}\"\n", dir.0.display()),
        setpriv,
    );
    if !loaded(&sonde, "usdt") {
        return;
    }
    let log = sonde.log_text();
    let xdp = log
        .lines()
        .find(|l| l.contains("programs config xdp: off"))
        .unwrap_or_else(|| panic!("the XDP config is refused:\n{log}"));
    assert!(
        xdp.contains("count_loopback off: refused at load")
            && xdp.contains("XDP programs load only with CAP_NET_ADMIN"),
        "{xdp}"
    );
    assert_eq!(xdp_on_loopback(), "");

    let usdt = Command::new(&target)
        .arg(USDT_TICKS.to_string())
        .status()
        .unwrap();
    assert!(usdt.success());
    let ticks = |s: &[ExposedSample]| value(s, "ebpf_exporter_usdt_ticks_total", &[]);
    let samples = wait_for(&sonde, |s| ticks(s) == Some(USDT_TICKS as f64));
    assert_eq!(
        ticks(&samples),
        Some(USDT_TICKS as f64),
        "{}",
        sonde.log_text()
    );
}

/// Cumulative buckets, `_sum` and `_count` of the three bucket types, in
/// /metrics and through PromQL.
fn check_buckets(sonde: &Sonde, samples: &[ExposedSample]) {
    let buckets = |name: &str| -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|s| s.name == format!("ebpf_exporter_{name}_bucket"))
            .map(|s| (s.label("le").unwrap().to_string(), s.value))
            .collect()
    };
    let expect = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
        pairs.iter().map(|(le, n)| (le.to_string(), *n)).collect()
    };
    // linear, multiplier 10: key size/10 (at most 5) is the bucket up to
    // 10 * key; the sum is kept in tens: 2 * 5 + 50 tens.
    assert_eq!(
        buckets("write_tens_linear"),
        expect(&[
            ("0", 7.0),
            ("10", 7.0),
            ("20", 7.0),
            ("30", 7.0),
            ("40", 7.0),
            ("50", 10.0),
            ("+Inf", 10.0)
        ])
    );
    assert_eq!(
        value(samples, "ebpf_exporter_write_tens_linear_sum", &[]),
        Some(600.0)
    );
    assert_eq!(
        value(samples, "ebpf_exporter_write_tens_linear_count", &[]),
        Some(10.0)
    );
    // fixed 10, 100, 1000: the sum in bytes at key 1001.
    assert_eq!(
        buckets("write_bytes_fixed"),
        expect(&[("10", 7.0), ("100", 9.0), ("1000", 10.0), ("+Inf", 10.0)])
    );
    assert_eq!(
        value(samples, "ebpf_exporter_write_bytes_fixed_sum", &[]),
        Some(614.0)
    );
    // exp2zero: key 0 the empty write, key k sizes up to 2^(k-1).
    assert_eq!(
        buckets("write_bytes_exp2zero"),
        expect(&[
            ("0", 1.0),
            ("1", 4.0),
            ("2", 4.0),
            ("4", 6.0),
            ("8", 7.0),
            ("16", 7.0),
            ("32", 7.0),
            ("64", 9.0),
            ("128", 9.0),
            ("256", 9.0),
            ("512", 10.0),
            ("1024", 10.0),
            ("+Inf", 10.0),
        ])
    );
    assert_eq!(
        value(samples, "ebpf_exporter_write_bytes_exp2zero_sum", &[]),
        Some(614.0)
    );
    assert_eq!(
        value(samples, "ebpf_exporter_write_bytes_exp2zero_count", &[]),
        Some(10.0)
    );

    sonde.wait_rounds(1);
    assert_eq!(
        query(sonde, "ebpf_exporter_write_tens_linear_bucket{le=\"40\"}"),
        7.0
    );
    assert_eq!(
        query(sonde, "ebpf_exporter_write_bytes_fixed_bucket{le=\"100\"}"),
        9.0
    );
    assert_eq!(
        query(sonde, "ebpf_exporter_write_bytes_exp2zero_bucket{le=\"0\"}"),
        1.0
    );
    assert_eq!(
        query(sonde, "ebpf_exporter_write_bytes_exp2zero_sum"),
        614.0
    );
    assert_eq!(query(sonde, "ebpf_exporter_write_tens_linear_count"), 10.0);
    assert_eq!(
        query(
            sonde,
            "histogram_quantile(0.5, ebpf_exporter_write_bytes_fixed_bucket)"
        ),
        10.0 * 5.0 / 7.0,
        "the median write is the 5th of 7 in the first bucket, interpolated"
    );
}

/// errno and syscall; ksym and kstack; cgroup and majorminor.
fn check_kernel_names(samples: &[ExposedSample], log: &str) {
    let errors = |syscall, errno| {
        value(
            samples,
            "ebpf_exporter_syscall_errors_total",
            &[("syscall", syscall), ("errno", errno)],
        )
    };
    assert_eq!(
        errors("openat", "ENOENT"),
        Some(MISSING_OPENS as f64),
        "{log}"
    );
    assert_eq!(errors("close", "EBADF"), Some(BAD_CLOSES as f64));

    assert_eq!(
        value(
            samples,
            "ebpf_exporter_read_functions_total",
            &[("function", "read_iter_null")]
        ),
        Some(NULL_READS as f64),
        "/dev/null's read_iter"
    );
    let stacks: Vec<&ExposedSample> = samples
        .iter()
        .filter(|s| s.name == "ebpf_exporter_getppid_stacks_total")
        .collect();
    for stack in &stacks {
        let frames: Vec<&str> = stack.label("stack").unwrap().lines().collect();
        assert!(
            frames.contains(&"do_syscall_64") && !frames.contains(&"??"),
            "a syscall's kernel stack, every frame named: {frames:?}"
        );
    }

    // The child's cgroup v2 path and the disk holding its executable (the
    // test binary), or unknown:M:m when that is no partition (overlayfs).
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .expect("a cgroup v2 line in /proc/self/cgroup");
    let root = kernel::cgroup_v2_root().expect("a cgroup v2 mount");
    let cgroup = root
        .join(cgroup.trim_start_matches('/'))
        .display()
        .to_string();
    let dev = std::fs::metadata(std::env::current_exe().unwrap())
        .unwrap()
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let partitions = std::fs::read_to_string("/proc/partitions").unwrap();
    let device = partitions
        .lines()
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [ma, mi, _, name] if ma == major.to_string() && mi == minor.to_string() => {
                Some(name.to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| format!("unknown:{major}:{minor}"));
    assert_eq!(
        value(
            samples,
            "ebpf_exporter_getppid_origin_total",
            &[
                ("cgroup", cgroup.trim_end_matches('/')),
                ("device", &device)
            ]
        ),
        Some(GETPPIDS as f64),
        "{:?}",
        samples
            .iter()
            .filter(|s| s.name == "ebpf_exporter_getppid_origin_total")
            .collect::<Vec<_>>()
    );
}

/// pci.ids names of the ids sent (Debian's pci.ids package).
fn check_pci(samples: &[ExposedSample]) {
    let pci = |labels: &[(&str, &str)]| value(samples, "ebpf_exporter_pci_ids_total", labels);
    assert_eq!(
        pci(&[
            ("vendor", "Red Hat, Inc."),
            ("device", "Virtio network device"),
            ("class", "Network controller"),
            ("subclass", "Ethernet controller"),
        ]),
        Some(2.0),
        "{:?}",
        samples
            .iter()
            .filter(|s| s.name == "ebpf_exporter_pci_ids_total")
            .collect::<Vec<_>>()
    );
    assert_eq!(
        pci(&[
            ("vendor", "Intel Corporation"),
            ("device", "440FX - 82441FX PMC [Natoma]"),
            ("class", "Bridge"),
            ("subclass", "Host bridge"),
        ]),
        Some(1.0)
    );
}

/// Packets on lo by family, protocol (UDP left as its number: the static
/// map names only TCP and allows unknown), interface and destination.
fn check_xdp(samples: &[ExposedSample], log: &str) {
    let packets = |ip, protocol, destination| {
        value(
            samples,
            "ebpf_exporter_loopback_packets_total",
            &[
                ("ip", ip),
                ("protocol", protocol),
                ("interface", "lo"),
                ("destination", destination),
            ],
        )
    };
    assert_eq!(
        packets("ipv4", "17", "127.0.0.1"),
        Some(UDP4_PACKETS as f64),
        "{log}"
    );
    assert_eq!(packets("ipv6", "17", "::1"), Some(UDP6_PACKETS as f64));
    assert_eq!(packets("ipv4", "tcp", "127.0.0.1"), Some(TCP_SYNS as f64));
}

/// Ticks of the USDT probe by slot, hex tag and DNS name.
fn check_usdt(samples: &[ExposedSample], log: &str) {
    for (slot, ticks) in [("0", 4.0), ("1", 3.0), ("2", 3.0)] {
        assert_eq!(
            value(
                samples,
                "ebpf_exporter_usdt_ticks_total",
                &[("slot", slot), ("tag", "dead0001"), ("name", "sonde.test")]
            ),
            Some(ticks),
            "{:?}\n{log}",
            samples
                .iter()
                .filter(|s| s.name == "ebpf_exporter_usdt_ticks_total")
                .collect::<Vec<_>>()
        );
    }
}

/// The Programs view: every config with its programs (a refused one with
/// its reason), a rate chart per counter and a heatmap per histogram, drawn
/// from what the store holds.
fn check_programs_view(sonde: &Sonde) {
    // A series' first sample is its start, not growth (as for Prometheus):
    // the same workload again, on series the store already holds, is.
    run_syscalls();
    let done =
        |s: &[ExposedSample]| value(s, "ebpf_exporter_write_bytes_fixed_count", &[]) == Some(20.0);
    assert!(done(&wait_for(sonde, done)));
    sonde.wait_rounds(1);
    let html = sonde.get_ok("/programs?range=5m");
    let section = |id: &str| -> &str {
        let start = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id} in the Programs view:\n{html}"));
        let end = html[start..]
            .find("</section>")
            .map_or(html.len(), |e| start + e);
        &html[start..end]
    };
    for name in CONFIGS.iter().chain(&["usdt"]) {
        let config = section(&format!("config-{name}"));
        assert!(config.contains("</th><td>yes</td>"), "{config}");
    }
    let mixed = section("config-mixed");
    assert!(mixed.contains("count_getpid</th><td>yes"), "{mixed}");
    assert!(
        mixed.contains("kprobe_getpid</th><td>no: cannot attach (kprobe/__x64_sys_getpid)"),
        "{mixed}"
    );
    assert!(
        mixed.contains("fentry_getpid</th><td>no: refused at load"),
        "{mixed}"
    );
    // Each heatmap up to its top bucket, bounds as plain numbers.
    for (heatmap, top) in [
        ("ebpf_exporter_write_tens_linear", "≤50<"),
        ("ebpf_exporter_write_bytes_fixed", "≤1000<"),
        ("ebpf_exporter_write_bytes_exp2zero", "≤512<"),
    ] {
        let card = section(heatmap);
        assert!(card.contains("<svg") && card.contains(top), "{card}");
    }
    for counter in [
        "ebpf_exporter_syscall_errors_total",
        "ebpf_exporter_loopback_packets_total",
        "ebpf_exporter_usdt_ticks_total",
    ] {
        let card = section(counter);
        assert!(card.contains("<svg"), "{card}");
        assert!(card.contains("rate(ebpf_exporter_"), "{card}");
    }
    let bad = common::get(&format!("{}/programs?range=forever", sonde.base_url)).unwrap();
    assert_eq!(bad.0, 400, "{}", bad.1);
}
