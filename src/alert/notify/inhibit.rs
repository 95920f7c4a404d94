//! Inhibition, as Alertmanager does it: while an alert matching a rule's
//! source matchers fires, alerts matching its target matchers that have
//! the same values for every `equal` label (absent counts as empty) are
//! muted. An alert that matches both sides is never muted by itself nor
//! by another alert that matches both sides, so a rule cannot make two
//! alerts mute each other.

use anyhow::Context;

use super::config::InhibitRuleConfig;
use super::matcher;
use super::notification::Fingerprint;
use crate::model::{Labels, Matcher};

#[derive(Clone, Debug)]
pub struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

impl InhibitRule {
    /// The rule from `[[notify.inhibit_rules]]` number `index`.
    pub fn build(config: &InhibitRuleConfig, index: usize) -> anyhow::Result<InhibitRule> {
        let key = format!("notify.inhibit_rules[{index}]");
        let parse = |name: &str, texts: &[String]| {
            texts
                .iter()
                .map(|t| matcher::parse(t).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("key {key}.{name}"))
        };
        if let Some(bad) = config.equal.iter().find(|n| !matcher::is_label_name(n)) {
            anyhow::bail!("key {key}.equal: {bad:?} is not a label name");
        }
        Ok(InhibitRule {
            source: parse("source_matchers", &config.source_matchers)?,
            target: parse("target_matchers", &config.target_matchers)?,
            equal: config.equal.clone(),
        })
    }
}

/// The rules with the firing alerts each could be inhibited by, gathered
/// once for a round of questions.
pub struct Inhibitor<'a> {
    rules: Vec<(&'a InhibitRule, Vec<(Fingerprint, &'a Labels)>)>,
}

impl<'a> Inhibitor<'a> {
    /// `firing`: every alert that fires now.
    pub fn new(
        rules: &'a [InhibitRule],
        firing: impl Iterator<Item = (Fingerprint, &'a Labels)> + Clone,
    ) -> Inhibitor<'a> {
        let rules = rules
            .iter()
            .map(|rule| {
                let sources = firing
                    .clone()
                    .filter(|(_, labels)| matcher::all_match(&rule.source, labels))
                    .collect();
                (rule, sources)
            })
            .collect();
        Inhibitor { rules }
    }

    /// The fingerprint of an alert that mutes `labels`, if any does.
    pub fn inhibited_by(&self, labels: &Labels) -> Option<Fingerprint> {
        for (rule, sources) in &self.rules {
            if !matcher::all_match(&rule.target, labels) {
                continue;
            }
            let two_sided = matcher::all_match(&rule.source, labels);
            let source = sources.iter().find(|(_, source)| {
                rule.equal.iter().all(|n| source.get(n) == labels.get(n))
                    && !(two_sided && matcher::all_match(&rule.target, source))
            });
            if let Some((fp, _)) = source {
                return Some(*fp);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule::build(
            &InhibitRuleConfig {
                source_matchers: vec![source.into()],
                target_matchers: vec![target.into()],
                equal: equal.iter().map(|s| s.to_string()).collect(),
            },
            0,
        )
        .unwrap()
    }

    #[test]
    fn firing_source_mutes_targets_with_equal_labels() {
        let rules = [rule(
            r#"severity="critical""#,
            r#"severity="warning""#,
            &["instance"],
        )];
        let critical = Labels::new([("severity", "critical"), ("instance", "a")]);
        let firing = [(7, &critical)];
        let inhibitor = Inhibitor::new(&rules, firing.iter().copied());
        let warning =
            |instance: &str| Labels::new([("severity", "warning"), ("instance", instance)]);
        assert_eq!(inhibitor.inhibited_by(&warning("a")), Some(7));
        assert_eq!(inhibitor.inhibited_by(&warning("b")), None);
        assert_eq!(inhibitor.inhibited_by(&critical), None);
    }

    #[test]
    fn alert_matching_both_sides_does_not_mute_itself() {
        let rules = [rule(r#"team="db""#, r#"team="db""#, &[])];
        let a = Labels::new([("team", "db"), ("x", "1")]);
        let b = Labels::new([("team", "db"), ("x", "2")]);
        let firing = [(1, &a), (2, &b)];
        let inhibitor = Inhibitor::new(&rules, firing.iter().copied());
        assert_eq!(inhibitor.inhibited_by(&a), None);
        assert_eq!(inhibitor.inhibited_by(&b), None);
    }

    #[test]
    fn bad_rules_name_the_key() {
        let config = InhibitRuleConfig {
            source_matchers: vec!["nope".into()],
            ..Default::default()
        };
        let err = format!("{:#}", InhibitRule::build(&config, 2).unwrap_err());
        assert!(
            err.contains("notify.inhibit_rules[2].source_matchers"),
            "{err}"
        );
    }
}
