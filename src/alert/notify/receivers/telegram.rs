//! Telegram: a bot's `sendMessage` to one chat, the text in Telegram's HTML
//! (every value escaped), cut to Telegram's 4096 characters.

use super::{http_agent, http_url, post_json, Failure};
use crate::alert::notify::config::{secret, TelegramConfig};
use crate::alert::notify::notification::{escape_html, verbatim, Notification, Template};

/// The longest message Telegram takes, in characters.
const MAX_MESSAGE_CHARS: usize = 4096;

pub struct Telegram {
    url: String,
    chat_id: i64,
    message: Option<Template>,
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
        let message = config
            .message
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|err| anyhow::anyhow!("key message: {err}"))?;
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
        post_json(&self.agent, &self.url, &self.payload(notification))
    }

    fn payload(&self, notification: &Notification) -> serde_json::Value {
        let escape = if self.parse_mode == "HTML" {
            escape_html
        } else {
            verbatim
        };
        let text = match &self.message {
            Some(template) => template.render(notification, escape),
            None => notification.text_alert_list(escape),
        };
        // Alertmanager's client turns link previews off: an alert's source
        // link would otherwise fill the chat with a preview of sonde.
        let mut payload = serde_json::json!({
            "chat_id": self.chat_id,
            "text": truncate(&text, MAX_MESSAGE_CHARS),
            "disable_web_page_preview": true,
        });
        if !self.parse_mode.is_empty() {
            payload["parse_mode"] = self.parse_mode.as_str().into();
        }
        payload
    }
}

/// `text` cut to at most `max` characters, ending with "…" when cut, and
/// never inside an HTML entity.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    if let Some(amp) = cut.rfind('&') {
        if !cut[amp..].contains(';') {
            cut.truncate(amp);
        }
    }
    cut.push('…');
    cut
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
        let payload = telegram.payload(&sample_notification());
        assert_eq!(payload["chat_id"], -42);
        assert_eq!(payload["parse_mode"], "HTML");
        let text = payload["text"].as_str().unwrap();
        assert!(text.contains("load &lt;high&gt; &amp; rising"), "{text}");
    }

    #[test]
    fn long_messages_are_cut_outside_entities() {
        let cut = truncate(&"a".repeat(5000), 4096);
        assert_eq!(cut.chars().count(), 4096);
        assert!(cut.ends_with('…'));
        let entity = format!("{}&amp;", "a".repeat(4093));
        assert_eq!(truncate(&entity, 4096), format!("{}…", "a".repeat(4093)));
        assert_eq!(truncate("short", 4096), "short");
    }
}
