//! Telegram: a bot's `sendMessage` to one chat, the text expanded from
//! Alertmanager's default template (or the receiver's own `message`) as
//! Alertmanager 0.25 expands it: in HTML mode, values escaped as its
//! html/template escapes them. Cut to Telegram's 4096 characters, never
//! inside an HTML entity (where Alertmanager would cut one in two).

use super::{http_agent, http_url, post_json, truncate, Failure};
use crate::alert::notify::config::{secret, TelegramConfig};
use crate::alert::notify::notification::{Notification, Template};

/// The longest message Telegram takes, in characters.
const MAX_MESSAGE_CHARS: usize = 4096;

pub struct Telegram {
    url: String,
    chat_id: i64,
    message: Template,
    parse_mode: String,
    pub send_resolved: bool,
    agent: ureq::Agent,
}

impl Telegram {
    pub fn build(config: &TelegramConfig) -> anyhow::Result<Telegram> {
        let token = secret("bot_token", &config.bot_token, &config.bot_token_file)?;
        if config.chat_id == 0 {
            anyhow::bail!("key chat_id: expected the chat's id (a non-zero integer)");
        }
        if !["", "HTML", "MarkdownV2", "Markdown"].contains(&config.parse_mode.as_str()) {
            anyhow::bail!(
                "key parse_mode: expected \"HTML\", \"MarkdownV2\", \"Markdown\" or \"\", got {:?}",
                config.parse_mode
            );
        }
        let api_url = http_url("api_url", config.api_url.trim_end_matches('/'))?;
        let message = match &config.message {
            Some(text) => {
                Template::parse(text).map_err(|err| anyhow::anyhow!("key message: {err}"))?
            }
            None => Template::default("telegram.default.message"),
        };
        Ok(Telegram {
            url: format!("{api_url}/bot{token}/sendMessage"),
            chat_id: config.chat_id,
            message,
            parse_mode: config.parse_mode.clone(),
            send_resolved: config.send_resolved,
            agent: http_agent(),
        })
    }

    pub fn notify(&self, notification: &Notification) -> Result<(), Failure> {
        let payload = self
            .payload(notification)
            .map_err(|err| Failure::Refused(format!("cannot expand the template: {err}")))?;
        post_json(&self.agent, &self.url, &payload)
    }

    fn payload(&self, notification: &Notification) -> Result<serde_json::Value, String> {
        let html = self.parse_mode == "HTML";
        let text = self.message.render(&notification.template_data(), html)?;
        // Alertmanager's client turns link previews off: an alert's source
        // link would otherwise fill the chat with a preview of sonde.
        let mut payload = serde_json::json!({
            "chat_id": self.chat_id,
            "text": truncate(&text, MAX_MESSAGE_CHARS, html),
            "disable_web_page_preview": true,
        });
        if !self.parse_mode.is_empty() {
            payload["parse_mode"] = self.parse_mode.as_str().into();
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::notification::tests::sample_notification;

    #[test]
    fn message_is_escaped_html() {
        let config = TelegramConfig {
            bot_token: Some("123:abc".into()),
            chat_id: -42,
            ..Default::default()
        };
        let telegram = Telegram::build(&config).unwrap();
        assert_eq!(
            telegram.url,
            "https://api.telegram.org/bot123:abc/sendMessage"
        );
        let payload = telegram.payload(&sample_notification()).unwrap();
        assert_eq!(payload["chat_id"], -42);
        assert_eq!(payload["parse_mode"], "HTML");
        let text = payload["text"].as_str().unwrap();
        assert!(text.starts_with("\n\nAlerts Firing:\nLabels:\n - alertname = HighLoad\n"));
        assert!(text.contains("load &lt;high&gt; &amp; rising"), "{text}");
        assert!(
            text.ends_with("Source: http://sonde/graph\n\n\n"),
            "{text:?}"
        );
    }
}
