//! `[[alerting.actions]]`: which firing alerts run which command, parsed
//! from sonde's TOML and checked into [`Action`]s. An error names the key
//! (`alerting.actions[1].command[0]`) and what was expected.

use std::time::Duration;

use serde::Deserialize;

use crate::alert::notify::parse_matcher;
use crate::alert::template;
use crate::config::duration;
use crate::model::{Labels, Matcher};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// The `action` label of `sonde_actions_total`, and the name in the log.
    pub name: String,
    /// Alertmanager matchers (`alertname="SyscallFlood"`); an alert runs the
    /// action when all match. At least one is required, so no action runs
    /// for every alert by accident.
    pub matchers: Vec<String>,
    /// The program (an absolute path, no `PATH` lookup, no shell) and its
    /// arguments, each a template over the alert (`{{ $labels.comm }}`,
    /// `{{ $value }}`).
    pub command: Vec<String>,
    /// The process (and its process group) is killed at this age.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// The least time between two runs for the same alert.
    #[serde(deserialize_with = "duration")]
    pub min_interval: Duration,
    /// Log the command instead of running it.
    pub dry_run: bool,
}

impl Default for ActionConfig {
    fn default() -> Self {
        ActionConfig {
            name: String::new(),
            matchers: Vec::new(),
            command: Vec::new(),
            timeout: Duration::from_secs(30),
            min_interval: Duration::from_secs(600),
            dry_run: false,
        }
    }
}

/// An action ready to run: its matchers compiled, its templates parsed.
#[derive(Clone, Debug)]
pub struct Action {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub command: Vec<String>,
    pub timeout: Duration,
    pub min_interval: Duration,
    pub dry_run: bool,
}

impl Action {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// Checks every action; the error names the first key at fault.
pub fn build(configs: &[ActionConfig]) -> Result<Vec<Action>, String> {
    let mut names = std::collections::HashSet::new();
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| {
            let key = format!("alerting.actions[{index}]");
            if config.name.is_empty() {
                return Err(format!("key {key}.name: expected a name, got none"));
            }
            if !names.insert(config.name.as_str()) {
                return Err(format!(
                    "key {key}.name: {:?} is taken by an earlier action, give each a distinct name",
                    config.name
                ));
            }
            build_one(config, &key)
        })
        .collect()
}

fn build_one(config: &ActionConfig, key: &str) -> Result<Action, String> {
    if config.matchers.is_empty() {
        return Err(format!(
            "key {key}.matchers: expected at least one matcher such as 'alertname=\"MyAlert\"'"
        ));
    }
    let matchers = config
        .matchers
        .iter()
        .map(|text| parse_matcher(text).map_err(|err| format!("key {key}.matchers: {err}")))
        .collect::<Result<Vec<_>, _>>()?;
    match config.command.first() {
        None => return Err(format!("key {key}.command: expected [\"/path/to/program\", \"argument\", ...], got an empty list")),
        Some(program) if !program.starts_with('/') => {
            return Err(format!(
                "key {key}.command[0]: expected an absolute path to the program (no PATH lookup), got {program:?}"
            ))
        }
        Some(_) => {}
    }
    for (index, argument) in config.command.iter().enumerate() {
        template::check(&config.name, argument)
            .map_err(|err| format!("key {key}.command[{index}]: {err}"))?;
    }
    if config.timeout.is_zero() {
        return Err(format!("key {key}.timeout: expected more than 0s"));
    }
    Ok(Action {
        name: config.name.clone(),
        matchers,
        command: config.command.clone(),
        timeout: config.timeout,
        min_interval: config.min_interval,
        dry_run: config.dry_run,
    })
}

/// `sonde doctor`'s line on actions: how many, and whether each program is
/// there to run; a missing or non-executable program (which `sonde run`
/// accepts, the program may come later) is an error naming its key.
pub fn doctor(configs: &[ActionConfig]) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let actions = build(configs).map_err(anyhow::Error::msg)?;
    if actions.is_empty() {
        return Ok("none configured ([[alerting.actions]])".to_string());
    }
    let mut described = Vec::new();
    for (index, action) in actions.iter().enumerate() {
        let program = &action.command[0];
        let key = format!("alerting.actions[{index}].command[0]");
        let metadata = std::fs::metadata(program).map_err(|err| {
            anyhow::anyhow!(
                "action {:?}: {program}: {err}; create it or fix {key}",
                action.name
            )
        })?;
        if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
            anyhow::bail!(
                "action {:?}: {program} is not an executable file; chmod +x it or fix {key}",
                action.name
            );
        }
        let mode = if action.dry_run { ", dry run" } else { "" };
        described.push(format!("{} ({program}{mode})", action.name));
    }
    Ok(format!(
        "{} configured: {}; commands run without sonde's capabilities",
        actions.len(),
        described.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(command: &[&str]) -> ActionConfig {
        ActionConfig {
            name: "restart".into(),
            matchers: vec!["alertname=\"Hung\"".into()],
            command: command.iter().map(|s| s.to_string()).collect(),
            ..ActionConfig::default()
        }
    }

    #[test]
    fn packaged_example_parses_to_the_defaults() {
        let text = include_str!("../../../packaging/sonde.toml");
        let start = text.find("# [[alerting.actions]]\n# #").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        // The example's table and keys, uncommented, read as one action.
        let example: String = text[start..end]
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| line.contains(" = "))
            .map(|line| format!("{line}\n"))
            .collect();
        let config: ActionConfig = toml::from_str(&example).unwrap();
        let defaults = ActionConfig::default();
        assert_eq!(config.timeout, defaults.timeout);
        assert_eq!(config.min_interval, defaults.min_interval);
        assert_eq!(config.dry_run, defaults.dry_run);
        assert_eq!(build(&[config]).unwrap()[0].name, "kill-flooder");
    }

    #[test]
    fn errors_name_the_key() {
        let err = build(&[config(&["systemctl", "restart"])]).unwrap_err();
        assert!(err.starts_with("key alerting.actions[0].command[0]: expected an absolute path"));
        let err = build(&[config(&["/bin/systemctl", "{{ $labels.unit "])]).unwrap_err();
        assert!(
            err.starts_with("key alerting.actions[0].command[1]: "),
            "{err}"
        );
        let mut bad = config(&["/bin/true"]);
        bad.matchers = vec!["alertname=~\"(\"".into()];
        let err = build(&[bad]).unwrap_err();
        assert!(
            err.starts_with("key alerting.actions[0].matchers: "),
            "{err}"
        );
        let twice = build(&[config(&["/bin/true"]), config(&["/bin/true"])]).unwrap_err();
        assert!(twice.starts_with("key alerting.actions[1].name: \"restart\" is taken"));
        let mut none = config(&["/bin/true"]);
        none.matchers.clear();
        assert!(build(&[none]).unwrap_err().contains("at least one matcher"));
    }
}
