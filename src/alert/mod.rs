//! Alerting: Prometheus rule files evaluated inside sonde, and what becomes
//! of the alerts they raise.
//!
//! - [`template`]: Go's text/template with Prometheus's functions, for
//!   annotations and labels (`{{ $labels.instance }}`, `{{ humanize $value }}`).
//! - [`check`] and [`unittest`]: `sonde check rules` and `sonde test rules`,
//!   promtool's checks and rule unit tests.
//! - [`notify`]: the built-in receivers (webhook, Slack, Telegram, e-mail),
//!   routing, grouping, silences and inhibition, for the single-server owner
//!   who runs no Alertmanager.
//!
//! Every alert leaves a rule group as an [`Alert`], the shape Alertmanager's
//! API v2 takes, whether it goes to an Alertmanager or to [`notify`].

pub mod alertmanager;
pub mod check;
pub mod group;
pub mod manager;
pub mod notify;
pub mod persist;
pub mod rule;
pub mod rulefile;
pub mod service;
pub mod template;
pub mod unittest;

use crate::model::Labels;

/// An alert as Alertmanager's `POST /api/v2/alerts` takes it (a
/// `postableAlert`): a firing alert has `ends_at_ms` in the future (the rule
/// group's resend deadline), a resolved one the instant it resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The alert's identity: the rule's name as `alertname`, the series'
    /// labels and the rule's own labels, with the external labels added.
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// Where to see the expression that raised it: sonde's graph page.
    pub generator_url: String,
}

impl Alert {
    /// Resolved once its end has passed.
    pub fn resolved_at(&self, now_ms: i64) -> bool {
        self.ends_at_ms <= now_ms
    }
}

/// An instant as Go's `time.Time` writes itself in JSON (RFC 3339 in UTC,
/// the fraction without trailing zeros), which Alertmanager and Prometheus's
/// APIs use.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let of_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = crate::query::civil_from_days(days);
    let (hour, minute, second, millis) = (
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000,
    );
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_string()
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_read_as_go_writes_them() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_214_300_120), "2024-02-29T13:45:00.12Z");
    }
}
