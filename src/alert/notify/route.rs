//! The routing tree: which receivers an alert goes to and how it is grouped
//! there. An alert enters at the root and descends into the first child
//! whose matchers it matches, and on into later siblings only while the
//! matched child says `continue`; the deepest routes matched are the
//! alert's routes, the root when no child matches. Unset settings are
//! inherited from the parent.

use std::time::Duration;

use anyhow::bail;

use super::config::RouteConfig;
use super::matcher;
use crate::model::{Labels, Matcher};

/// The root route's config key, which errors name.
const ROOT: &str = "notify.route";

/// Which labels split a route's alerts into aggregation groups.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// `group_by = ["..."]`: every label; one group per alert.
    All,
    Labels(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct Route {
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    routes: Vec<Route>,
    /// Alertmanager's route key (`{}/{severity="critical"}`): the first
    /// part of the group keys of this route's groups. Siblings with the
    /// same matchers share it, hence [`Route::id`].
    pub key: String,
    /// The route's place in the tree (depth first, the root 0): two routes
    /// never share a group.
    pub id: usize,
}

impl Route {
    /// The tree from `[notify.route]`; every receiver named must be one of
    /// `receivers`.
    pub fn build(config: &RouteConfig, receivers: &[&str]) -> anyhow::Result<Route> {
        let key = ROOT;
        let Some(receiver) = &config.receiver else {
            bail!("key {key}.receiver: expected the name of the default receiver");
        };
        if !config.matchers.is_empty() {
            bail!(
                "key {key}.matchers: the root route matches every alert, it cannot have matchers"
            );
        }
        if config.continue_matching {
            bail!("key {key}.continue: the root route cannot continue");
        }
        let root = Route {
            receiver: receiver.clone(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: Vec::new(),
            continue_matching: false,
            routes: Vec::new(),
            key: "{}".into(),
            id: 0,
        };
        Route::inherit(config, &root, key, receivers, &mut 0)
    }

    /// A route from its config, inheriting what it leaves unset from
    /// `parent`; `key` names it in errors.
    fn inherit(
        config: &RouteConfig,
        parent: &Route,
        key: &str,
        receivers: &[&str],
        next_id: &mut usize,
    ) -> anyhow::Result<Route> {
        let receiver = config.receiver.clone().unwrap_or(parent.receiver.clone());
        if !receivers.contains(&receiver.as_str()) {
            bail!(
                "key {key}.receiver: no [[notify.receivers]] is named {receiver:?} (receivers: {})",
                receivers.join(", ")
            );
        }
        let group_by = match &config.group_by {
            None => parent.group_by.clone(),
            Some(names) if names.iter().any(|n| n == "...") => {
                if names.len() > 1 {
                    bail!("key {key}.group_by: \"...\" (all labels) cannot be listed with other labels");
                }
                GroupBy::All
            }
            Some(names) => {
                if let Some(bad) = names.iter().find(|n| !matcher::is_label_name(n)) {
                    bail!("key {key}.group_by: {bad:?} is not a label name");
                }
                GroupBy::Labels(names.clone())
            }
        };
        let positive = |name: &str, value: Option<Duration>, inherited: Duration| {
            let value = value.unwrap_or(inherited);
            if value.is_zero() && name != "group_wait" {
                bail!("key {key}.{name}: expected more than 0s");
            }
            Ok(value)
        };
        let mut matchers = config
            .matchers
            .iter()
            .map(|text| {
                matcher::parse(text).map_err(|err| anyhow::anyhow!("key {key}.matchers: {err}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        matchers.sort_by_cached_key(matcher::to_string);
        let shown: Vec<String> = matchers.iter().map(matcher::to_string).collect();
        let mut route = Route {
            receiver,
            group_by,
            group_wait: positive("group_wait", config.group_wait, parent.group_wait)?,
            group_interval: positive(
                "group_interval",
                config.group_interval,
                parent.group_interval,
            )?,
            repeat_interval: positive(
                "repeat_interval",
                config.repeat_interval,
                parent.repeat_interval,
            )?,
            matchers,
            continue_matching: config.continue_matching,
            routes: Vec::new(),
            key: if key == ROOT {
                "{}".into()
            } else {
                format!("{}/{{{}}}", parent.key, shown.join(","))
            },
            id: *next_id,
        };
        *next_id += 1;
        for (index, child) in config.routes.iter().enumerate() {
            let child_key = format!("{key}.routes[{index}]");
            let child = Route::inherit(child, &route, &child_key, receivers, next_id)?;
            route.routes.push(child);
        }
        Ok(route)
    }

    /// The routes `labels` go to, in tree order.
    pub fn matches(&self, labels: &Labels) -> Vec<&Route> {
        if !matcher::all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut matched = Vec::new();
        for child in &self.routes {
            let found = child.matches(labels);
            let stop = !found.is_empty() && !child.continue_matching;
            matched.extend(found);
            if stop {
                break;
            }
        }
        if matched.is_empty() {
            matched.push(self);
        }
        matched
    }

    /// The labels of the group an alert with `labels` joins on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => Labels::new(
                names
                    .iter()
                    .filter_map(|name| labels.get(name).map(|value| (name.as_str(), value))),
            ),
        }
    }
}

/// Alertmanager's group key: the route key, a colon, the group labels as
/// Prometheus's model prints a label set (`{a="1", b="2"}`).
pub fn group_key(route: &Route, group_labels: &Labels) -> String {
    let pairs: Vec<String> = group_labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{}:{{{}}}", route.key, pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> anyhow::Result<Route> {
        let config: RouteConfig = toml::from_str(text).unwrap();
        Route::build(&config, &["default", "pager", "chat"])
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let root = tree(
            r#"
            receiver = "default"
            group_by = ["alertname"]
            [[routes]]
            matchers = ['severity="critical"']
            receiver = "pager"
            continue = true
            group_wait = "1s"
            [[routes]]
            matchers = ['team=~"db|web"']
            receiver = "chat"
            group_by = ["..."]
            [[routes]]
            matchers = ['team="web"']
            receiver = "pager"
            "#,
        )
        .unwrap();
        let names = |labels: Labels| -> Vec<String> {
            root.matches(&labels)
                .iter()
                .map(|r| r.receiver.clone())
                .collect()
        };
        assert_eq!(
            names(Labels::new([("severity", "critical"), ("team", "web")])),
            ["pager", "chat"]
        );
        assert_eq!(names(Labels::new([("team", "web")])), ["chat"]);
        assert_eq!(names(Labels::new([("team", "ops")])), ["default"]);
        let critical = Labels::new([("alertname", "Down"), ("severity", "critical")]);
        let route = root.matches(&critical)[0];
        assert_eq!(route.group_wait, Duration::from_secs(1));
        assert_eq!(route.group_interval, Duration::from_secs(300));
        assert_eq!(route.key, r#"{}/{severity="critical"}"#);
        assert_eq!((root.id, route.id), (0, 1));
        assert_eq!(
            group_key(route, &route.group_labels(&critical)),
            r#"{}/{severity="critical"}:{alertname="Down"}"#
        );
        let chat = root.matches(&Labels::new([("team", "db"), ("x", "1")]))[0];
        assert_eq!(chat.group_by, GroupBy::All);
        assert_eq!(chat.group_labels(&Labels::new([("team", "db")])).len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: &str| format!("{:#}", tree(text).unwrap_err());
        assert!(err("").contains("notify.route.receiver"));
        let unknown = err("receiver = \"default\"\n[[routes]]\nreceiver = \"nobody\"\n");
        assert!(
            unknown.contains("notify.route.routes[0].receiver") && unknown.contains("nobody"),
            "{unknown}"
        );
        assert!(
            err("receiver = \"default\"\n[[routes]]\nmatchers = ['x']\n")
                .contains("routes[0].matchers")
        );
        assert!(err("receiver = \"default\"\ngroup_by = [\"...\", \"a\"]\n").contains("group_by"));
        assert!(err("receiver = \"default\"\ngroup_interval = \"0s\"\n").contains("group_interval"));
        assert!(err("receiver = \"default\"\nmatchers = ['a=\"b\"']\n")
            .contains("cannot have matchers"));
    }
}
