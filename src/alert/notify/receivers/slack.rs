//! Slack incoming webhooks: one attachment per notification, its title,
//! text, fallback and link expanded from Alertmanager's default templates
//! (or the receiver's own `title` and `text`), coloured by status, as
//! Alertmanager 0.25 sends it. Alertmanager's default text is empty.

use super::{http_agent, http_url, post_json, truncate, Failure};
use crate::alert::notify::config::{secret, SlackConfig};
use crate::alert::notify::notification::{Notification, Template};

/// The longest title Alertmanager sends, in characters.
const MAX_TITLE_CHARS: usize = 1024;

pub struct Slack {
    api_url: String,
    channel: Option<String>,
    username: String,
    title: Template,
    text: Template,
    fallback: Template,
    title_link: Template,
    pub send_resolved: bool,
    agent: ureq::Agent,
}

impl Slack {
    pub fn build(config: &SlackConfig) -> anyhow::Result<Slack> {
        let api_url = secret("api_url", &config.api_url, &config.api_url_file)?;
        let template = |key: &str, text: &Option<String>, default: &str| match text {
            Some(text) => Template::parse(text).map_err(|err| anyhow::anyhow!("key {key}: {err}")),
            None => Ok(Template::default(default)),
        };
        Ok(Slack {
            api_url: http_url("api_url", &api_url)?,
            channel: config.channel.clone(),
            username: config
                .username
                .clone()
                .unwrap_or_else(|| "Alertmanager".into()),
            title: template("title", &config.title, "slack.default.title")?,
            text: template("text", &config.text, "slack.default.text")?,
            fallback: Template::default("slack.default.fallback"),
            title_link: Template::default("slack.default.titlelink"),
            send_resolved: config.send_resolved,
            agent: http_agent(),
        })
    }

    pub fn notify(&self, notification: &Notification) -> Result<(), Failure> {
        let payload = self
            .payload(notification)
            .map_err(|err| Failure::Refused(format!("cannot expand the template: {err}")))?;
        post_json(&self.agent, &self.api_url, &payload)
    }

    fn payload(&self, notification: &Notification) -> Result<serde_json::Value, String> {
        let data = notification.template_data();
        let title = truncate(&self.title.render(&data, false)?, MAX_TITLE_CHARS, false);
        let color = if notification.status() == "firing" {
            "danger"
        } else {
            "good"
        };
        let mut payload = serde_json::json!({
            "username": self.username,
            "attachments": [{
                "title": title,
                "title_link": self.title_link.render(&data, false)?,
                "text": self.text.render(&data, false)?,
                "fallback": self.fallback.render(&data, false)?,
                "color": color,
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }],
        });
        if let Some(channel) = &self.channel {
            payload["channel"] = channel.as_str().into();
        }
        Ok(payload)
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
            .payload(&sample_notification())
            .unwrap();
        let attachment = &payload["attachments"][0];
        assert_eq!(payload["channel"], "#ops");
        assert_eq!(payload["username"], "Alertmanager");
        assert_eq!(attachment["title"], "[FIRING:1] HighLoad (critical)");
        assert_eq!(
            attachment["title_link"],
            "http://sonde:9977/#/alerts?receiver=ops+team"
        );
        assert_eq!(
            attachment["fallback"],
            "[FIRING:1] HighLoad (critical) | http://sonde:9977/#/alerts?receiver=ops+team"
        );
        assert_eq!(attachment["color"], "danger");
        assert_eq!(attachment["text"], "");
    }

    #[test]
    fn own_templates_are_go_templates() {
        let config = SlackConfig {
            api_url: Some("http://127.0.0.1:1/slack".into()),
            text: Some(
                "{{ range .Alerts.Firing }}{{ .Labels.instance | toUpper }} {{ end }}".into(),
            ),
            ..Default::default()
        };
        let payload = Slack::build(&config)
            .unwrap()
            .payload(&sample_notification())
            .unwrap();
        assert_eq!(payload["attachments"][0]["text"], "A ");
        let bad = SlackConfig {
            title: Some("{{ humanize 1 }}".into()),
            ..config
        };
        let err = format!("{:#}", Slack::build(&bad).err().unwrap());
        assert!(
            err.contains("key title: ") && err.contains("humanize"),
            "{err}"
        );
    }

    #[test]
    fn exactly_one_url_is_required() {
        let err = format!("{:#}", Slack::build(&SlackConfig::default()).err().unwrap());
        assert!(err.contains("api_url"), "{err}");
    }
}
