//! Alerting: Prometheus rule files evaluated inside sonde, and what becomes
//! of the alerts they raise. The way of a rule, one module a step:
//!
//! - [`rulefile`] reads and checks rule files; [`manager`] loads them, runs
//!   each [`group`] on its slot (its rules in order at one timestamp, stale
//!   markers for series that end) and reloads them; [`rule`] is one rule's
//!   evaluation and the alert state machine; [`persist`] keeps alert state
//!   across restarts in `sonde.db`; [`service`] is what `sonde run` starts.
//! - [`baseline`]: sonde's dynamic thresholds in rule files (a band learned
//!   from the series' rollups, hysteresis, anti-flap), between a rule's
//!   expression and its alert state machine.
//! - [`template`]: Go's text/template with Prometheus's functions, for
//!   annotations and labels (`{{ $labels.instance }}`, `{{ humanize $value }}`).
//! - Alerts go out through [`manager::AlertSender`]s: [`alertmanager`] posts
//!   them to Alertmanagers as Prometheus does; [`notify`] is the built-in
//!   notifier (webhook, Slack, Telegram, e-mail; routing, grouping, silences
//!   and inhibition) for the single-server owner who runs no Alertmanager.
//! - [`sequence`]: event rules, sonde's extension of the rule file: alerts
//!   on kernel events (one, or an ordered sequence within a span) as they
//!   happen, through the same senders.
//! - [`action`]: commands firing alerts run (`[[alerting.actions]]`), off
//!   unless configured.
//! - [`check`] and [`unittest`]: `sonde check rules` and `sonde test rules`,
//!   promtool's checks and rule unit tests on the same engine.
//!
//! Every alert leaves a rule group as an [`Alert`], the shape Alertmanager's
//! API v2 takes, whether it goes to an Alertmanager or to [`notify`].

pub mod action;
pub mod alertmanager;
pub mod baseline;
pub mod check;
pub mod group;
pub mod manager;
pub mod notify;
pub mod persist;
pub mod rule;
pub mod rulefile;
pub mod sequence;
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
    /// The expression's value when the alert was last evaluated (the
    /// templates' `$value`); not sent to Alertmanagers, whose API has no
    /// place for it, but an action's arguments may use it.
    pub value: f64,
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

pub use crate::civil::rfc3339;
