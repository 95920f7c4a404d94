//! `[notify]`: the built-in notifier's receivers, routing tree and
//! inhibition rules, in sonde's TOML, with Alertmanager's names and
//! defaults. With no receiver (the default) the notifier notifies no one.
//! These structs only parse; [`super::Plan::build`] checks them and names
//! the key at fault.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `[[notify.receivers]]`: who can be notified, and how.
    pub receivers: Vec<ReceiverConfig>,
    /// `[notify.route]`: which receiver gets which alert, grouped how.
    pub route: RouteConfig,
    /// `[[notify.inhibit_rules]]`: alerts that mute others while firing.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// How long expired silences and the notification log are kept.
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            receivers: Vec::new(),
            route: RouteConfig::default(),
            inhibit_rules: Vec::new(),
            retention: Duration::from_secs(120 * 3600),
        }
    }
}

impl NotifyConfig {
    /// Checks the config as [`super::Notifier::start`] would, secret files
    /// included.
    pub fn validate(&self) -> anyhow::Result<()> {
        super::Plan::build(self).map(drop)
    }
}

/// One receiver: a name the routes use and any of the integrations; one
/// with none (a "blackhole") takes alerts and tells no one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    pub name: String,
    pub webhook: Option<WebhookConfig>,
    pub slack: Option<SlackConfig>,
    pub telegram: Option<TelegramConfig>,
    pub email: Option<EmailConfig>,
}

/// Alertmanager's webhook: a JSON POST (payload version 4).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub send_resolved: bool,
    /// Most alerts in one payload (the rest counted in `truncatedAlerts`);
    /// 0 for all.
    pub max_alerts: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            url_file: None,
            send_resolved: true,
            max_alerts: 0,
        }
    }
}

/// A Slack incoming webhook.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    pub api_url: Option<String>,
    pub api_url_file: Option<PathBuf>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub send_resolved: bool,
}

/// A Telegram bot's `sendMessage`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    pub api_url: String,
    pub bot_token: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    pub chat_id: i64,
    pub message: Option<String>,
    pub parse_mode: String,
    pub send_resolved: bool,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            api_url: "https://api.telegram.org".into(),
            bot_token: None,
            bot_token_file: None,
            chat_id: 0,
            message: None,
            parse_mode: "HTML".into(),
            send_resolved: true,
        }
    }
}

/// E-mail over SMTP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    pub to: String,
    pub from: String,
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub auth_password_file: Option<PathBuf>,
    /// Refuse to send unless the server offers STARTTLS.
    pub require_tls: bool,
    /// PEM file of the certificates that may sign the server's (a
    /// company's own CA), trusted instead of the Mozilla roots, as
    /// Alertmanager's `tls_config.ca_file`.
    pub ca_file: Option<PathBuf>,
    /// The name sonde gives in EHLO.
    pub hello: String,
    pub send_resolved: bool,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            to: String::new(),
            from: String::new(),
            smarthost: String::new(),
            auth_username: None,
            auth_password: None,
            auth_password_file: None,
            require_tls: true,
            ca_file: None,
            hello: "localhost".into(),
            send_resolved: false,
        }
    }
}

/// A node of the routing tree; unset keys are inherited from the parent
/// (the root's defaults: group_wait 30s, group_interval 5m,
/// repeat_interval 4h, grouped by nothing).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    /// Labels that split alerts into groups; `["..."]` for all labels.
    pub group_by: Option<Vec<String>>,
    #[serde(deserialize_with = "optional_duration")]
    pub group_wait: Option<Duration>,
    #[serde(deserialize_with = "optional_duration")]
    pub group_interval: Option<Duration>,
    #[serde(deserialize_with = "optional_duration")]
    pub repeat_interval: Option<Duration>,
    /// Alertmanager matchers, all of which an alert must match.
    pub matchers: Vec<String>,
    /// Whether matching goes on to the next sibling after this route.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    pub routes: Vec<RouteConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InhibitRuleConfig {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    pub equal: Vec<String>,
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// A secret given inline or in a file (`key` and `key_file`): exactly one
/// of them, the file's content trimmed.
pub(crate) fn secret(
    key: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(value), None) => Ok(value.clone()),
        (None, Some(path)) => Ok(std::fs::read_to_string(path)
            .map_err(|err| {
                anyhow::anyhow!("key {key}_file: cannot read {}: {err}", path.display())
            })?
            .trim()
            .to_string()),
        _ => anyhow::bail!("set exactly one of {key} and {key}_file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_tables_parse_with_alertmanager_defaults() {
        let config: NotifyConfig = toml::from_str(
            r#"
            [[receivers]]
            name = "ops"
            webhook = { url = "http://127.0.0.1:1/hook" }
            telegram = { bot_token = "t", chat_id = -100 }
            [route]
            receiver = "ops"
            group_by = ["alertname"]
            [[route.routes]]
            matchers = ['severity="critical"']
            group_wait = "1s"
            continue = true
            [[inhibit_rules]]
            source_matchers = ['severity="critical"']
            target_matchers = ['severity="warning"']
            equal = ["instance"]
            "#,
        )
        .unwrap();
        let receiver = &config.receivers[0];
        assert!(receiver.webhook.as_ref().unwrap().send_resolved);
        assert_eq!(receiver.telegram.as_ref().unwrap().parse_mode, "HTML");
        assert!(config.route.routes[0].continue_matching);
        assert_eq!(
            config.route.routes[0].group_wait,
            Some(Duration::from_secs(1))
        );
        assert_eq!(config.route.group_wait, None);
        assert!(toml::from_str::<NotifyConfig>("[route]\nwait = \"1s\"\n").is_err());
    }

    #[test]
    fn packaged_example_parses_and_checks() {
        let text = include_str!("../../../packaging/sonde.toml");
        let start = text.find("# [[notify.receivers]]").unwrap();
        let end = text.find("# Remote write:").unwrap();
        // The example's tables and keys, uncommented, read as `[notify]`.
        let example: String = text[start..end]
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| line.starts_with('[') || line.contains(" = "))
            .map(|line| format!("{}\n", line.replace("[notify.", "[")))
            .collect();
        let mut config: NotifyConfig = toml::from_str(&example).unwrap();
        assert_eq!(config.receivers[0].name, "ops");
        assert_eq!(config.route.routes.len(), 1);
        assert_eq!(config.inhibit_rules[0].equal, ["instance"]);
        // The secrets are files on the target host: inline them to check the rest.
        let receiver = &mut config.receivers[0];
        receiver.slack.as_mut().unwrap().api_url_file = None;
        receiver.slack.as_mut().unwrap().api_url = Some("https://hooks.slack.com/x".into());
        receiver.telegram.as_mut().unwrap().bot_token_file = None;
        receiver.telegram.as_mut().unwrap().bot_token = Some("1:x".into());
        let email = receiver.email.as_mut().unwrap();
        email.auth_password_file = None;
        email.auth_password = Some("p".into());
        config.validate().unwrap();
    }
}
