//! The guarded web port as a client sees it: `[server]` TLS with a
//! certificate made by openssl for the test, HTTP basic auth against a
//! bcrypt hash, the certificate reloaded when its files change, and bad
//! files or hashes refused at start with the file or key and the reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{free_port, sh, TempDir, SONDE};

const USER: &str = "ops";
const PASSWORD: &str = "s3cret";

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout {} -out {} -days 2 -subj /CN=sonde-test \
         -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE 2>&1",
        key.display(),
        cert.display()
    ));
    (cert, key)
}

/// The bcrypt hash of `password` (cost 4: tests need no strength).
fn hash(password: &str) -> String {
    bcrypt::hash_with_salt(password, 4, [42; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY)
}

/// The config file of a guarded sonde in `dir`, on `port`.
fn config(dir: &Path, port: u16, cert: &Path, key: &Path, users: &str) -> PathBuf {
    let file = dir.join("sonde.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\
             [server.basic_auth_users]\n{users}\n\
             [storage]\npath = \"{}\"\n[collect]\ninterval = \"1s\"\n[alerting]\nrule_files = []\n",
            cert.display(),
            key.display(),
            dir.join("store").display()
        ),
    )
    .unwrap();
    file
}

/// A sonde started on a config file, killed on drop.
struct Guarded {
    child: Child,
    log: PathBuf,
}

impl Guarded {
    fn start(dir: &Path, config: &Path) -> Guarded {
        let log = dir.join("sonde.log");
        let child = Command::new(SONDE)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start sonde");
        Guarded { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that trusts `cert` only.
fn client(cert: &Path) -> ureq::Agent {
    let pem = std::fs::read(cert).unwrap();
    let trusted = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[trusted]))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// GET with optional credentials: (status, WWW-Authenticate), or the error.
fn get(
    agent: &ureq::Agent,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    let mut request = agent.get(url);
    if let Some((user, password)) = credentials {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.header("Authorization", format!("Basic {encoded}"));
    }
    let response = request.call().map_err(|err| err.to_string())?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((response.status().as_u16(), challenge))
}

/// Waits until `url` answers over TLS (sonde loads its collectors first).
fn wait_until_served(agent: &ureq::Agent, url: &str, sonde: &mut Guarded) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = sonde.child.try_wait().unwrap() {
            panic!("sonde exited with {status}:\n{}", sonde.log_text());
        }
        if get(agent, url, None).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("sonde not serving {url} after 60 s:\n{}", sonde.log_text());
}

#[test]
fn tls_and_basic_auth_guard_every_endpoint_but_healthy() {
    let dir = TempDir::new("guard");
    let (cert, key) = certificate(&dir.0, "first");
    let port = free_port();
    let users = format!("{USER} = \"{}\"", hash(PASSWORD));
    let mut sonde = Guarded::start(&dir.0, &config(&dir.0, port, &cert, &key, &users));
    let base = format!("https://127.0.0.1:{port}");
    let agent = client(&cert);
    wait_until_served(&agent, &format!("{base}/-/healthy"), &mut sonde);

    assert_eq!(
        get(&agent, &format!("{base}/-/healthy"), None),
        Ok((200, String::new()))
    );
    for path in ["/metrics", "/", "/api/v1/query?query=up", "/-/ready"] {
        let url = format!("{base}{path}");
        assert_eq!(
            get(&agent, &url, None),
            Ok((401, "Basic realm=\"sonde\"".to_string())),
            "{path} without credentials"
        );
        assert_eq!(
            get(&agent, &url, Some((USER, "wrong"))).map(|answer| answer.0),
            Ok(401),
            "{path} with a wrong password"
        );
        assert_eq!(
            get(&agent, &url, Some(("nobody", PASSWORD))).map(|answer| answer.0),
            Ok(401),
            "{path} as an unknown user"
        );
    }
    assert_eq!(
        get(&agent, &format!("{base}/metrics"), Some((USER, PASSWORD))),
        Ok((200, String::new()))
    );
    assert_eq!(
        get(&agent, &format!("{base}/"), Some((USER, PASSWORD))).map(|answer| answer.0),
        Ok(200)
    );
    // The port speaks TLS only, and only with the configured certificate.
    let plain = common::get(&format!("http://127.0.0.1:{port}/-/healthy"));
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP answered: {plain:?}"
    );
    let (other, _) = certificate(&dir.0, "other");
    assert!(get(&client(&other), &format!("{base}/-/healthy"), None).is_err());

    // A renewed certificate is served without a restart.
    let (renewed, renewed_key) = certificate(&dir.0, "renewed");
    std::fs::copy(&renewed_key, &key).unwrap();
    std::fs::copy(&renewed, &cert).unwrap();
    let renewed_client = client(&renewed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Each attempt is a new handshake, which looks at the files.
        if get(&renewed_client, &format!("{base}/-/healthy"), None).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served after 10 s:\n{}",
            sonde.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(sonde.log_text().contains("TLS: reloaded"));
}

/// Runs `sonde run` on a config that must be refused; its stderr.
fn refused(config: &Path) -> String {
    let mut child = Command::new(SONDE)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sonde did not refuse {} within 60 s", config.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        !output.status.success(),
        "sonde accepted {}",
        config.display()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_certificate_key_or_hash_is_refused_at_start() {
    let dir = TempDir::new("guard-bad");
    let (cert, key) = certificate(&dir.0, "good");
    let (_, other_key) = certificate(&dir.0, "other");
    let users = format!("{USER} = \"{}\"", hash(PASSWORD));
    let port = free_port();

    let garbage = dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let err = refused(&config(&dir.0, port, &garbage, &key, &users));
    assert!(
        err.contains(&format!("tls_cert_file {}", garbage.display()))
            && err.contains("no CERTIFICATE"),
        "{err}"
    );

    let missing = dir.0.join("missing.pem");
    let err = refused(&config(&dir.0, port, &missing, &key, &users));
    assert!(
        err.contains(&format!("tls_cert_file {}", missing.display())),
        "{err}"
    );

    let err = refused(&config(&dir.0, port, &cert, &other_key, &users));
    assert!(
        err.contains(&format!("tls_key_file {}", other_key.display()))
            && err.contains("is not the key of"),
        "{err}"
    );

    let err = refused(&config(&dir.0, port, &cert, &key, "ops = \"plain\""));
    assert!(
        err.contains("server.basic_auth_users.ops") && err.contains("bcrypt"),
        "{err}"
    );
}
