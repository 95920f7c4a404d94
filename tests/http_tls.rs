//! HTTPS and outgoing calls end to end: nginx with TLS (a self-signed
//! certificate made at test time), a Python `ssl` ThreadingHTTPServer
//! started after sonde with a libssl of its own, and a plain one, called by
//! a Python http.client client that makes a known number of requests per
//! method, status and route over keep-alive and fresh connections. sonde's
//! /metrics must count each label set exactly on both sides
//! (`http_server_*` through the OpenSSL probes, `http_client_*` for the
//! client, plain and TLS), and time a sleeping route within 10 %. Go's
//! crypto/tls on both ends: Debian's prometheus, started after sonde,
//! serving HTTPS (HTTP/1.1 and HTTP/2) and then scraping the Python TLS
//! server.

mod common;
mod http_servers;
mod kernel;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, ExposedSample, Sonde, TempDir};
use http_servers::{
    curl_http2, nginx, prometheus_tls, python, python_client, python_with_env, Capture, Cert, Step,
    CONFIG, PAGE_BYTES, SLEEP,
};
use kernel::{value, wait_for, NamedProgram, NO_BUDGET};

const SERVER_COUNT: &str = "http_server_request_duration_seconds_count";
const CLIENT_COUNT: &str = "http_client_request_duration_seconds_count";

/// The host's libssl, which the Python server gets a copy of.
const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

fn labels<'a>(method: &'a str, status: &'a str, route: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("http_request_method", method),
        ("http_response_status_code", status),
        ("http_route", route),
    ]
}

/// `count` requests of one kind over one keep-alive connection, or a fresh
/// connection each.
fn step<'a>(
    https: bool,
    port: u16,
    keep_alive: bool,
    request: (&'a str, &'a str, usize),
    times: usize,
    status: u16,
) -> Step<'a> {
    let (method, path, body) = request;
    Step {
        https,
        port,
        keep_alive,
        method,
        path,
        body,
        times,
        status,
    }
}

/// The route of [`wait_until_seen`]'s requests.
const WARMUP: &str = "/warmup";

/// Makes TLS requests to a server sonde may not see yet (its libssl
/// not probed) until one is counted; fails after 10 s. How many are
/// counted varies (those sent before the round that shows the first), so
/// waits leave them out ([`requests_served`]).
fn wait_until_seen(sonde: &Sonde, dir: &Path, service: &str, port: u16) {
    let warm = format!("warm{}", std::process::id());
    let seen = [("service_name", service), ("http_route", WARMUP)];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = step(true, port, false, ("GET", WARMUP, 0), 1, 404);
        python_client(dir, &warm, &[probe]);
        std::thread::sleep(Duration::from_millis(300));
        if value(&sonde.metrics(), SERVER_COUNT, &seen) >= 1.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a TLS server started after sonde (its own libssl) was not counted within 10 s:\n{}",
            sonde.log_text()
        );
    }
}

#[test]
fn counts_tls_servers_and_the_calls_of_a_client() {
    counts_tls_servers_and_calls(Capture::Sockets);
}

#[test]
fn counts_the_same_through_the_syscall_capture() {
    counts_tls_servers_and_calls(Capture::SyscallExits);
}

fn counts_tls_servers_and_calls(capture: Capture) {
    // Late attachment on: the Python TLS server's libssl comes after sonde.
    let config = format!("{NO_BUDGET}{CONFIG}http_tls_late_attach = true\n");
    let Some(sonde) = capture.start(&config) else {
        return;
    };
    let pid = std::process::id();
    let dir = TempDir::new("http-tls");
    let cert = Cert::new(&dir.0);
    let program = NamedProgram::new("/usr/sbin/nginx", &format!("sngxtls{}", capture.tag()));
    let (nginx_port, tls_port, plain_port) = (free_port(), free_port(), free_port());
    let nginx_server = nginx(
        &dir.0.join("nginx"),
        &program,
        nginx_port,
        Some(&cert),
        false,
    );

    // Started after sonde with a copy of libssl (another inode, as a
    // container's own would be): only the pickup of the file as the
    // process maps it can see it.
    let own_lib = dir.0.join("lib");
    std::fs::create_dir_all(&own_lib).unwrap();
    std::fs::copy(LIBSSL, own_lib.join("libssl.so.3")).unwrap();
    let tls_service = format!("spytls{pid}{}", capture.tag());
    std::fs::create_dir_all(dir.0.join("tls")).unwrap();
    let tls_server = python_with_env(
        &dir.0.join("tls"),
        &tls_service,
        tls_port,
        Some(&cert),
        &[("LD_LIBRARY_PATH", &own_lib)],
    );
    let plain_service = format!("spyplain{pid}{}", capture.tag());
    std::fs::create_dir_all(dir.0.join("plain")).unwrap();
    let plain_server = python(&dir.0.join("plain"), &plain_service, plain_port, None);
    wait_until_seen(&sonde, &dir.0, &tls_service, tls_port);

    let client = format!("cli{pid}{}", capture.tag());
    let page = ("GET", "/page.html", 0);
    let (ngx, tls, plain) = (
        |keep, request, times, status| step(true, nginx_port, keep, request, times, status),
        |keep, request, times, status| step(true, tls_port, keep, request, times, status),
        |keep, request, times, status| step(false, plain_port, keep, request, times, status),
    );
    python_client(
        &dir.0,
        &client,
        &[
            ngx(true, page, 5, 200),
            ngx(true, ("GET", "/missing?x=1", 0), 4, 404),
            ngx(false, page, 3, 200),
            ngx(false, ("GET", "/fail", 0), 2, 500),
            ngx(true, ("POST", "/page.html", 100), 2, 405),
            tls(true, ("GET", "/users/123", 0), 3, 200),
            tls(true, ("GET", "/users/456", 0), 2, 200),
            tls(true, ("POST", "/echo", 300), 2, 200),
            tls(false, ("GET", "/sleep", 0), 4, 200),
            plain(true, ("GET", "/users/7", 0), 3, 200),
            plain(false, ("GET", "/nothing", 0), 2, 404),
            plain(true, ("GET", "/sleep", 0), 2, 200),
        ],
    );

    let nginx_service = program.comm.as_str();
    let samples = wait_for(&sonde, |s| {
        value(s, CLIENT_COUNT, &[("service_name", &client)]) >= 34.0
            && value(s, SERVER_COUNT, &[("service_name", nginx_service)]) >= 16.0
            && requests_served(s, &tls_service) >= 11.0
    });
    go_on_both_ends(&sonde, &dir.0, &cert, capture, (&tls_service, tls_port));
    drop((nginx_server, tls_server, plain_server));

    server_side(&samples, nginx_service, &tls_service);
    client_side(&samples, &client, [nginx_port, tls_port, plain_port]);
}

/// Go's crypto/tls: prometheus (stripped, Go 1.19) started after sonde, so
/// its probes come from its exec; a known number of HTTPS requests to it
/// counted exactly; then, once those are (its probes attached), a scrape
/// job added by /-/reload scrapes the Python TLS server `python` every
/// second: prometheus's calls as a Go client, counted as many times as
/// the Python server (through OpenSSL) counts them served, with their peer.
fn go_on_both_ends(sonde: &Sonde, dir: &Path, cert: &Cert, capture: Capture, python: (&str, u16)) {
    let (python_service, python_port) = python;
    let service = format!("gotls{}{}", std::process::id(), capture.tag());
    let (port, prometheus_dir) = (free_port(), dir.join("prometheus"));
    let prometheus = prometheus_tls(&prometheus_dir, &service, port, cert);
    wait_until_seen(sonde, dir, &service, port);
    let go = |keep, request, times, status| step(true, port, keep, request, times, status);
    let client = format!("cligo{}{}", std::process::id(), capture.tag());
    python_client(
        dir,
        &client,
        &[
            go(true, ("GET", "/-/healthy", 0), 3, 200),
            go(false, ("GET", "/nothing", 0), 2, 404),
        ],
    );
    // HTTP/2, which Go's server speaks to clients that offer it (ALPN).
    for _ in 0..2 {
        curl_http2("--http2", &format!("https://127.0.0.1:{port}/-/ready"), 200);
    }
    let job = format!(
        "scrape_configs:\n  - job_name: python\n    scheme: https\n    metrics_path: /scrape\n    tls_config:\n      insecure_skip_verify: true\n    static_configs:\n      - targets: ['127.0.0.1:{python_port}']\n"
    );
    let config = prometheus_dir.join("prometheus.yml");
    let global = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, global + &job).unwrap();
    python_client(dir, &client, &[go(true, ("POST", "/-/reload", 0), 1, 200)]);
    let scrapes = |s: &[ExposedSample]| {
        let route = [("http_route", "/scrape")];
        (
            of(s, CLIENT_COUNT, &service, &[]),
            of(s, SERVER_COUNT, python_service, &route),
        )
    };
    // Its scrape manager takes up new targets every 5 s: until two scrapes
    // are served (a third began: the server ends a request at the next).
    wait_for(sonde, |s| scrapes(s).1 >= 2.0);
    // Stopped (SIGTERM): it closes its connections, which ends the last call.
    drop(prometheus);

    let samples = wait_for(sonde, |s| {
        let (called, served) = scrapes(s);
        requests_served(s, &service) >= 8.0 && called >= 2.0 && called == served
    });
    let ours = |l: &[(&str, &str)]| of(&samples, SERVER_COUNT, &service, l);
    assert_eq!(ours(&labels("GET", "200", "/-/healthy")), 3.0);
    assert_eq!(ours(&labels("GET", "404", "/nothing")), 2.0);
    assert_eq!(ours(&labels("POST", "200", "/-/reload")), 1.0);
    assert_eq!(ours(&labels("GET", "200", "/-/ready")), 2.0, "over HTTP/2");
    let (called, served) = scrapes(&samples);
    assert!(
        called >= 2.0 && called == served,
        "prometheus's scrapes: {called} calls counted, {served} served:\n{}",
        sonde.log_text()
    );
    let port = python_port.to_string();
    let peer = [
        labels("GET", "404", "/scrape").as_slice(),
        &[
            ("server_address", "127.0.0.1"),
            ("server_port", port.as_str()),
        ],
    ]
    .concat();
    assert_eq!(of(&samples, CLIENT_COUNT, &service, &peer), called);
}

/// The requests `service` served, but [`wait_until_seen`]'s.
fn requests_served(samples: &[ExposedSample], service: &str) -> f64 {
    of(samples, SERVER_COUNT, service, &[])
        - of(samples, SERVER_COUNT, service, &[("http_route", WARMUP)])
}

/// The value of `metric` for one service's label set.
fn of(samples: &[ExposedSample], metric: &str, service: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("service_name", service)];
    labels.extend_from_slice(extra);
    value(samples, metric, &labels)
}

/// The mean of a duration histogram's label set.
fn mean(samples: &[ExposedSample], side: &str, service: &str, extra: &[(&str, &str)]) -> f64 {
    let name = |part: &str| format!("http_{side}_request_duration_seconds_{part}");
    of(samples, &name("sum"), service, extra) / of(samples, &name("count"), service, extra)
}

fn server_side(samples: &[ExposedSample], nginx_service: &str, tls_service: &str) {
    let ngx = |metric: &str, l: &[(&str, &str)]| of(samples, metric, nginx_service, l);
    assert_eq!(
        ngx(SERVER_COUNT, &[]),
        16.0,
        "every nginx TLS request, once"
    );
    let page = labels("GET", "200", "/page.html");
    assert_eq!(ngx(SERVER_COUNT, &page), 8.0);
    assert_eq!(ngx(SERVER_COUNT, &labels("GET", "404", "/missing")), 4.0);
    assert_eq!(ngx(SERVER_COUNT, &labels("GET", "500", "/fail")), 2.0);
    let post = labels("POST", "405", "/page.html");
    assert_eq!(ngx(SERVER_COUNT, &post), 2.0);
    // Sizes are the plaintext's, not the ciphertext's.
    assert_eq!(
        ngx("http_server_response_body_size_bytes_sum", &page),
        (8 * PAGE_BYTES) as f64
    );
    assert_eq!(ngx("http_server_request_body_size_bytes_sum", &post), 200.0);

    let py = |metric: &str, l: &[(&str, &str)]| of(samples, metric, tls_service, l);
    assert_eq!(py(SERVER_COUNT, &labels("GET", "200", "/users/*")), 5.0);
    let echo = labels("POST", "200", "/echo");
    assert_eq!(py(SERVER_COUNT, &echo), 2.0);
    assert_eq!(py("http_server_request_body_size_bytes_sum", &echo), 600.0);
    assert_eq!(py("http_server_response_body_size_bytes_sum", &echo), 600.0);
    let sleep = labels("GET", "200", "/sleep");
    assert_eq!(py(SERVER_COUNT, &sleep), 4.0);
    let (got, want) = (
        mean(samples, "server", tls_service, &sleep),
        SLEEP.as_secs_f64(),
    );
    assert!(
        (got - want).abs() <= want * 0.1,
        "mean duration {got} s, slept {want} s"
    );
}

fn client_side(samples: &[ExposedSample], client: &str, ports: [u16; 3]) {
    let [nginx_port, tls_port, plain_port] = ports.map(|p| p.to_string());
    let count = |port: &str, l: Vec<(&str, &str)>| {
        let mut l = l;
        l.extend([("server_port", port), ("server_address", "127.0.0.1")]);
        of(samples, CLIENT_COUNT, client, &l)
    };
    assert_eq!(
        of(samples, CLIENT_COUNT, client, &[]),
        34.0,
        "every call, once"
    );
    assert_eq!(count(&nginx_port, labels("GET", "200", "/page.html")), 8.0);
    assert_eq!(count(&nginx_port, labels("GET", "404", "/missing")), 4.0);
    assert_eq!(count(&nginx_port, labels("GET", "500", "/fail")), 2.0);
    assert_eq!(count(&nginx_port, labels("POST", "405", "/page.html")), 2.0);
    assert_eq!(count(&tls_port, labels("GET", "200", "/users/*")), 5.0);
    assert_eq!(count(&tls_port, labels("GET", "200", "/sleep")), 4.0);
    assert_eq!(count(&plain_port, labels("GET", "200", "/users/*")), 3.0);
    assert_eq!(count(&plain_port, labels("GET", "404", "/nothing")), 2.0);
    assert_eq!(count(&plain_port, labels("GET", "200", "/sleep")), 2.0);
    let echo = [
        labels("POST", "200", "/echo").as_slice(),
        &[("server_port", tls_port.as_str())],
    ]
    .concat();
    assert_eq!(count(&tls_port, labels("POST", "200", "/echo")), 2.0);
    assert_eq!(
        of(
            samples,
            "http_client_request_body_size_bytes_sum",
            client,
            &echo
        ),
        600.0
    );
    assert_eq!(
        of(
            samples,
            "http_client_response_body_size_bytes_sum",
            client,
            &echo
        ),
        600.0
    );
    // A call lasts at least as long as the server worked on it: through
    // OpenSSL, and plain (the socket capture's times are TCP's clock).
    let want = SLEEP.as_secs_f64();
    for port in [&tls_port, &plain_port] {
        let sleep = [
            labels("GET", "200", "/sleep").as_slice(),
            &[("server_port", port.as_str())],
        ]
        .concat();
        let got = mean(samples, "client", client, &sleep);
        assert!(
            got >= want && got <= want * 1.5,
            "port {port}: mean call duration {got} s, the server slept {want} s"
        );
    }
}
