//! Slack incoming webhooks: one attachment per notification, titled and
//! coloured as Alertmanager's default templates do. Alertmanager's default
//! text is empty; sonde's lists the alerts (Alertmanager's
//! `__text_alert_list`), which reads better with no template of one's own.

use super::{http_agent, http_url, post_json, Failure};
use crate::alert::notify::config::{secret, SlackConfig};
use crate::alert::notify::notification::{verbatim, Notification, Template};

pub struct Slack {
    api_url: String,
    channel: Option<String>,
    username: String,
    title: Option<Template>,
    text: Option<Template>,
    pub send_resolved: bool,
    agent: ureq::Agent,
}

impl Slack {
    pub fn build(config: &SlackConfig) -> anyhow::Result<Slack> {
        let api_url = secret("api_url", &config.api_url, &config.api_url_file)?;
        let template = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(Template::parse)
                .transpose()
                .map_err(|err| anyhow::anyhow!("key {key}: {err}"))
        };
        Ok(Slack {
            api_url: http_url("api_url", &api_url)?,
            channel: config.channel.clone(),
            username: config
                .username
                .clone()
                .unwrap_or_else(|| "Alertmanager".into()),
            title: template("title", &config.title)?,
            text: template("text", &config.text)?,
            send_resolved: config.send_resolved,
            agent: http_agent(),
        })
    }

    pub fn notify(&self, notification: &Notification) -> Result<(), Failure> {
        post_json(&self.agent, &self.api_url, &self.payload(notification))
    }

    fn payload(&self, notification: &Notification) -> serde_json::Value {
        let title = match &self.title {
            Some(t) => t.render(notification, verbatim),
            None => notification.subject(),
        };
        let text = match &self.text {
            Some(t) => t.render(notification, verbatim),
            None => notification.text_alert_list(verbatim),
        };
        let link = notification.alerts_url();
        let color = if notification.status() == "firing" {
            "danger"
        } else {
            "good"
        };
        let mut payload = serde_json::json!({
            "username": self.username,
            "attachments": [{
                "title": title,
                "title_link": link,
                "text": text,
                "fallback": format!("{title} | {link}"),
                "color": color,
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }],
        });
        if let Some(channel) = &self.channel {
            payload["channel"] = channel.as_str().into();
        }
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::notification::tests::sample_notification;

    #[test]
    fn default_attachment_follows_alertmanager() {
        let config = SlackConfig {
            api_url: Some("http://127.0.0.1:1/slack".into()),
            channel: Some("#ops".into()),
            ..Default::default()
        };
        let payload = Slack::build(&config)
            .unwrap()
            .payload(&sample_notification());
        let attachment = &payload["attachments"][0];
        assert_eq!(payload["channel"], "#ops");
        assert_eq!(payload["username"], "Alertmanager");
        assert_eq!(attachment["title"], "[FIRING:1] HighLoad (critical)");
        assert_eq!(attachment["color"], "danger");
        assert!(attachment["text"]
            .as_str()
            .unwrap()
            .contains("Alerts Firing:"));
    }

    #[test]
    fn exactly_one_url_is_required() {
        let err = format!("{:#}", Slack::build(&SlackConfig::default()).err().unwrap());
        assert!(err.contains("api_url"), "{err}");
    }
}
