//! The built-in notifier against real local endpoints: a recording HTTP
//! server stands in for webhook, Slack and Telegram, an SMTP sink written
//! here for the mail server. Timings are tiny (group_wait 1s,
//! group_interval 2s, repeat_interval 4s) and every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sonde::alert::notify::{Notifier, NotifyConfig};
use sonde::alert::Alert;
use sonde::model::Labels;
use sonde::serve::{router, Shared};
use sonde::store::Store;

use common::recorder::{recorder, serve};
use common::TempDir;

fn now_ms() -> i64 {
    sonde::collect::now_ms()
}

/// A database migrated by the store, as `sonde run` leaves it.
struct Database {
    store: Option<Store>,
    file: PathBuf,
    _dir: TempDir,
}

fn database(what: &str) -> Database {
    let dir = TempDir::new(what);
    let store = Store::open(&dir.0).unwrap();
    Database {
        store: Some(store),
        file: dir.0.join("sonde.db"),
        _dir: dir,
    }
}

fn config(text: &str) -> NotifyConfig {
    toml::from_str(text).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

/// The route timings every test uses.
const FAST: &str = "group_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"4s\"\n";

fn firing(pairs: &[(&str, &str)]) -> Alert {
    Alert {
        labels: Labels::new(pairs.iter().copied()),
        annotations: Labels::new([("summary", "it <broke> & stays broken")]),
        value: 1.0,
        starts_at_ms: now_ms(),
        ends_at_ms: now_ms() + 3_600_000,
        generator_url: "http://127.0.0.1:9977/graph?g0.expr=up".into(),
    }
}

fn resolved(alert: &Alert) -> Alert {
    Alert {
        ends_at_ms: now_ms() - 1,
        ..alert.clone()
    }
}

/// Prometheus's fingerprint, computed here independently of sonde.
fn fingerprint(pairs: &[(&str, &str)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort();
    let mut hash: u64 = 0xcbf29ce484222325;
    for (name, value) in sorted {
        for b in name
            .bytes()
            .chain([0xff])
            .chain(value.bytes())
            .chain([0xff])
        {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    }
    format!("{hash:016x}")
}

/// The value of a self-metric's series with `receiver`, 0 when absent.
fn metric(notifier: &Notifier, name: &str, receiver: &str) -> f64 {
    notifier
        .families()
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| &f.series)
        .filter(|s| s.labels.get("receiver") == Some(receiver))
        .map(|s| s.value)
        .sum()
}

#[test]
fn webhook_groups_repeats_and_tells_resolutions() {
    let (url, recorded) = recorder();
    let db = database("notify-webhook");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"ops\"\nwebhook = {{ url = \"{url}/hook\" }}\n\
             [route]\nreceiver = \"ops\"\ngroup_by = [\"alertname\"]\n{FAST}"
        )),
        &db.file,
        "http://sonde.example:9977/",
    )
    .unwrap();
    let a = firing(&[
        ("alertname", "HighLoad"),
        ("instance", "a"),
        ("severity", "critical"),
    ]);
    let b = firing(&[
        ("alertname", "HighLoad"),
        ("instance", "b"),
        ("severity", "critical"),
    ]);
    let sent = Instant::now();
    notifier.send(vec![a.clone(), b.clone()]);

    let first = recorded.wait_for("/hook", 1, Duration::from_secs(5));
    let waited = sent.elapsed();
    assert_eq!(first.len(), 1, "one notification for the group");
    assert!(
        waited >= Duration::from_millis(900),
        "group_wait kept: {waited:?}"
    );
    let payload = &first[0];
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "ops");
    assert_eq!(payload["groupKey"], r#"{}:{alertname="HighLoad"}"#);
    assert_eq!(payload["truncatedAlerts"], 0);
    assert_eq!(payload["externalURL"], "http://sonde.example:9977");
    assert_eq!(
        payload["groupLabels"],
        serde_json::json!({"alertname": "HighLoad"})
    );
    assert_eq!(
        payload["commonLabels"],
        serde_json::json!({"alertname": "HighLoad", "severity": "critical"})
    );
    assert_eq!(
        payload["commonAnnotations"]["summary"],
        "it <broke> & stays broken"
    );
    let alerts = payload["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "both alerts in one notification");
    assert_eq!(alerts[0]["labels"]["instance"], "a");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alerts[0]["generatorURL"],
        "http://127.0.0.1:9977/graph?g0.expr=up"
    );
    assert_eq!(
        alerts[0]["fingerprint"],
        fingerprint(&[
            ("alertname", "HighLoad"),
            ("instance", "a"),
            ("severity", "critical")
        ])
    );
    let starts = alerts[0]["startsAt"].as_str().unwrap();
    assert!(starts.ends_with('Z') && starts.len() >= 20, "{starts}");

    // Unchanged: nothing at the next flush, a repeat after repeat_interval.
    let first_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(recorded.on("/hook").len(), 1, "no news, no notification");
    let repeated = recorded.wait_for("/hook", 2, Duration::from_secs(8));
    assert_eq!(repeated.len(), 2, "repeated after repeat_interval");
    let repeat_after = first_at.elapsed();
    assert!(repeat_after >= Duration::from_secs(3), "{repeat_after:?}");
    assert_eq!(repeated[1]["alerts"].as_array().unwrap().len(), 2);

    // One resolves: told at the next flush (send_resolved is on).
    notifier.send(vec![resolved(&a)]);
    let told = recorded.wait_for("/hook", 3, Duration::from_secs(4));
    assert_eq!(told.len(), 3);
    assert_eq!(told[2]["status"], "firing");
    let statuses: Vec<&str> = told[2]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["resolved", "firing"]);
    assert_ne!(told[2]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // The other resolves: the group is resolved, then forgotten.
    notifier.send(vec![resolved(&b)]);
    let all = recorded.wait_for("/hook", 4, Duration::from_secs(4));
    assert_eq!(all.len(), 4);
    assert_eq!(all[3]["status"], "resolved");
    assert_eq!(
        all[3]["alerts"].as_array().unwrap().len(),
        1,
        "a was dropped once told"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        recorded.on("/hook").len(),
        4,
        "nothing after the resolution"
    );
    assert!(notifier.alerts().is_empty());
    assert_eq!(metric(&notifier, "sonde_notifications_total", "ops"), 4.0);
    assert_eq!(
        metric(&notifier, "sonde_notifications_failed_total", "ops"),
        0.0
    );
}

#[test]
fn routes_match_and_continue() {
    let (url, recorded) = recorder();
    let db = database("notify-routes");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"default\"\nwebhook = {{ url = \"{url}/default\" }}\n\
             [[receivers]]\nname = \"pager\"\nwebhook = {{ url = \"{url}/pager\" }}\n\
             [[receivers]]\nname = \"db\"\nwebhook = {{ url = \"{url}/db\" }}\n\
             [route]\nreceiver = \"default\"\ngroup_by = [\"alertname\"]\n{FAST}\
             [[route.routes]]\nreceiver = \"pager\"\nmatchers = ['severity=\"critical\"']\ncontinue = true\n\
             [[route.routes]]\nreceiver = \"db\"\nmatchers = ['team=~\"db.*\"']\n\
             [[route.routes]]\nreceiver = \"pager\"\nmatchers = ['team=\"dbx\"']\n"
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();
    notifier.send(vec![
        firing(&[
            ("alertname", "DiskFull"),
            ("severity", "critical"),
            ("team", "dbx"),
        ]),
        firing(&[
            ("alertname", "Slow"),
            ("severity", "warning"),
            ("team", "web"),
        ]),
    ]);
    let pager = recorded.wait_for("/pager", 1, Duration::from_secs(5));
    let db_hook = recorded.wait_for("/db", 1, Duration::from_secs(5));
    let default = recorded.wait_for("/default", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pager.len(), 1);
    assert_eq!(
        pager[0]["groupKey"],
        r#"{}/{severity="critical"}:{alertname="DiskFull"}"#
    );
    assert_eq!(db_hook.len(), 1, "continue goes on to the next route");
    assert_eq!(db_hook[0]["alerts"][0]["labels"]["alertname"], "DiskFull");
    assert_eq!(
        recorded.on("/pager").len(),
        1,
        "the first match after continue wins"
    );
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["alerts"][0]["labels"]["alertname"], "Slow");
    let statuses = notifier.alerts();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].receivers, ["pager", "db"]);
    assert_eq!(statuses[0].state(), "active");
}

#[test]
fn slack_and_telegram_get_their_shapes() {
    let (url, recorded) = recorder();
    let db = database("notify-chat");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"chat\"\n\
             slack = {{ api_url = \"{url}/slack\", channel = \"#ops\" }}\n\
             telegram = {{ api_url = \"{url}\", bot_token = \"123:abc\", chat_id = -1001 }}\n\
             [route]\nreceiver = \"chat\"\n{FAST}"
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();
    let mut alert = firing(&[("alertname", "Noisy"), ("instance", "x<1>")]);
    alert.annotations = Labels::new([("description", "é".repeat(5000))]);
    notifier.send(vec![alert]);
    let slack = recorded.wait_for("/slack", 1, Duration::from_secs(5));
    let telegram = recorded.wait_for("/bot123:abc/sendMessage", 1, Duration::from_secs(5));
    assert_eq!(slack.len(), 1);
    let attachment = &slack[0]["attachments"][0];
    assert_eq!(slack[0]["channel"], "#ops");
    assert_eq!(attachment["title"], "[FIRING:1]  (Noisy x<1>)");
    assert_eq!(attachment["color"], "danger");
    assert_eq!(
        attachment["title_link"],
        "http://sonde/#/alerts?receiver=chat"
    );
    assert_eq!(telegram.len(), 1);
    assert_eq!(telegram[0]["chat_id"], -1001);
    assert_eq!(telegram[0]["parse_mode"], "HTML");
    let text = telegram[0]["text"].as_str().unwrap();
    assert!(
        text.contains(" - instance = x&lt;1&gt;"),
        "{}",
        &text[..200]
    );
    assert_eq!(text.chars().count(), 4096, "cut to Telegram's limit");
    assert!(text.ends_with('…'));
}

/// A receiver's own templates, the same in both configs: fields, methods
/// and functions of Alertmanager's notification templates.
const CUSTOM_TITLE: &str = r#"{{ .Status | toUpper }} {{ .CommonLabels.alertname }} {{ len .Alerts.Firing }}/{{ len .Alerts }} for {{ .Receiver }}"#;
const CUSTOM_TEXT: &str = r#"{{ range .Alerts }}{{ .Status }} {{ .Labels.SortedPairs.Values | join "," }} since {{ .StartsAt }} until {{ .EndsAt }} {{ .Fingerprint }} {{ .GeneratorURL }}
{{ range $k, $v := .Annotations }}{{ $k | title }}={{ $v | toLower }};{{ end }}
{{ end }}{{ (.CommonLabels.Remove (stringSlice "alertname")).Names }} {{ if match "^Disk" .GroupLabels.alertname }}disk{{ end }} {{ reReplaceAll "(\\w+)-(\\d+)" "$2:$1" "host-12" }} {{ .ExternalURL }} {{ .CommonAnnotations.SortedPairs }}"#;
const CUSTOM_MESSAGE: &str = r#"<b>{{ template "__subject" . }}</b>{{ range .Alerts.Firing }}
{{ .Labels.instance }}: {{ .Annotations.summary }}{{ end }}
{{ "<i>safe</i>" | safeHtml }} {{ .Receiver }} {{ template "__alertmanagerURL" . }}"#;

/// A real Alertmanager 0.25 and sonde's notifier, with the same Slack and
/// Telegram receivers (defaults, and the receiver's own templates) and the
/// same alerts: the texts they post are the same, byte for byte.
#[test]
fn slack_and_telegram_texts_match_alertmanager() {
    let (url, recorded) = recorder();
    let quoted = |text: &str| serde_json::to_string(text).unwrap();
    let alertmanager = common::alertmanager::Alertmanager::start_with(
        &format!(
            "route:\n  receiver: chat\n  group_by: [alertname]\n  group_wait: 1s\n  routes:\n    \
             - receiver: chat\n      continue: true\n    - receiver: team.custom\n\
             receivers:\n  - name: chat\n    \
             slack_configs:\n      - api_url: {url}/am/slack\n    \
             telegram_configs:\n      - api_url: {url}/am/tg\n        bot_token: \"123:abc\"\n        chat_id: -1001\n  \
             - name: team.custom\n    \
             slack_configs:\n      - api_url: {url}/am/slack-custom\n        title: {}\n        text: {}\n    \
             telegram_configs:\n      - api_url: {url}/am/tg-custom\n        bot_token: \"123:abc\"\n        chat_id: -1001\n        message: {}\n",
            quoted(CUSTOM_TITLE),
            quoted(CUSTOM_TEXT),
            quoted(CUSTOM_MESSAGE)
        ),
        &["--web.external-url=http://sonde"],
    );
    let db = database("notify-vs-am");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"chat\"\n\
             slack = {{ api_url = \"{url}/sonde/slack\" }}\n\
             telegram = {{ api_url = \"{url}/sonde/tg\", bot_token = \"123:abc\", chat_id = -1001 }}\n\
             [[receivers]]\nname = \"team.custom\"\n\
             slack = {{ api_url = \"{url}/sonde/slack-custom\", title = {}, text = {} }}\n\
             telegram = {{ api_url = \"{url}/sonde/tg-custom\", bot_token = \"123:abc\", chat_id = -1001, message = {} }}\n\
             [route]\nreceiver = \"chat\"\ngroup_by = [\"alertname\"]\n{FAST}\
             [[route.routes]]\nreceiver = \"chat\"\ncontinue = true\n\
             [[route.routes]]\nreceiver = \"team.custom\"\n",
            quoted(CUSTOM_TITLE),
            quoted(CUSTOM_TEXT),
            quoted(CUSTOM_MESSAGE)
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();

    let starts_at_ms = now_ms() - now_ms() % 1000 + 123;
    let alerts: Vec<Alert> = ["host-1", "host-2"]
        .iter()
        .map(|instance| Alert {
            labels: Labels::new([
                ("alertname", "DiskFull"),
                ("instance", instance),
                ("job", "node"),
                ("severity", "page"),
            ]),
            annotations: Labels::new([
                ("summary", "Disk <full> & \"rising\" +5%"),
                ("runbook", "HTTP://Example.com/A"),
            ]),
            value: 1.0,
            starts_at_ms,
            ends_at_ms: starts_at_ms + 3_600_000,
            generator_url: "http://sonde/graph?g0.expr=up".into(),
        })
        .collect();
    let posted: Vec<Value> = alerts
        .iter()
        .map(|a| {
            serde_json::json!({
                "labels": a.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "annotations": a.annotations.iter().collect::<std::collections::BTreeMap<_, _>>(),
                "startsAt": sonde::civil::rfc3339(a.starts_at_ms),
                "endsAt": sonde::civil::rfc3339(a.ends_at_ms),
                "generatorURL": a.generator_url,
            })
        })
        .collect();
    alertmanager.post_alerts(&Value::Array(posted));
    notifier.send(alerts);

    let first = |path: &str| -> Value {
        let got = recorded.wait_for(path, 1, Duration::from_secs(20));
        assert!(
            !got.is_empty(),
            "nothing posted to {path}\n{}",
            alertmanager.log_text()
        );
        got[0].clone()
    };
    for (path, fields) in [
        (
            "/slack",
            &["title", "title_link", "text", "fallback", "color"][..],
        ),
        (
            "/slack-custom",
            &["title", "title_link", "text", "fallback", "color"][..],
        ),
    ] {
        let (theirs, ours) = (
            first(&format!("/am{path}")),
            first(&format!("/sonde{path}")),
        );
        for field in fields {
            let (theirs, ours) = (
                &theirs["attachments"][0][field],
                &ours["attachments"][0][field],
            );
            println!("{path} {field}: {theirs}");
            assert_eq!(ours, theirs, "{path} {field}");
        }
    }
    for path in ["/tg", "/tg-custom"] {
        let (theirs, ours) = (
            first(&format!("/am{path}/bot123:abc/sendMessage")),
            first(&format!("/sonde{path}/bot123:abc/sendMessage")),
        );
        println!("{path} text: {}", theirs["text"]);
        assert_eq!(ours["text"], theirs["text"], "{path} text");
        assert_eq!(
            ours["parse_mode"], theirs["parse_mode"],
            "{path} parse_mode"
        );
    }
}

/// An SMTP server that accepts every message and records the dialogue
/// (client lines), one session after another.
fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dialogue = Arc::new(Mutex::new(Vec::new()));
    let log = dialogue.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let _ = writer.write_all(b"220 sink ESMTP\r\n");
            let mut in_data = false;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let text = line.trim_end_matches("\r\n").to_string();
                line.clear();
                log.lock().unwrap().push(text.clone());
                if in_data {
                    if text == "." {
                        in_data = false;
                        let _ = writer.write_all(b"250 queued\r\n");
                    }
                    continue;
                }
                let command = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match command.as_str() {
                    "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                    "DATA" => {
                        in_data = true;
                        b"354 go ahead\r\n"
                    }
                    "QUIT" => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                let _ = writer.write_all(reply);
                if command == "QUIT" {
                    break;
                }
            }
        }
    });
    (port, dialogue)
}

#[test]
fn email_goes_over_smtp_and_require_tls_refuses_a_plain_server() {
    let (port, dialogue) = smtp_sink();
    let db = database("notify-email");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"mail\"\n\
             email = {{ to = \"ops@example.com\", from = \"sonde@example.com\", smarthost = \"127.0.0.1:{port}\", require_tls = false, hello = \"sonde.test\" }}\n\
             [[receivers]]\nname = \"strict\"\n\
             email = {{ to = \"ops@example.com\", from = \"sonde@example.com\", smarthost = \"127.0.0.1:{port}\", hello = \"strict.test\" }}\n\
             [route]\nreceiver = \"mail\"\n{FAST}\
             [[route.routes]]\nreceiver = \"mail\"\ncontinue = true\n\
             [[route.routes]]\nreceiver = \"strict\"\n"
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();
    notifier.send(vec![firing(&[("alertname", "Mail"), ("instance", "m")])]);
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline
        && (!dialogue.lock().unwrap().iter().any(|l| l == "QUIT")
            || metric(&notifier, "sonde_notifications_failed_total", "strict") < 1.0)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = dialogue.lock().unwrap().clone();
    let commands: Vec<&String> = lines
        .iter()
        .filter(|l| {
            ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
                .iter()
                .any(|c| l.starts_with(c))
        })
        .collect();
    assert!(
        commands.contains(&&"EHLO sonde.test".to_string()),
        "{lines:#?}"
    );
    let strict = lines.iter().position(|l| l == "EHLO strict.test").unwrap();
    assert_eq!(
        lines[strict + 1],
        "QUIT",
        "no STARTTLS offered: nothing sent"
    );
    assert!(
        commands.contains(&&"MAIL FROM:<sonde@example.com>".to_string()),
        "{lines:#?}"
    );
    assert!(commands.contains(&&"RCPT TO:<ops@example.com>".to_string()));
    assert!(
        lines.iter().any(|l| l == "Subject: [FIRING:1]  (Mail m)"),
        "{lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l == " - summary = it <broke> & stays broken"));
    assert!(lines
        .iter()
        .any(|l| l.contains("it &lt;broke&gt; &amp; stays broken")));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("MAIL FROM")).count(),
        1,
        "only the plain one sent"
    );
    assert_eq!(
        metric(&notifier, "sonde_notifications_failed_total", "mail"),
        0.0
    );
    assert_eq!(
        metric(&notifier, "sonde_notifications_failed_total", "strict"),
        1.0
    );
}

/// A real SMTP server that requires STARTTLS and AUTH: the message goes
/// over TLS (the server's CA given as ca_file), authenticated, to every
/// recipient with its subject; a wrong password is refused by the server,
/// and sonde counts the failure and goes on.
#[test]
fn email_goes_over_starttls_with_auth_to_a_real_smtp_server() {
    let server = common::smtp::SmtpServer::start("sonde", "s3cret");
    let db = database("notify-smtp");
    let email = |password: &str, hello: &str| {
        format!(
            "email = {{ to = \"ops@example.com, oncall@example.com\", from = \"sonde@example.com\", \
             smarthost = \"127.0.0.1:{}\", auth_username = \"sonde\", auth_password = \"{password}\", \
             ca_file = \"{}\", hello = \"{hello}\" }}\n",
            server.port,
            server.ca_file.display()
        )
    };
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"mail\"\n{}\
             [[receivers]]\nname = \"wrong\"\n{}\
             [route]\nreceiver = \"mail\"\n{FAST}\
             [[route.routes]]\nreceiver = \"mail\"\ncontinue = true\n\
             [[route.routes]]\nreceiver = \"wrong\"\n",
            email("s3cret", "mail.test"),
            email("guess", "wrong.test"),
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();
    notifier.send(vec![firing(&[("alertname", "Mail"), ("instance", "m")])]);
    let record = server.wait_for(Duration::from_secs(10), |record| {
        record.iter().any(|e| e.get("content").is_some()) && record.iter().any(|e| e["ok"] == false)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && metric(&notifier, "sonde_notifications_failed_total", "wrong") < 1.0
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let messages: Vec<&Value> = record
        .iter()
        .filter(|e| e.get("content").is_some())
        .collect();
    assert_eq!(
        messages.len(),
        1,
        "one message, from mail only: {record:#?}\n{}",
        server.log_text()
    );
    let message = messages[0];
    assert_eq!(message["tls"], true, "{message:#}");
    assert_eq!(message["authenticated"], true, "{message:#}");
    assert_eq!(message["login"], "sonde");
    assert_eq!(message["mail_from"], "sonde@example.com");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    let content = message["content"].as_str().unwrap();
    assert!(
        content.contains("\r\nSubject: [FIRING:1]  (Mail m)\r\n"),
        "{content}"
    );
    assert!(content.contains("\r\nTo: ops@example.com, oncall@example.com\r\n"));
    assert!(content.contains(" - summary = it <broke> & stays broken"));
    let attempts: Vec<(&Value, &Value, &Value)> = record
        .iter()
        .filter(|e| e.get("auth").is_some())
        .map(|e| (&e["auth"], &e["ok"], &e["tls"]))
        .collect();
    assert!(
        attempts.contains(&(&"PLAIN".into(), &true.into(), &true.into())),
        "{attempts:?}"
    );
    assert!(
        attempts.contains(&(&"PLAIN".into(), &false.into(), &true.into())),
        "the wrong password was tried, over TLS: {attempts:?}"
    );
    assert_eq!(
        metric(&notifier, "sonde_notifications_failed_total", "mail"),
        0.0
    );
    assert_eq!(
        metric(&notifier, "sonde_notifications_failed_total", "wrong"),
        1.0
    );
    assert_eq!(metric(&notifier, "sonde_notifications_total", "wrong"), 1.0);
}

#[test]
fn failing_receiver_is_retried_and_counted() {
    let (url, recorded) = recorder();
    let db = database("notify-fail");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"broken\"\nwebhook = {{ url = \"{url}/fail\" }}\n\
             [route]\nreceiver = \"broken\"\n{FAST}"
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();
    notifier.send(vec![firing(&[("alertname", "Lost")])]);
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline
        && metric(&notifier, "sonde_notifications_failed_total", "broken") < 1.0
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(&notifier, "sonde_notifications_failed_total", "broken"),
        1.0
    );
    let attempts = metric(&notifier, "sonde_notification_requests_total", "broken");
    assert!(attempts >= 2.0, "retried: {attempts}");
    assert_eq!(
        metric(
            &notifier,
            "sonde_notification_requests_failed_total",
            "broken"
        ),
        attempts
    );
    assert!(recorded.on("/fail").len() >= 2);
    // Not logged as notified: the next flush tries again.
    let again = recorded.wait_for("/fail", attempts as usize + 1, Duration::from_secs(4));
    assert!(again.len() > attempts as usize);
}

/// Serves sonde's router with `notifier` until the returned stopper is used.
fn serve_api(db: &mut Database, notifier: &Notifier) -> (String, impl FnOnce() -> Store) {
    let mut shared = Shared::new(db.store.take().unwrap());
    shared.notifier = Some(notifier.clone());
    let shared = Arc::new(shared);
    let (url, stop, thread) = serve(router(shared.clone()));
    let stopper = move || {
        stop.send(()).unwrap();
        thread.join().unwrap();
        let shared = Arc::into_inner(shared).expect("the server let go");
        shared.store.into_inner().unwrap()
    };
    (url, stopper)
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn call(request: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = request.unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn silences_over_http_mute_and_survive_a_restart() {
    let (url, recorded) = recorder();
    let mut db = database("notify-silence");
    let notify_config = config(&format!(
        "[[receivers]]\nname = \"ops\"\nwebhook = {{ url = \"{url}/silenced-test\" }}\n\
         [route]\nreceiver = \"ops\"\ngroup_by = [\"alertname\"]\n{FAST}"
    ));
    let notifier = Notifier::start(&notify_config, &db.file, "http://sonde").unwrap();
    let (api, stop_api) = serve_api(&mut db, &notifier);
    let agent = http();
    let silence = |matchers: Value, created_by: &str| {
        serde_json::json!({
            "matchers": matchers,
            "startsAt": "2020-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00.5Z",
            "createdBy": created_by,
            "comment": "maintenance",
        })
    };
    let matchers = serde_json::json!([{"name": "alertname", "value": "Quiet", "isRegex": false, "isEqual": true}]);
    let post = |body: &Value| {
        call(
            agent
                .post(format!("{api}/api/v2/silences"))
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
        )
    };
    let (status, created) = post(&silence(matchers.clone(), "me"));
    assert_eq!(status, 200, "{created}");
    let id = created["silenceID"].as_str().unwrap().to_string();

    // Bad input: a 400 that names what is wrong.
    let (status, message) = post(&serde_json::json!({"matchers": matchers}));
    assert_eq!(status, 400);
    assert!(message.as_str().unwrap().contains("startsAt"), "{message}");
    let (status, message) = post(&silence(matchers.clone(), ""));
    assert_eq!(status, 400);
    assert!(message.as_str().unwrap().contains("createdBy"), "{message}");
    let (status, message) = post(&silence(
        serde_json::json!([{"name": "a", "value": "(", "isRegex": true}]),
        "me",
    ));
    assert_eq!(status, 400);
    assert!(
        message.as_str().unwrap().contains("regular expression"),
        "{message}"
    );
    let (status, _) = call(agent.get(format!("{api}/api/v2/silence/nope")).call());
    assert_eq!(status, 404);

    let (status, listed) = call(
        agent
            .get(format!(
                "{api}/api/v2/silences?filter=alertname%3D%22Quiet%22"
            ))
            .call(),
    );
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["matchers"], matchers);
    assert_eq!(listed[0]["endsAt"], "2099-01-01T00:00:00.500Z");
    let (_, none) = call(
        agent
            .get(format!(
                "{api}/api/v2/silences?filter=alertname%3D%22Other%22"
            ))
            .call(),
    );
    assert_eq!(none, serde_json::json!([]));

    notifier.send(vec![
        firing(&[("alertname", "Quiet")]),
        firing(&[("alertname", "Loud")]),
    ]);
    let told = recorded.wait_for("/silenced-test", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2500));
    let told_after = recorded.on("/silenced-test");
    assert_eq!(told.len(), 1);
    assert_eq!(told_after.len(), 1, "the silenced group stays quiet");
    assert_eq!(told[0]["alerts"][0]["labels"]["alertname"], "Loud");
    let (_, alerts) = call(agent.get(format!("{api}/api/v2/alerts")).call());
    let quiet = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "Quiet")
        .unwrap();
    assert_eq!(quiet["status"]["state"], "suppressed");
    assert_eq!(quiet["status"]["silencedBy"], serde_json::json!([id]));
    assert_eq!(quiet["receivers"], serde_json::json!([{"name": "ops"}]));
    let (_, active_only) = call(
        agent
            .get(format!("{api}/api/v2/alerts?silenced=false"))
            .call(),
    );
    assert_eq!(active_only.as_array().unwrap().len(), 1);
    let (_, groups) = call(
        agent
            .get(format!("{api}/api/v2/alerts/groups?silenced=false"))
            .call(),
    );
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(
        groups[0]["labels"],
        serde_json::json!({"alertname": "Loud"})
    );
    assert_eq!(groups[0]["receiver"]["name"], "ops");
    assert_eq!(groups[0]["alerts"][0]["status"]["state"], "active");
    let (status, _) = call(agent.get(format!("{api}/api/v2/status")).call());
    assert_eq!(status, 200);

    // Restart on the same database: the silence is still there and mutes.
    db.store = Some(stop_api());
    drop(notifier);
    let notifier = Notifier::start(&notify_config, &db.file, "http://sonde").unwrap();
    assert_eq!(notifier.silences().get(&id).unwrap().matchers.len(), 1);
    notifier.send(vec![firing(&[("alertname", "Quiet")])]);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        recorded.on("/silenced-test").len(),
        1,
        "still silenced after a restart"
    );
    assert_eq!(notifier.alerts()[0].silenced_by, std::slice::from_ref(&id));

    // Expired over HTTP: the alert is told at the next flush.
    let (api, stop_api) = serve_api(&mut db, &notifier);
    let (status, _) = call(agent.delete(format!("{api}/api/v2/silence/{id}")).call());
    assert_eq!(status, 200);
    let (_, expired) = call(agent.get(format!("{api}/api/v2/silence/{id}")).call());
    assert_eq!(expired["status"]["state"], "expired");
    let told = recorded.wait_for("/silenced-test", 2, Duration::from_secs(4));
    assert_eq!(told.len(), 2);
    assert_eq!(told[1]["alerts"][0]["labels"]["alertname"], "Quiet");
    db.store = Some(stop_api());
}

#[test]
fn inhibition_mutes_targets_with_equal_labels() {
    let (url, recorded) = recorder();
    let db = database("notify-inhibit");
    let notifier = Notifier::start(
        &config(&format!(
            "[[receivers]]\nname = \"ops\"\nwebhook = {{ url = \"{url}/inhibit\" }}\n\
             [route]\nreceiver = \"ops\"\ngroup_by = [\"...\"]\n{FAST}\
             [[inhibit_rules]]\nsource_matchers = ['severity=\"critical\"']\n\
             target_matchers = ['severity=\"warning\"']\nequal = [\"instance\"]\n"
        )),
        &db.file,
        "http://sonde",
    )
    .unwrap();
    notifier.send(vec![
        firing(&[
            ("alertname", "Down"),
            ("instance", "a"),
            ("severity", "critical"),
        ]),
        firing(&[
            ("alertname", "Slow"),
            ("instance", "a"),
            ("severity", "warning"),
        ]),
        firing(&[
            ("alertname", "Slow"),
            ("instance", "b"),
            ("severity", "warning"),
        ]),
    ]);
    recorded.wait_for("/inhibit", 2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2500));
    let mut told: Vec<String> = recorded
        .on("/inhibit")
        .iter()
        .map(|p| {
            let labels = &p["alerts"][0]["labels"];
            format!(
                "{}/{}",
                labels["alertname"].as_str().unwrap(),
                labels["instance"].as_str().unwrap()
            )
        })
        .collect();
    told.sort();
    assert_eq!(told, ["Down/a", "Slow/b"]);
    let inhibited: Vec<_> = notifier
        .alerts()
        .into_iter()
        .filter(|s| !s.inhibited_by.is_empty())
        .collect();
    assert_eq!(inhibited.len(), 1);
    assert_eq!(inhibited[0].alert.labels.get("instance"), Some("a"));
    assert_eq!(inhibited[0].state(), "suppressed");
}

#[test]
fn restart_does_not_notify_again_within_repeat_interval() {
    let (url, recorded) = recorder();
    let db = database("notify-nflog");
    let notify_config = config(&format!(
        "[[receivers]]\nname = \"ops\"\nwebhook = {{ url = \"{url}/nflog\" }}\n\
         [route]\nreceiver = \"ops\"\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\nrepeat_interval = \"1h\"\n"
    ));
    let alert = firing(&[("alertname", "Once")]);
    let notifier = Notifier::start(&notify_config, &db.file, "http://sonde").unwrap();
    notifier.send(vec![alert.clone()]);
    assert_eq!(
        recorded.wait_for("/nflog", 1, Duration::from_secs(5)).len(),
        1
    );
    drop(notifier);
    let notifier = Notifier::start(&notify_config, &db.file, "http://sonde").unwrap();
    notifier.send(vec![alert]);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        recorded.on("/nflog").len(),
        1,
        "the log remembers across a restart"
    );
}

#[test]
fn reload_keeps_the_old_config_when_the_new_is_bad() {
    let (url, recorded) = recorder();
    let db = database("notify-reload");
    let notifier = Notifier::start(&NotifyConfig::default(), &db.file, "http://sonde").unwrap();
    notifier.send(vec![firing(&[("alertname", "Nobody")])]);
    let bad = config("[[receivers]]\nname = \"a\"\n[route]\nreceiver = \"b\"\n");
    let err = format!("{:#}", notifier.reload(&bad).unwrap_err());
    assert!(
        err.contains("notify.route.receiver") && err.contains("\"b\""),
        "{err}"
    );
    let good = config(&format!(
        "[[receivers]]\nname = \"late\"\nwebhook = {{ url = \"{url}/reload\" }}\n\
         [route]\nreceiver = \"late\"\n{FAST}"
    ));
    notifier.reload(&good).unwrap();
    let told = recorded.wait_for("/reload", 1, Duration::from_secs(5));
    assert_eq!(
        told.len(),
        1,
        "alerts held before the reload are routed after it"
    );
    assert_eq!(told[0]["alerts"][0]["labels"]["alertname"], "Nobody");
}
