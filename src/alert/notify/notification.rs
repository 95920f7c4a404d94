//! What one notification carries, built once per flush of an aggregation
//! group and handed to every integration of its receiver: the alerts with
//! their status and fingerprint, the group's labels, and what the alerts
//! have in common. Also the shapes Alertmanager gives them on the wire: the
//! fingerprint of a label set, Go's RFC 3339 times, and the data and
//! default definitions (`default.tmpl`) of its notification templates.

use std::rc::Rc;

use crate::alert::template::notification::NotificationTemplate;
use crate::alert::template::{NotificationData, StrMap, TemplateAlert, Time};
use crate::model::Labels;

/// An alert's identity, as Prometheus and Alertmanager compute it.
pub type Fingerprint = u64;

/// Prometheus's label-set fingerprint: FNV-1a 64 over the label names and
/// values in name order, each followed by the separator byte 0xff. The same
/// value Alertmanager sends as an alert's `fingerprint`, so consumers
/// de-duplicate alike.
pub fn fingerprint(labels: &Labels) -> Fingerprint {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    const SEPARATOR: u8 = 0xff;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels.iter() {
        add(name.as_bytes());
        add(&[SEPARATOR]);
        add(value.as_bytes());
        add(&[SEPARATOR]);
    }
    hash
}

/// A fingerprint as Alertmanager writes it: 16 hex digits.
pub fn fingerprint_hex(fp: Fingerprint) -> String {
    format!("{fp:016x}")
}

/// A label set as a JSON object, as Alertmanager's API writes one.
pub fn labels_json(labels: &Labels) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.into()))
            .collect(),
    )
}

/// Milliseconds since the epoch as Go's `time.Time` marshals to JSON
/// (RFC 3339, UTC, fraction without trailing zeros); `None` is Go's zero
/// time, which Alertmanager sends as the end of a firing alert.
pub fn rfc3339(ms: Option<i64>) -> String {
    ms.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), crate::civil::rfc3339)
}

/// Milliseconds since the epoch as Alertmanager's API v2 writes times:
/// RFC 3339, UTC, always with three fraction digits.
pub fn rfc3339_millis(ms: i64) -> String {
    let whole = rfc3339(Some(ms - ms.rem_euclid(1000)));
    format!(
        "{}.{:03}Z",
        whole.trim_end_matches('Z'),
        ms.rem_euclid(1000)
    )
}

pub use crate::civil::parse_rfc3339;

/// Alertmanager's order of alerts in a notification: by `job`, then
/// `instance` (an alert with the label before one without), then fewer
/// labels first, then label by label.
pub fn alert_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for name in ["job", "instance"] {
        match (a.get(name), b.get(name)) {
            (None, None) => continue,
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    a.len().cmp(&b.len()).then_with(|| {
        let mut names: Vec<&str> = a.iter().chain(b.iter()).map(|(n, _)| n).collect();
        names.sort_unstable();
        for name in names {
            match (a.get(name), b.get(name)) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), Some(y)) if x != y => return x.cmp(y),
                _ => {}
            }
        }
        Ordering::Equal
    })
}

/// One alert as a notification shows it.
#[derive(Clone, Debug)]
pub struct NotifiedAlert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at_ms: i64,
    /// `None` while firing: Alertmanager does not tell a firing alert's
    /// planned end.
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
    pub fingerprint: Fingerprint,
}

impl NotifiedAlert {
    pub fn resolved(&self) -> bool {
        self.ends_at_ms.is_some()
    }

    pub fn status(&self) -> &'static str {
        if self.resolved() {
            "resolved"
        } else {
            "firing"
        }
    }
}

/// What a receiver is told about one aggregation group.
#[derive(Clone, Debug)]
pub struct Notification {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: Labels,
    /// In Alertmanager's order ([`alert_order`]).
    pub alerts: Vec<NotifiedAlert>,
    pub external_url: String,
}

impl Notification {
    /// "firing" while any alert fires, else "resolved".
    pub fn status(&self) -> &'static str {
        if self.alerts.iter().any(|a| !a.resolved()) {
            "firing"
        } else {
            "resolved"
        }
    }

    pub fn firing(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts.iter().filter(|a| !a.resolved())
    }

    /// Labels every alert has with the same value.
    pub fn common_labels(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    pub fn common_annotations(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// The dot of its templates: Alertmanager's `template.Data`, whose
    /// receiver name is regexp-quoted, as Alertmanager quotes it.
    pub fn template_data(&self) -> Rc<NotificationData> {
        let map = |labels: &Labels| -> Rc<StrMap> {
            Rc::new(
                labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let alerts = self
            .alerts
            .iter()
            .map(|alert| {
                Rc::new(TemplateAlert {
                    status: alert.status().to_string(),
                    labels: map(&alert.labels),
                    annotations: map(&alert.annotations),
                    starts_at: Time::from_millis(alert.starts_at_ms),
                    ends_at: alert.ends_at_ms.map_or(Time::ZERO, Time::from_millis),
                    generator_url: alert.generator_url.clone(),
                    fingerprint: fingerprint_hex(alert.fingerprint),
                })
            })
            .collect();
        Rc::new(NotificationData {
            receiver: quote_meta(&self.receiver),
            status: self.status().to_string(),
            alerts: Rc::new(alerts),
            group_labels: map(&self.group_labels),
            common_labels: map(&self.common_labels()),
            common_annotations: map(&self.common_annotations()),
            external_url: self.external_url.clone(),
        })
    }
}

/// Go's `regexp.QuoteMeta`: a backslash before each of `\.+*?()|[]{}^$`.
fn quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn common<'a>(mut sets: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = sets.next() else {
        return Labels::default();
    };
    let mut shared: Vec<(&str, &str)> = first.iter().collect();
    for set in sets {
        shared.retain(|(name, value)| set.get(name) == Some(value));
    }
    Labels::new(shared)
}

/// sonde's definitions of the templates Alertmanager names
/// (`__subject`, `slack.default.title`, `telegram.default.message`, …).
const DEFAULTS: &str = include_str!("default.tmpl");

/// A receiver's text (`title`, `text`, `message`, or a default): a Go
/// template over the notification, as Alertmanager 0.25 expands it, which
/// may call the default templates by name.
pub struct Template(NotificationTemplate);

impl Template {
    /// Err carries Go's parse error, for the config key that holds `text`.
    pub fn parse(text: &str) -> Result<Template, String> {
        NotificationTemplate::parse(text, DEFAULTS).map(Template)
    }

    /// The default template `name`, as a receiver's field that calls it.
    pub fn default(name: &str) -> Template {
        Template::parse(&format!("{{{{ template \"{name}\" . }}}}"))
            .expect("the default templates parse")
    }

    /// The text for `data` (from [`Notification::template_data`]); `html`
    /// escapes values for an HTML message.
    pub fn render(&self, data: &Rc<NotificationData>, html: bool) -> Result<String, String> {
        self.0.expand(data, html)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_notification() -> Notification {
        let alert = |instance: &str, ends: Option<i64>| NotifiedAlert {
            labels: Labels::new([
                ("alertname", "HighLoad"),
                ("instance", instance),
                ("severity", "critical"),
            ]),
            annotations: Labels::new([("summary", "load <high> & rising")]),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: ends,
            generator_url: "http://sonde/graph".into(),
            fingerprint: 1,
        };
        Notification {
            receiver: "ops team".into(),
            group_key: "{}:{alertname=\"HighLoad\"}".into(),
            group_labels: Labels::new([("alertname", "HighLoad")]),
            alerts: vec![alert("a", None), alert("b", Some(1_700_000_060_000))],
            external_url: "http://sonde:9977".into(),
        }
    }

    #[test]
    fn fingerprint_matches_prometheus() {
        // prometheus/common model's TestMetricToFingerprint: the empty set
        // hashes to FNV's offset basis, and this pair to this value.
        assert_eq!(fingerprint(&Labels::default()), 14_695_981_039_346_656_037);
        let labels = Labels::new([("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(fingerprint(&labels), 5_799_056_148_416_392_346);
        assert_eq!(fingerprint_hex(0xab), "00000000000000ab");
    }

    #[test]
    fn times_format_and_parse_as_go_does() {
        assert_eq!(rfc3339(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000_120)), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_000),
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            rfc3339_millis(1_700_000_000_120),
            "2023-11-14T22:13:20.120Z"
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.12Z"),
            Some(1_700_000_000_120)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000_123)
        );
        for bad in [
            "",
            "2023-13-01T00:00:00Z",
            "yesterday",
            "2023-11-14T22:13:20",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn alerts_sort_by_job_then_instance_then_labels() {
        let set = |pairs: &[(&str, &str)]| Labels::new(pairs.iter().copied());
        let mut alerts = [
            set(&[("a", "1"), ("b", "2")]),
            set(&[("instance", "z")]),
            set(&[("job", "b")]),
            set(&[("job", "a"), ("instance", "y")]),
            set(&[("a", "0")]),
        ];
        alerts.sort_by(alert_order);
        let shown: Vec<String> = alerts.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            shown,
            [
                r#"{instance="y", job="a"}"#,
                r#"{job="b"}"#,
                r#"{instance="z"}"#,
                r#"{a="0"}"#,
                r#"{a="1", b="2"}"#,
            ]
        );
    }

    #[test]
    fn default_texts_follow_alertmanager() {
        let n = sample_notification();
        assert_eq!(n.status(), "firing");
        assert_eq!(n.common_labels().get("instance"), None);
        let data = n.template_data();
        let render = |name: &str, html: bool| Template::default(name).render(&data, html).unwrap();
        assert_eq!(render("__subject", false), "[FIRING:1] HighLoad (critical)");
        assert_eq!(
            render("__alertmanagerURL", false),
            "http://sonde:9977/#/alerts?receiver=ops+team"
        );
        let text = render("email.sonde.text", false);
        assert!(text.starts_with("Alerts Firing:\nLabels:\n - alertname = HighLoad\n"));
        assert!(
            text.contains(" - summary = load <high> & rising\n"),
            "{text}"
        );
        assert!(text.contains("Alerts Resolved:"));
        let html = render("email.sonde.html", true);
        assert!(html.contains("load &lt;high&gt; &amp; rising"), "{html}");
    }

    #[test]
    fn receiver_names_are_regexp_quoted_as_alertmanager_does() {
        let mut n = sample_notification();
        n.receiver = "team-ops (a.b)".into();
        assert_eq!(n.template_data().receiver, "team-ops \\(a\\.b\\)");
    }

    #[test]
    fn own_templates_see_the_notification_and_the_defaults() {
        let data = sample_notification().template_data();
        let t = Template::parse(
            "{{ .Status }}: {{.GroupLabels.alertname}} <b>{{ .CommonAnnotations.summary }}</b> {{ template \"__subject\" . }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&data, true).unwrap(),
            "firing: HighLoad <b>load &lt;high&gt; &amp; rising</b> [FIRING:1] HighLoad (critical)"
        );
        assert!(Template::parse("{{ range .Alerts }}").is_err());
        assert!(Template::parse("{{ .Status").is_err());
    }
}
