//! The network collector end to end: a TCP transfer of known size over
//! loopback between two processes with names of their own is charged to each
//! of them byte for byte, with exactly one connect and one accept; a connect
//! to a closed port counts as failed.

mod common;
mod kernel;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};

use common::{free_port, Sonde};
use kernel::{attached, value, wait_for, NO_BUDGET};

const BYTES: usize = 8 << 20;
const PEER_ENV: &str = "SONDE_NET_PEER";

/// Names the calling thread (the kernel's comm of the task doing the I/O).
fn set_comm(name: &str) {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Not a test of its own: the server or client process of the transfer,
/// run by re-executing this test binary with SONDE_NET_PEER set to
/// `server:<comm>` or `client:<comm>:<port>:<closed port>`.
#[test]
fn peer() {
    let Ok(role) = std::env::var(PEER_ENV) else {
        return;
    };
    let parts: Vec<&str> = role.split(':').collect();
    set_comm(parts[1]);
    if parts[0] == "server" {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        println!("PORT={}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = 0;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match stream.read(&mut buf).unwrap() {
                0 => break,
                n => received += n,
            }
        }
        assert_eq!(received, BYTES);
    } else {
        assert!(TcpStream::connect(("127.0.0.1", parts[3].parse::<u16>().unwrap())).is_err());
        let mut stream =
            TcpStream::connect(("127.0.0.1", parts[2].parse::<u16>().unwrap())).unwrap();
        let chunk = vec![7u8; 64 << 10];
        for _ in 0..BYTES / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
        stream.shutdown(Shutdown::Write).unwrap();
        let _ = stream.read(&mut [0u8; 1]);
    }
}

fn peer_command(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "peer", "--nocapture", "--test-threads=1"])
        .env(PEER_ENV, role)
        .stdout(Stdio::piped());
    command
}

#[test]
fn charges_a_loopback_transfer_to_both_ends() {
    let sonde = Sonde::start(NO_BUDGET);
    if !attached(&sonde, "net") {
        return;
    }
    let id = std::process::id() % 100_000;
    let (server_comm, client_comm) = (format!("snetsrv{id}"), format!("snetcli{id}"));
    let mut server = peer_command(&format!("server:{server_comm}"))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        // libtest prints "test peer ... " before the test's own output.
        if let Some((_, port)) = line.split_once("PORT=") {
            break port.trim().to_string();
        }
    };
    let closed = free_port();
    let client = peer_command(&format!("client:{client_comm}:{port}:{closed}"))
        .status()
        .unwrap();
    assert!(client.success());
    assert!(server.wait().unwrap().success());

    let sent = [
        ("comm", client_comm.as_str()),
        ("direction", "sent"),
        ("proto", "tcp"),
    ];
    let received = [
        ("comm", server_comm.as_str()),
        ("direction", "received"),
        ("proto", "tcp"),
    ];
    let samples = wait_for(&sonde, |s| {
        value(s, "sonde_net_bytes_total", &sent) >= BYTES as f64
            && value(s, "sonde_net_bytes_total", &received) >= BYTES as f64
            && value(s, "sonde_tcp_accepts_total", &[("comm", &server_comm)]) >= 1.0
    });
    for (labels, what) in [(&sent, "sent"), (&received, "received")] {
        let bytes = value(&samples, "sonde_net_bytes_total", labels);
        assert!(
            (bytes - BYTES as f64).abs() <= BYTES as f64 * 0.01,
            "{what}: {bytes} bytes, expected {BYTES}"
        );
    }
    let connects = |result: &str| {
        value(
            &samples,
            "sonde_tcp_connects_total",
            &[("comm", &client_comm), ("result", result)],
        )
    };
    assert_eq!(connects("ok"), 1.0);
    assert_eq!(connects("failed"), 1.0);
    assert_eq!(
        value(
            &samples,
            "sonde_tcp_accepts_total",
            &[("comm", &server_comm)]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "sonde_tcp_connects_total",
            &[("comm", &server_comm)]
        ),
        0.0
    );
    // Both ends closed: nothing of theirs is established any more.
    for comm in [&client_comm, &server_comm] {
        assert_eq!(
            value(&samples, "sonde_tcp_established", &[("comm", comm)]),
            0.0
        );
    }
    assert!(value(&samples, "sonde_tcp_connect_duration_seconds_count", &[]) >= 1.0);
    assert!(value(&samples, "sonde_tcp_connection_duration_seconds_count", &[]) >= 1.0);
    // The refused connect: the kernel's reset reached the client's socket.
    let reset = value(
        &samples,
        "sonde_tcp_resets_total",
        &[("comm", &client_comm), ("direction", "received")],
    );
    assert_eq!(reset, 1.0);
}
