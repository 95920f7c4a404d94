//! What sonde makes of HTTP RED metrics for Beyla's dashboards and for
//! people, end to end with one sonde: a Python server started after sonde
//! is instrumented at its first request; its series carry Beyla's labels
//! (`service_namespace`, `instance`, `job`, `server_address`) and its
//! `target_info`, gone with the process; the PromQL of Beyla's published RED
//! dashboard answers over sonde's API; the request log answers at
//! `/api/v1/requests` and in `sonde requests`; the Services view shows it
//! all; a server in a Podman container carries the `container` label;
//! servers in units a real systemd started (in a container) are named and
//! excluded by their units; and
//! `[collect.http]` excludes a port, an executable and a container by name,
//! names routes by the user's patterns within a route budget, and a Python
//! server with no name of its own is named by its script.

mod common;
mod kernel;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::podman::{Container, Podman};
use common::server::{self, Server};
use common::{free_port, get, ExposedSample, Sonde, TempDir, SONDE};
use kernel::{attached, cgroup_v2_root, value, wait_for, NamedProgram, TestCgroup, NO_BUDGET};

/// Only the http collector: the others would only add load.
const CONFIG: &str =
    "[collect.bpf]\nsyscalls = false\nblock = false\nnet = false\nprocess = false\nsched = false\n";

const COUNT: &str = "http_server_request_duration_seconds_count";

/// How long `/slow` takes.
const SLOW: Duration = Duration::from_millis(300);

/// `/slow` sleeps, `/nothing` is a 404, anything else a 200; keep-alive.
const SERVER: &str = r#"
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(float(sys.argv[2]))
        self.send_response(404 if self.path == "/nothing" else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// GETs `path` on `port`; checks the status.
fn ask(port: u16, path: &str, status: u16) {
    let answer = get(&format!("http://127.0.0.1:{port}{path}")).unwrap();
    assert_eq!(answer.0, status, "{path}");
}

/// The `data` of a JSON answer of sonde's API.
fn api_data(sonde: &Sonde, path: &str) -> serde_json::Value {
    let answer: serde_json::Value = serde_json::from_str(&sonde.get_ok(path)).unwrap();
    assert_eq!(answer["status"], "success", "{path}: {answer}");
    answer["data"].clone()
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `[collect.http]` for [`configured_selection_routes_and_names`]: the
/// main service uses 3 routes (`/users/*`, `/nothing`, `/slow`).
fn http_config(excluded_port: u16, excluded_exe: &str) -> String {
    format!(
        "[collect.http]\nroute_patterns = [\"/orders/{{order}}\"]\nmax_routes_per_service = 4\n\
         [[collect.http.exclude]]\nports = \"{excluded_port}\"\n\
         [[collect.http.exclude]]\nexe_path = \"*/{excluded_exe}\"\n\
         [[collect.http.exclude]]\ncontainer = \"{LEFT_OUT_CONTAINER}*\"\n\
         [[collect.http.exclude]]\nunit = \"{LEFT_OUT_UNIT}*\"\n"
    )
}

/// The start of the names of containers `[collect.http]` leaves out.
const LEFT_OUT_CONTAINER: &str = "sonde-left-out-";
/// The start of the names of systemd units `[collect.http]` leaves out.
const LEFT_OUT_UNIT: &str = "sonde-unit-left-out-";

#[test]
fn beyla_labels_dashboard_request_log_services_view_and_containers() {
    let excluded_port = free_port();
    let excluded_python = NamedProgram::new("/usr/bin/python3", "sexe");
    let sonde = Sonde::start(&format!(
        "{NO_BUDGET}{CONFIG}{}",
        http_config(excluded_port, &excluded_python.comm)
    ));
    if !attached(&sonde, "http") {
        return;
    }
    let dir = TempDir::new("http-services");
    let service = format!("shop{}", std::process::id());
    let port = free_port();
    let server = python_server(&dir.0, &service, port);
    let pid = server.0.id();
    let instance = format!("{}:{pid}", hostname());

    let started = Instant::now();
    ask(port, "/users/7", 200);
    let of_service = [("service_name", service.as_str())];
    let seen = wait_for(&sonde, |s| value(s, COUNT, &of_service) >= 1.0);
    assert_eq!(
        value(&seen, COUNT, &of_service),
        1.0,
        "a server started after sonde is instrumented from its first request"
    );
    eprintln!("first request seen after {:?}", started.elapsed());

    // Two batches some rounds apart, so that rates over them are not zero.
    for path in [
        "/users/8",
        "/users/9",
        "/users/10",
        "/users/11",
        "/users/12",
    ] {
        ask(port, path, 200);
    }
    ask(port, "/nothing", 404);
    ask(port, "/slow", 200);
    sonde.wait_rounds(3);
    for _ in 0..5 {
        ask(port, "/users/13", 200);
    }
    ask(port, "/nothing", 404);
    let samples = wait_for(&sonde, |s| value(s, COUNT, &of_service) >= 14.0);
    assert_eq!(value(&samples, COUNT, &of_service), 14.0);

    labels_and_target_info(&samples, &service, &instance, port);
    // Stored for a few rounds, so the dashboard's rate() has samples.
    sonde.wait_rounds(3);
    beyla_dashboard_answers(&sonde, &service);
    request_log(&sonde, &service, pid);
    services_view(&sonde, &service);

    drop(server);
    let gone = wait_for(&sonde, |s| {
        !s.iter()
            .any(|s| s.name == "target_info" && s.label("instance") == Some(&instance))
    });
    assert!(
        !gone
            .iter()
            .any(|s| s.name == "target_info" && s.label("instance") == Some(&instance)),
        "target_info goes with the process"
    );

    server_in_a_container(&sonde);
    servers_in_units(&sonde);
    units_of_a_real_systemd(&sonde);
    configured_selection_routes_and_names(&sonde, excluded_port, &excluded_python);
}

/// Python servers in cgroups shaped like systemd services' (on a host
/// whose PID 1 is not systemd, as here, made by hand; sonde reads the
/// unit from the cgroup's path either way): one is named by its unit, as
/// `service_name` and `unit`; one whose unit is excluded has no HTTP series
/// and no `target_info`.
fn servers_in_units(sonde: &Sonde) {
    let Some(root) = cgroup_v2_root() else {
        assert!(!common::bpf_required(), "no cgroup v2 hierarchy");
        return;
    };
    let service = format!("sonde-unit-shop-{}", std::process::id());
    let left_out = format!("{LEFT_OUT_UNIT}{}", std::process::id());
    // The cgroups made before the servers, so dropped after them (a panic
    // included): a cgroup is removed once empty.
    let in_unit = |unit: &str| TestCgroup::new(&root, &format!("system.slice/{unit}.service"));
    let cgroups = [in_unit(&service), in_unit(&left_out)];
    let dir = TempDir::new("http-unit");
    let serve = |cgroup: &TestCgroup| {
        let port = free_port();
        let launcher = cgroup.spawn_inside(Path::new("/usr/bin/python3"), &[]);
        (
            server::python_by(launcher, &dir.0, SERVER, port, &["0"], &[]),
            port,
        )
    };
    let (_measured, port) = serve(&cgroups[0]);
    let (_excluded, excluded_port) = serve(&cgroups[1]);
    for _ in 0..2 {
        ask(excluded_port, "/users/1", 200);
        ask(port, "/users/1", 200);
    }
    let unit = format!("{service}.service");
    let labels = [("service_name", service.as_str()), ("unit", unit.as_str())];
    let samples = wait_for(sonde, |s| value(s, COUNT, &labels) >= 2.0);
    assert_eq!(value(&samples, COUNT, &labels), 2.0, "named by its unit");
    assert_unit_left_out(&samples, &format!("{left_out}.service"), excluded_port);
}

/// The server in `unit` on `port`, which `[collect.http]` excludes, has no
/// server series and no `target_info`.
fn assert_unit_left_out(samples: &[ExposedSample], unit: &str, port: u16) {
    let port = port.to_string();
    let measured: Vec<_> = samples
        .iter()
        .filter(|s| {
            (s.name.starts_with("http_server") || s.name == "target_info")
                && (s.label("unit") == Some(unit) || s.label("server_port") == Some(&port))
        })
        .collect();
    assert!(
        measured.is_empty(),
        "the server in the excluded unit is not measured: {measured:?}"
    );
}

/// The same with units a real systemd started: this machine's systemd
/// booted as PID 1 of a Podman container (this machine's own PID 1 is not
/// systemd), two Python servers started in it by `systemd-run`, requests
/// made inside the container. sonde, on the host, sees the units' cgroups
/// below the container's (`/libpod_parent/libpod-ID/system.slice/…`): the
/// measured server is named by its unit and carries both `unit` and
/// `container`; the one in a unit `[collect.http]` excludes has no series.
fn units_of_a_real_systemd(sonde: &Sonde) {
    let Some(podman) = Podman::configured() else {
        return;
    };
    let dir = TempDir::new("http-systemd");
    std::fs::write(dir.0.join("server.py"), SERVER).unwrap();
    let name = format!("sonde-systemd-http-{}", std::process::id());
    let systemd = Container::boot_systemd(&podman, &name, &format!("{}:/srv:ro", dir.0.display()));
    let sh = |script: &str| {
        let (ok, text) = systemd.exec(&["sh", "-c", script]);
        assert!(ok, "`{script}` failed in {name}:\n{text}");
    };
    // Ports of the container's own network; free on the host too, so no
    // other test's server shares their `server_port`.
    let serve = |unit: &str| {
        let port = free_port();
        sh(&format!(
            "systemd-run --unit={unit} /usr/bin/python3 /srv/server.py {port} 0 && \
             for i in $(seq 100); do ss -Hltn 'sport = :{port}' | grep -q . && exit 0; \
             sleep 0.1; done; exit 1"
        ));
        port
    };
    let service = format!("sonde-systemd-shop-{}", std::process::id());
    let port = serve(&service);
    let excluded_port = serve(&format!("{LEFT_OUT_UNIT}systemd"));
    sh(&format!(
        "for i in 1 2 3; do curl -sf -o /dev/null http://127.0.0.1:{port}/users/$i; \
         curl -sf -o /dev/null http://127.0.0.1:{excluded_port}/users/$i; done"
    ));
    let unit = format!("{service}.service");
    let port_label = port.to_string();
    let labels = [
        ("service_name", service.as_str()),
        ("unit", unit.as_str()),
        ("container", name.as_str()),
        ("server_port", port_label.as_str()),
        ("http_route", "/users/*"),
    ];
    let samples = wait_for(sonde, |s| value(s, COUNT, &labels) >= 3.0);
    assert_eq!(
        value(&samples, COUNT, &labels),
        3.0,
        "named by the unit systemd started it in, inside the container"
    );
    assert_unit_left_out(
        &samples,
        &format!("{LEFT_OUT_UNIT}systemd.service"),
        excluded_port,
    );
}

/// A server on the excluded port is not measured (no series, no
/// `target_info`); one with no `OTEL_SERVICE_NAME` (nor unit, nor
/// container) is named by its script (`server.py`: `server`), its
/// `/orders/N` paths are the pattern `/orders/{order}`, and beyond 4 other
/// routes its paths count under `/**`.
fn configured_selection_routes_and_names(
    sonde: &Sonde,
    excluded_port: u16,
    excluded_python: &NamedProgram,
) {
    let dir = TempDir::new("http-config");
    let hidden = format!("hidden{}", std::process::id());
    let slow = SLOW.as_secs_f64().to_string();
    let env = [("OTEL_SERVICE_NAME", hidden.as_str())];
    let excluded = server::python(&dir.0, SERVER, excluded_port, &[&slow], &env);
    // A Python under another executable name, excluded by its path.
    let dir_exe = TempDir::new("http-exe");
    let exe_port = free_port();
    let excluded_by_path = server::python_by(
        Command::new(&excluded_python.path),
        &dir_exe.0,
        SERVER,
        exe_port,
        &[&slow],
        &env,
    );
    let dir = TempDir::new("http-script");
    let port = free_port();
    let named = server::python(&dir.0, SERVER, port, &[&slow], &[]);
    for i in 0..3 {
        ask(excluded_port, "/users/1", 200);
        ask(exe_port, "/users/1", 200);
        ask(port, &format!("/orders/{i}"), 200);
    }
    for i in 0..6 {
        ask(port, &format!("/r{i}"), 200);
    }
    let port_label = port.to_string();
    let of = |samples: &[ExposedSample], route: &str| {
        let labels = [("server_port", port_label.as_str()), ("http_route", route)];
        value(samples, COUNT, &labels)
    };
    let samples = wait_for(sonde, |s| of(s, "/**") >= 2.0);
    assert_eq!(of(&samples, "/orders/{order}"), 3.0);
    assert_eq!(of(&samples, "/**"), 2.0, "/r4 and /r5");
    for i in 0..4 {
        assert_eq!(of(&samples, &format!("/r{i}")), 1.0);
    }
    let names: Vec<_> = samples
        .iter()
        .filter(|s| s.name == COUNT && s.label("server_port") == Some(&port_label))
        .map(|s| s.label("service_name").unwrap_or_default().to_string())
        .collect();
    assert!(names.iter().all(|n| n == "server"), "{names:?}");
    for port in [excluded_port, exe_port] {
        let port = port.to_string();
        assert!(
            !samples
                .iter()
                .any(|s| s.label("service_name") == Some(&hidden)
                    || (s.name.starts_with("http_server")
                        && s.label("server_port") == Some(&port))),
            "the servers on the excluded port and of the excluded executable are not measured \
             (this test's own calls to the latter are)"
        );
    }
    left_out_connections_cost_no_events(sonde, excluded_port);
    drop((excluded, excluded_by_path, named));
}

/// A connection left out is marked so in the BPF program's `conns` at its
/// first request: 50 more requests on it (keep-alive) bring no events, where
/// each would bring a DONE of each end. The few events allowed are the
/// test's own scrapes of /metrics (client calls of this process).
fn left_out_connections_cost_no_events(sonde: &Sonde, excluded_port: u16) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", excluded_port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = || {
        stream
            .write_all(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        let mut body = [0u8; 2];
        reader.read_exact(&mut body).unwrap();
    };
    request();
    // Its OPEN read (the reader drains within 50 ms) and acted on.
    sonde.wait_rounds(1);
    let events = |sonde: &Sonde| {
        let samples = sonde.metrics();
        value(&samples, "sonde_http_events_total", &[])
    };
    let before = events(sonde);
    for _ in 0..50 {
        request();
    }
    sonde.wait_rounds(1);
    let after = events(sonde);
    assert!(
        after - before <= 6.0,
        "{} events for 50 requests on a left-out connection",
        after - before
    );
}

fn python_server(dir: &Path, service: &str, port: u16) -> Server {
    let slow = SLOW.as_secs_f64().to_string();
    let env = [
        ("OTEL_SERVICE_NAME", service),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,service.namespace=store",
        ),
    ];
    server::python(dir, SERVER, port, &[&slow], &env)
}

/// Beyla's labels on every series, and one `target_info` per process.
fn labels_and_target_info(samples: &[ExposedSample], service: &str, instance: &str, port: u16) {
    let job = format!("store/{service}");
    let port = port.to_string();
    let users = [
        ("service_name", service),
        ("service_namespace", "store"),
        ("instance", instance),
        ("job", job.as_str()),
        ("server_address", "127.0.0.1"),
        ("server_port", port.as_str()),
        ("http_request_method", "GET"),
        ("http_route", "/users/*"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(value(samples, COUNT, &users), 11.0);
    let infos: Vec<&ExposedSample> = samples
        .iter()
        .filter(|s| s.name == "target_info" && s.label("instance") == Some(instance))
        .collect();
    assert_eq!(infos.len(), 1, "one target_info per process: {infos:?}");
    let host = hostname();
    for (name, want) in [
        ("job", job.as_str()),
        ("service_name", service),
        ("service_namespace", "store"),
        ("host_name", host.as_str()),
    ] {
        assert_eq!(infos[0].label(name), Some(want), "{name}");
    }
    assert_eq!(infos[0].value, 1.0);
}

/// The PromQL of Beyla's RED dashboard (Grafana 19923, `ops/beyla-mixin`),
/// its server-side panels and variables, with `$Service` chosen and `All`
/// for job and instance: each answers non-empty over sonde's data. The
/// mixin's newest panels join on `target_info` with a range on a
/// parenthesized expression, which Prometheus itself refuses; the join is
/// asked here as Prometheus accepts it.
fn beyla_dashboard_answers(sonde: &Sonde, service: &str) {
    let bucket = r#"{__name__=~"http_server_request_duration_seconds_bucket|http_server_request_duration_bucket",service_name="$Service",instance=~"$instance",job=~"$job"}"#;
    let sum = r#"{__name__=~"http_server_request_duration_seconds_sum|http_server_request_duration_sum",service_name="$Service",instance=~"$instance",job=~"$job"}"#;
    let count = r#"{__name__=~"http_server_request_duration_seconds_count|http_server_request_duration_count",service_name="$Service",instance=~"$instance",job=~"$job"}"#;
    let errors = r#"{__name__=~"http_server_request_duration_seconds_count|http_server_request_duration_count",service_name="${Service}",http_response_status_code=~"(4|5).*",instance=~"$instance",job=~"$job"}"#;
    let all_buckets = r#"{__name__=~"http_server_request_duration_seconds_bucket|http_server_request_duration_bucket",instance=~"$instance",job=~"$job"}"#;
    let queries = [
        format!("sort_desc(topk by(http_route, service_name) (5,  max by (http_route, service_name) (histogram_quantile(0.95,  (sum by(http_route, service_name, le) (rate({all_buckets}[$__rate_interval])))))))"),
        format!("histogram_quantile(0.99, sum by(service_name, le) (rate({bucket}[$__rate_interval])))"),
        format!("histogram_quantile(0.95, sum(rate({bucket}[$__rate_interval])) by (service_name, le))"),
        format!("sum(rate({sum} [$__rate_interval])) / sum(rate({count} [$__rate_interval]))"),
        format!("sum(rate({count} [$__rate_interval])) by (http_response_status_code)"),
        format!("sum by (http_response_status_code) (rate({errors}[$__rate_interval])) / ignoring(http_response_status_code) group_left sum(rate({count}[$__rate_interval]))"),
        r#"sum by (service_name) (rate(http_server_request_duration_seconds_count{service_name="$Service"}[$__rate_interval]) + on(instance) group_left(job) (0 * target_info{instance=~"$instance",job=~"$job"}))"#.to_string(),
    ];
    for query in queries {
        let promql = query
            .replace("${Service}", service)
            .replace("$Service", service)
            .replace("$instance", ".+")
            .replace("$job", ".+")
            .replace("$__rate_interval", "1m");
        let data = api_data(sonde, &format!("/api/v1/query?query={}", encode(&promql)));
        let result = data["result"].as_array().unwrap();
        assert!(!result.is_empty(), "empty: {promql}");
    }
    // The mixin's newest revision, refused as Prometheus 2.42 refuses it.
    let newest = format!(
        r#"sum(rate({{__name__=~"http_server_request_duration.*count",service_name="{service}"}} + on(instance) group_left(job) (0 * target_info{{instance=~".+",job=~".+"}}) [1m])) by (http_response_status_code)"#
    );
    let (status, body) = get(&format!(
        "{}/api/v1/query?query={}",
        sonde.base_url,
        encode(&newest)
    ))
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("ranges only allowed for vector selectors"),
        "{body}"
    );
    // The variables: label_values(service_name), (target_info, job), (target_info, instance).
    let services = api_data(sonde, "/api/v1/label/service_name/values");
    assert!(services.as_array().unwrap().iter().any(|s| s == service));
    let infos = api_data(
        sonde,
        &format!("/api/v1/series?match[]={}", encode("target_info")),
    );
    let job = format!("store/{service}");
    assert!(
        infos
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["job"] == job.as_str()),
        "{infos}"
    );
}

/// The log at `/api/v1/requests` and through `sonde requests`.
fn request_log(sonde: &Sonde, service: &str, pid: u32) {
    let slowest = api_data(
        sonde,
        &format!("/api/v1/requests?service={service}&order=slowest&limit=1"),
    );
    let slow = &slowest[0];
    assert_eq!(slowest.as_array().unwrap().len(), 1);
    assert_eq!(
        (&slow["path"], &slow["route"]),
        (&"/slow".into(), &"/slow".into())
    );
    assert_eq!(slow["status"], 200);
    assert_eq!(slow["pid"], pid);
    assert_eq!(slow["response_body_bytes"], 2);
    let seconds = slow["duration_seconds"].as_f64().unwrap();
    assert!(
        (seconds - SLOW.as_secs_f64()).abs() < SLOW.as_secs_f64() * 0.1,
        "{seconds} s"
    );
    let recent = api_data(
        sonde,
        &format!("/api/v1/requests?service={service}&limit=100"),
    );
    let recent = recent.as_array().unwrap();
    assert_eq!(recent.len(), 14, "every request once");
    // Newest first: one of the second batch (each request on a connection
    // of its own, done when the server closes it, in any order).
    let newest = &recent[0]["path"];
    assert!(newest == "/nothing" || newest == "/users/13", "{newest}");
    assert!(recent
        .iter()
        .any(|e| e["path"] == "/users/9" && e["route"] == "/users/*"));
    let missing = api_data(
        sonde,
        &format!("/api/v1/requests?service={service}&status=4xx"),
    );
    assert_eq!(missing.as_array().unwrap().len(), 2);
    let (status, body) = get(&format!(
        "{}/api/v1/requests?min_duration=soon",
        sonde.base_url
    ))
    .unwrap();
    assert_eq!(status, 400);
    assert!(
        body.contains("min_duration") && body.contains("bad_data"),
        "{body}"
    );

    let cli = |args: &[&str]| {
        Command::new(SONDE)
            .arg("requests")
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "--url",
        &sonde.base_url,
        "--service",
        service,
        "--slowest",
        "--limit",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("TIME")
            && lines[1].contains("/slow")
            && lines[1].contains(&pid.to_string()),
        "{text}"
    );
    let out = cli(&[
        "--url",
        &sonde.base_url,
        "--service",
        service,
        "--status",
        "404",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("/nothing")).count(),
        2,
        "{text}"
    );
    let out = cli(&["--url", &sonde.base_url, "--min-duration", "later"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("min_duration"));
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = cli(&["--url", &nobody]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `sonde run` running"), "{err}");
}

/// The Services view: the service's figures, its routes, its slowest
/// request; linked from every view.
fn services_view(sonde: &Sonde, service: &str) {
    let page = sonde.get_ok("/services?range=15m");
    let row = page
        .split("<tr>")
        .find(|row| row.contains(&format!(">{service}</a>")))
        .unwrap_or_else(|| panic!("no row for {service}:\n{page}"));
    assert!(!row.contains(">0/s<"), "requests counted: {row}");
    for want in [
        "GET /users/*",
        "GET /slow",
        "GET /nothing",
        "Slowest requests",
    ] {
        assert!(page.contains(want), "{want} missing:\n{page}");
    }
    let section = page
        .split(&format!("aria-label=\"{service}\""))
        .nth(1)
        .unwrap();
    let slowest = section.split("Slowest requests").nth(1).unwrap();
    let first = slowest.split("<tr>").nth(1).unwrap();
    assert!(first.contains("GET /slow"), "slowest first: {first}");
    assert!(sonde.get_ok("/").contains(r#"href="/services?"#));
    let (status, body) = get(&format!("{}/services?range=2d", sonde.base_url)).unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("15m"), "{body}");
}

/// Python in a busybox container (the host's /usr bind-mounted, read-only)
/// on the host's network: its series carry the container's name, as
/// `container` and as `service_name`. (busybox httpd would not do: it
/// forks a child per connection after accepting, a process the http
/// collector does not know as a server.) One named like the excluded
/// containers has no HTTP series and no `target_info` (the containers
/// collector still has it).
fn server_in_a_container(sonde: &Sonde) {
    let Some(podman) = Podman::new(&[]) else {
        return;
    };
    let name = format!("sonde-http-{}", std::process::id());
    let left_out = format!("{LEFT_OUT_CONTAINER}{}", std::process::id());
    let (_measured, port) = python_container(&podman, &name);
    let (_left_out, left_out_port) = python_container(&podman, &left_out);
    for _ in 0..2 {
        ask(left_out_port, "/", 200);
        ask(port, "/", 200);
    }
    let labels = [
        ("container", name.as_str()),
        ("service_name", name.as_str()),
    ];
    let samples = wait_for(sonde, |s| value(s, COUNT, &labels) >= 3.0);
    assert_eq!(
        value(&samples, COUNT, &labels),
        3.0,
        "the probe's GET and two more"
    );
    assert!(samples
        .iter()
        .any(|s| s.name == "target_info" && s.label("container") == Some(&name)));
    let measured: Vec<_> = samples
        .iter()
        .filter(|s| {
            (s.name.starts_with("http_") || s.name == "target_info")
                && s.label("container") == Some(&left_out)
        })
        .collect();
    assert!(
        measured.is_empty(),
        "the container named like the excluded ones is not measured: {measured:?}"
    );
}

/// A container `name` running Python's http.server on a free port of the
/// host's network, once it answers; and the port.
fn python_container<'a>(podman: &'a Podman, name: &str) -> (Container<'a>, u16) {
    let port = free_port();
    let port_arg = port.to_string();
    let mounts = [
        "--network",
        "host",
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/lib:/lib:ro",
        "-v",
        "/lib64:/lib64:ro",
    ];
    let container = Container::start(
        podman,
        name,
        &mounts,
        &[
            "/usr/bin/python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port_arg,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("http://127.0.0.1:{port}/")).is_err() {
        assert!(
            Instant::now() < deadline,
            "the container {name}'s server never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (container, port)
}
