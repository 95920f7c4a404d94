//! Alerting: Prometheus rule files evaluated inside sonde, and what becomes
//! of the alerts they raise.
//!
//! - [`template`]: Go's text/template with Prometheus's functions, for
//!   annotations and labels (`{{ $labels.instance }}`, `{{ humanize $value }}`).
//! - [`notify`]: the built-in receivers (webhook, Slack, Telegram, e-mail),
//!   routing, grouping, silences and inhibition, for the single-server owner
//!   who runs no Alertmanager.
//!
//! Every alert leaves a rule group as an [`Alert`], the shape Alertmanager's
//! API v2 takes, whether it goes to an Alertmanager or to [`notify`].

pub mod notify;
pub mod template;

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
