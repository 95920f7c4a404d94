//! What one notification carries, built once per flush of an aggregation
//! group and handed to every integration of its receiver: the alerts with
//! their status and fingerprint, the group's labels, and what the alerts
//! have in common. Also the shapes Alertmanager gives them on the wire: the
//! fingerprint of a label set, Go's RFC 3339 times, and the default texts
//! (`__subject`, `__text_alert_list`) of its templates.

use std::fmt::Write;

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

    pub fn resolved(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts.iter().filter(|a| a.resolved())
    }

    /// Labels every alert has with the same value.
    pub fn common_labels(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    pub fn common_annotations(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// Where Alertmanager's UI would show this receiver's alerts.
    pub fn alerts_url(&self) -> String {
        let receiver: String = form_urlencoded::byte_serialize(self.receiver.as_bytes()).collect();
        format!("{}/#/alerts?receiver={receiver}", self.external_url)
    }

    /// Alertmanager's `__subject`: `[FIRING:2] <group label values>
    /// (<other common label values>)`.
    pub fn subject(&self) -> String {
        let mut subject = format!("[{}", self.status().to_uppercase());
        if self.status() == "firing" {
            let _ = write!(subject, ":{}", self.firing().count());
        }
        subject.push_str("] ");
        let group_values: Vec<&str> = self.group_labels.iter().map(|(_, v)| v).collect();
        subject.push_str(&group_values.join(" "));
        let common = self.common_labels();
        if common.len() > self.group_labels.len() {
            let others: Vec<&str> = common
                .iter()
                .filter(|(name, _)| self.group_labels.get(name).is_none())
                .map(|(_, v)| v)
                .collect();
            let _ = write!(subject, " ({})", others.join(" "));
        }
        subject
    }

    /// Alertmanager's default message text (telegram's default, e-mail's
    /// text part): the firing alerts, then the resolved, each with its
    /// labels, annotations and source; `escape` is applied to every value.
    pub fn text_alert_list(&self, escape: fn(&str) -> String) -> String {
        let mut text = String::new();
        let sections = [
            ("Alerts Firing:", self.firing().collect::<Vec<_>>()),
            ("Alerts Resolved:", self.resolved().collect()),
        ];
        for (title, alerts) in sections {
            if alerts.is_empty() {
                continue;
            }
            let _ = writeln!(text, "{title}");
            for alert in alerts {
                text.push_str("Labels:\n");
                for (name, value) in alert.labels.iter() {
                    let _ = writeln!(text, " - {} = {}", escape(name), escape(value));
                }
                text.push_str("Annotations:\n");
                for (name, value) in alert.annotations.iter() {
                    let _ = writeln!(text, " - {} = {}", escape(name), escape(value));
                }
                let _ = writeln!(text, "Source: {}", escape(&alert.generator_url));
            }
        }
        text
    }
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

/// Escapes text for HTML (element content and quoted attributes).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Leaves text as it is (for plain-text renderings).
pub fn verbatim(text: &str) -> String {
    text.to_string()
}

/// A receiver's own text (`title`, `text`, `message`): literal text with
/// fields of the notification, written as Alertmanager's templates name
/// them: `{{ .Status }}`, `{{ .Receiver }}`, `{{ .ExternalURL }}`,
/// `{{ .GroupKey }}`, `{{ .GroupLabels.name }}`, `{{ .CommonLabels.name }}`,
/// `{{ .CommonAnnotations.name }}`. Anything else between braces is refused
/// when the config loads.
#[derive(Clone, Debug)]
pub struct Template(Vec<Piece>);

#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    Field(Field),
}

#[derive(Clone, Debug)]
enum Field {
    Status,
    Receiver,
    ExternalUrl,
    GroupKey,
    GroupLabel(String),
    CommonLabel(String),
    CommonAnnotation(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            pieces.push(Piece::Text(rest[..open].to_string()));
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("{{{{ at byte {open} is not closed"))?;
            let field = after[..close].trim();
            let named = |prefix: &str| field.strip_prefix(prefix).map(str::to_string);
            let parsed = match field {
                ".Status" => Field::Status,
                ".Receiver" => Field::Receiver,
                ".ExternalURL" => Field::ExternalUrl,
                ".GroupKey" => Field::GroupKey,
                _ => {
                    if let Some(name) = named(".GroupLabels.") {
                        Field::GroupLabel(name)
                    } else if let Some(name) = named(".CommonLabels.") {
                        Field::CommonLabel(name)
                    } else if let Some(name) = named(".CommonAnnotations.") {
                        Field::CommonAnnotation(name)
                    } else {
                        return Err(format!(
                            "unknown field {{{{ {field} }}}}: expected .Status, .Receiver, .ExternalURL, .GroupKey, .GroupLabels.<name>, .CommonLabels.<name> or .CommonAnnotations.<name>"
                        ));
                    }
                }
            };
            pieces.push(Piece::Field(parsed));
            rest = &after[close + 2..];
        }
        pieces.push(Piece::Text(rest.to_string()));
        Ok(Template(pieces))
    }

    /// The text with its fields filled in, each value passed through
    /// `escape` (the literal text is the receiver's own markup).
    pub fn render(&self, notification: &Notification, escape: fn(&str) -> String) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            let value = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Field(Field::Status) => notification.status().to_string(),
                Piece::Field(Field::Receiver) => notification.receiver.clone(),
                Piece::Field(Field::ExternalUrl) => notification.external_url.clone(),
                Piece::Field(Field::GroupKey) => notification.group_key.clone(),
                Piece::Field(Field::GroupLabel(name)) => notification
                    .group_labels
                    .get(name)
                    .unwrap_or("")
                    .to_string(),
                Piece::Field(Field::CommonLabel(name)) => notification
                    .common_labels()
                    .get(name)
                    .unwrap_or("")
                    .to_string(),
                Piece::Field(Field::CommonAnnotation(name)) => notification
                    .common_annotations()
                    .get(name)
                    .unwrap_or("")
                    .to_string(),
            };
            out.push_str(&escape(&value));
        }
        out
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
    fn subject_and_commons_follow_alertmanager() {
        let n = sample_notification();
        assert_eq!(n.status(), "firing");
        assert_eq!(n.subject(), "[FIRING:1] HighLoad (critical)");
        assert_eq!(n.common_labels().get("instance"), None);
        assert_eq!(
            n.alerts_url(),
            "http://sonde:9977/#/alerts?receiver=ops+team"
        );
        let text = n.text_alert_list(escape_html);
        assert!(text.starts_with("Alerts Firing:\nLabels:\n - alertname = HighLoad\n"));
        assert!(text.contains("load &lt;high&gt; &amp; rising"), "{text}");
        assert!(text.contains("Alerts Resolved:"));
    }

    #[test]
    fn templates_fill_fields_and_refuse_unknown_ones() {
        let n = sample_notification();
        let t = Template::parse(
            "{{ .Status }}: {{.GroupLabels.alertname}} <b>{{ .CommonAnnotations.summary }}</b>",
        )
        .unwrap();
        assert_eq!(
            t.render(&n, escape_html),
            "firing: HighLoad <b>load &lt;high&gt; &amp; rising</b>"
        );
        assert!(Template::parse("{{ range .Alerts }}").is_err());
        assert!(Template::parse("{{ .Status").is_err());
    }
}
