//! The tracefs fallback: with tp_btf and raw_tp refused (SONDE_BPF_REFUSE),
//! the block, net, process and sched collectors attach to classic
//! tracepoints, `sonde doctor` says so (and what each then lacks), and one
//! short workload per collector still moves its metrics.

mod common;
mod kernel;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{ExposedSample, Sonde, TempDir, SONDE};
use kernel::{attached, value, wait_for, DirectFile, NamedProgram, NO_BUDGET};

const REFUSE: &str = "tp_btf,raw_tp";
const COLLECTORS: [&str; 4] = ["block", "net", "process", "sched"];

/// Runs `work` on a thread named `comm` (the kernel's comm of that thread).
fn on_named_thread<T: Send + 'static>(comm: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name(comm.to_string())
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn collectors_fall_back_to_tracefs_tracepoints_and_still_count() {
    let sonde = Sonde::start_with_env(
        TempDir::new("data"),
        NO_BUDGET,
        &[("SONDE_BPF_REFUSE", REFUSE)],
    );
    if !COLLECTORS.iter().all(|name| attached(&sonde, name)) {
        return;
    }
    let log = sonde.log_text();
    for name in COLLECTORS {
        assert!(
            log.contains(&format!("bpf collector {name}: on (tracepoint")),
            "{name} not on tracefs tracepoints:\n{log}"
        );
    }
    let before = sonde.metrics();
    let id = std::process::id() % 100_000;

    // process: spawns of a named /bin/true by a named thread.
    const SPAWNS: usize = 5;
    let program = NamedProgram::new("/bin/true", "sfbtrue");
    let spawner = format!("sfbspawn{id}");
    let path = program.path.clone();
    on_named_thread(&spawner, move || {
        for _ in 0..SPAWNS {
            assert!(Command::new(&path).status().unwrap().success());
        }
    });

    // net: a loopback transfer between two named threads.
    const BYTES: usize = 1 << 20;
    let (server, client) = (format!("sfbsrv{id}"), format!("sfbcli{id}"));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    // Bound on the server thread: an accept is charged to whoever listens.
    let receiving = std::thread::Builder::new()
        .name(server.clone())
        .spawn(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            stream.read_to_end(&mut received).unwrap();
            received.len()
        })
        .unwrap();
    let port = port_rx.recv().unwrap();
    on_named_thread(&client, move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(&vec![7u8; BYTES]).unwrap();
    });
    assert_eq!(receiving.join().unwrap(), BYTES);

    // sched: a named thread that sleeps, switching out voluntarily each time.
    const SLEEPS: usize = 30;
    let sleeper = format!("sfbsleep{id}");
    on_named_thread(&sleeper, || {
        for _ in 0..SLEEPS {
            std::thread::sleep(Duration::from_millis(1));
        }
    });

    // block: O_DIRECT writes and reads by a named dd, on the build's scratch
    // directory (a block device; /tmp may be tmpfs).
    const BLOCK: u64 = 4096;
    const COUNT: u64 = 100;
    let file = DirectFile::new("fallback", BLOCK * COUNT);
    let dd = NamedProgram::new("/bin/dd", "sfbdd");
    file.write_then_read(&dd, BLOCK, COUNT);

    let execs = [("comm", program.comm.as_str())];
    let exits = [("comm", program.comm.as_str()), ("reason", "0")];
    let forks = [("comm", spawner.as_str())];
    let sent = [
        ("comm", client.as_str()),
        ("direction", "sent"),
        ("proto", "tcp"),
    ];
    let received = [
        ("comm", server.as_str()),
        ("direction", "received"),
        ("proto", "tcp"),
    ];
    let connected = [("comm", client.as_str()), ("result", "ok")];
    let accepted = [("comm", server.as_str())];
    let switched = [("comm", sleeper.as_str()), ("kind", "voluntary")];
    let dd = |s: &[ExposedSample], name: &str, op: &str| {
        value(s, name, &[("comm", dd.comm.as_str()), ("op", op)])
    };
    // The kernel skips a classic tracepoint's program that fires while
    // another one runs on that CPU (a completion interrupt landing in a
    // syscall's program) and counts it as missed: the loss is exported, so
    // the check is that counted plus lost covers every request.
    let lost = |s: &[ExposedSample]| {
        value(
            s,
            "sonde_bpf_events_lost_total",
            &[("program", "tp_rq_complete")],
        ) - value(
            &before,
            "sonde_bpf_events_lost_total",
            &[("program", "tp_rq_complete")],
        )
    };
    let accounted = |s: &[ExposedSample], op: &str| {
        dd(s, "sonde_block_io_ops_total", op) + lost(s) >= COUNT as f64
    };
    let waits = |s: &[ExposedSample]| value(s, "sonde_runqueue_latency_seconds_count", &[]);
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_process_exits_total", &exits) >= SPAWNS as f64
            && value(s, "sonde_net_bytes_total", &received) >= BYTES as f64
            && value(s, "sonde_tcp_accepts_total", &accepted) >= 1.0
            && value(s, "sonde_context_switches_total", &switched) >= SLEEPS as f64
            && accounted(s, "read")
            && accounted(s, "write")
    });

    let got = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(got("sonde_process_execs_total", &execs), SPAWNS as f64);
    assert_eq!(got("sonde_process_exits_total", &exits), SPAWNS as f64);
    assert_eq!(got("sonde_process_forks_total", &forks), SPAWNS as f64);
    let within_1pct = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
    for (labels, what) in [(&sent, "sent"), (&received, "received")] {
        let bytes = got("sonde_net_bytes_total", labels);
        assert!(
            within_1pct(bytes, BYTES as f64),
            "{what}: {bytes} of {BYTES}"
        );
    }
    assert_eq!(got("sonde_tcp_connects_total", &connected), 1.0);
    assert_eq!(got("sonde_tcp_accepts_total", &accepted), 1.0);
    let switches = got("sonde_context_switches_total", &switched);
    assert!(
        switches >= SLEEPS as f64,
        "{switches} switches for {SLEEPS} sleeps"
    );
    assert!(
        waits(&samples) > waits(&before),
        "the run-queue histogram did not move"
    );
    // Without task pointers nothing reads threads' run time (DEGRADED).
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "sonde_process_cpu_seconds_total"),
        "CPU time per process from the tracefs fallback"
    );
    for op in ["write", "read"] {
        let ops = dd(&samples, "sonde_block_io_ops_total", op);
        let bytes = dd(&samples, "sonde_block_io_bytes_total", op);
        assert!(
            accounted(&samples, op) && ops <= COUNT as f64 * 1.01,
            "{op}: {ops} requests and {} lost completions, expected {COUNT}",
            lost(&samples)
        );
        assert_eq!(bytes, ops * BLOCK as f64, "{op}: bytes of {ops} requests");
    }
}

#[test]
fn doctor_names_the_tracepoint_fallback_and_what_it_lacks() {
    let output = Command::new(SONDE)
        .arg("doctor")
        .env("SONDE_BPF_REFUSE", REFUSE)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|line| line.starts_with(&format!("collector {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .to_string()
    };
    if !row("net").contains(" ok ") {
        assert!(!common::bpf_required(), "SONDE_REQUIRE_BPF=1 but:\n{table}");
        eprintln!("skipping: BPF unusable here:\n{table}");
        return;
    }
    assert!(row("net").ends_with("on (tracepoint)"), "{}", row("net"));
    for name in ["block", "process", "sched"] {
        let line = row(name);
        assert!(line.contains("on (tracepoint; degraded: "), "{line}");
    }
}
