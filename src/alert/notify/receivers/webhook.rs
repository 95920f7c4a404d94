//! Alertmanager's webhook: the group as JSON (payload version 4), POSTed.

use super::{http_agent, http_url, post_json, Failure};
use crate::alert::notify::config::{secret, WebhookConfig};
use crate::alert::notify::notification::{fingerprint_hex, labels_json, rfc3339, Notification};

pub struct Webhook {
    url: String,
    max_alerts: usize,
    pub send_resolved: bool,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn build(config: &WebhookConfig) -> anyhow::Result<Webhook> {
        let url = secret("url", &config.url, &config.url_file)?;
        Ok(Webhook {
            url: http_url("url", &url)?,
            max_alerts: config.max_alerts,
            send_resolved: config.send_resolved,
            agent: http_agent(),
        })
    }

    pub fn notify(&self, notification: &Notification) -> Result<(), Failure> {
        post_json(
            &self.agent,
            &self.url,
            &payload(notification, self.max_alerts),
        )
    }
}

/// The webhook payload: every field Alertmanager 0.25 sends, alerts beyond
/// `max_alerts` (when not 0) left out and counted.
pub fn payload(notification: &Notification, max_alerts: usize) -> serde_json::Value {
    let kept = match max_alerts {
        0 => notification.alerts.len(),
        n => n.min(notification.alerts.len()),
    };
    let alerts: Vec<serde_json::Value> = notification.alerts[..kept]
        .iter()
        .map(|alert| {
            serde_json::json!({
                "status": alert.status(),
                "labels": labels_json(&alert.labels),
                "annotations": labels_json(&alert.annotations),
                "startsAt": rfc3339(Some(alert.starts_at_ms)),
                "endsAt": rfc3339(alert.ends_at_ms),
                "generatorURL": alert.generator_url,
                "fingerprint": fingerprint_hex(alert.fingerprint),
            })
        })
        .collect();
    serde_json::json!({
        "receiver": notification.receiver,
        "status": notification.status(),
        "alerts": alerts,
        "groupLabels": labels_json(&notification.group_labels),
        "commonLabels": labels_json(&notification.common_labels()),
        "commonAnnotations": labels_json(&notification.common_annotations()),
        "externalURL": notification.external_url,
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": notification.alerts.len() - kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::notification::tests::sample_notification;

    #[test]
    fn payload_has_alertmanagers_shape() {
        let payload = payload(&sample_notification(), 1);
        assert_eq!(payload["version"], "4");
        assert_eq!(payload["status"], "firing");
        assert_eq!(payload["truncatedAlerts"], 1);
        assert_eq!(payload["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(payload["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(payload["alerts"][0]["fingerprint"], "0000000000000001");
        assert_eq!(payload["commonLabels"]["severity"], "critical");
        assert_eq!(payload["groupLabels"]["alertname"], "HighLoad");
    }
}
