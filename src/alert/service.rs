//! What `[alerting]` starts inside `sonde run`: the rule manager, the
//! senders its alerts go to, and reloading both from the config file
//! (SIGHUP, `POST /-/reload`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::alert::action::{self, Actions};
use crate::alert::alertmanager::Alertmanagers;
use crate::alert::group::SampleSink;
use crate::alert::manager::{now_ms, AlertSender, RuleManager, Settings};
use crate::alert::notify::Notifier;
use crate::alert::sequence::spec::EventRuleSpec;
use crate::alert::sequence::{self, EventRules, External};
use crate::alert::Alert;
use crate::config::Config;
use crate::model::{Family, Labels, Sample};
use crate::query::Limits;
use crate::store::Store;

pub struct Alerting {
    pub rules: RuleManager,
    alertmanagers: Arc<Alertmanagers>,
    /// The built-in receivers, routes, silences and inhibition (`[notify]`).
    pub notifier: Notifier,
    /// Commands firing alerts run (`[[alerting.actions]]`).
    pub actions: Actions,
    /// The file `sonde run` read, read again at each reload.
    config_path: Option<PathBuf>,
    /// Where a reload hands the new `[programs]` to their collector.
    pub programs: Option<crate::collect::programs::Reload>,
    /// The event rules, subscribed to the kernel event stream.
    events: Arc<EventRules>,
}

impl Alerting {
    /// Loads the rule files (a bad one refuses to start, naming it),
    /// restores alert state from the store's database and starts the
    /// senders.
    pub fn start(config: &Config, config_path: Option<&Path>) -> anyhow::Result<Alerting> {
        let alertmanagers = Arc::new(Alertmanagers::start(&config.alerting.alertmanagers)?);
        let mut senders: Vec<Arc<dyn AlertSender>> = vec![alertmanagers.clone()];
        let notifier = Notifier::start(
            &config.notify,
            &config.storage.database_file(),
            &external_url(config),
        )
        .context("[notify]")?;
        senders.push(Arc::new(notifier.clone()));
        let actions = Actions::start(
            action::config::build(&config.alerting.actions).map_err(anyhow::Error::msg)?,
            config.alerting.max_running_actions,
            Labels::new(config.alerting.external_labels.clone()),
            external_url(config),
        );
        senders.push(Arc::new(actions.clone()));
        let rules = RuleManager::start(
            settings(config),
            Some(&config.storage.database_file()),
            senders.clone(),
            now_ms(),
        )?;
        let events = Arc::new(EventRules::new(
            event_rules(&rules),
            senders,
            event_external(config),
        ));
        crate::collect::events::stream().subscribe(events.clone());
        Ok(Alerting {
            rules,
            alertmanagers,
            notifier,
            actions,
            config_path: config_path.map(Path::to_path_buf),
            programs: None,
            events,
        })
    }

    /// Reads the config file again and reloads the rule files and the
    /// Alertmanagers; on any error everything keeps running as it was.
    pub fn reload(&self) -> Result<(), String> {
        let config = match &self.config_path {
            Some(path) => {
                Config::load(path).map_err(|err| self.rules.refuse_reload(format!("{err:#}")))?
            }
            None => Config::default(),
        };
        self.notifier
            .reload(&config.notify)
            .map_err(|err| self.rules.refuse_reload(format!("[notify]: {err:#}")))?;
        let actions = action::config::build(&config.alerting.actions)
            .map_err(|err| self.rules.refuse_reload(err))?;
        self.rules.reload(settings(&config), now_ms())?;
        self.events
            .reload(event_rules(&self.rules), event_external(&config));
        // The worker count stays as started: max_running_actions changes
        // at a restart.
        self.actions.set_actions(
            actions,
            Labels::new(config.alerting.external_labels.clone()),
            external_url(&config),
        );
        self.alertmanagers.set_urls(&config.alerting.alertmanagers);
        if let Some(programs) = &self.programs {
            programs.request(config.programs);
        }
        Ok(())
    }

    /// Evaluates the rules over the store until `stop`.
    pub fn run(&self, store: &Mutex<Store>, stop: &AtomicBool) {
        self.rules.run(store, store, &Limits::default(), stop);
    }

    /// The event rules' alerts firing at `now_ms` (see
    /// [`EventRules::firing`]).
    pub fn firing_event_alerts(&self, now_ms: i64) -> Vec<crate::alert::Alert> {
        self.events.firing(now_ms)
    }

    pub fn families(&self) -> Vec<Family> {
        let mut families = self.rules.families();
        families.extend(self.alertmanagers.families());
        families.extend(self.notifier.families());
        families.extend(self.actions.families());
        families.extend(self.events.families());
        families
    }
}

/// The event rules of the groups `rules` runs.
fn event_rules(rules: &RuleManager) -> Vec<EventRuleSpec> {
    let loaded = rules.loaded();
    let groups: Vec<_> = loaded.groups.iter().map(|group| &group.spec).collect();
    sequence::specs(&groups)
}

fn event_external(config: &Config) -> External {
    External {
        labels: Labels::new(config.alerting.external_labels.clone()),
        url: external_url(config),
    }
}

fn settings(config: &Config) -> Settings {
    Settings::new(&config.alerting, external_url(config))
}

/// `[alerting] external_url`, or the address sonde listens on.
fn external_url(config: &Config) -> String {
    config
        .alerting
        .external_url
        .clone()
        .unwrap_or_else(|| config.server.url())
}

/// Alerts from the rules go to the built-in notifier as to an
/// Alertmanager.
impl AlertSender for Notifier {
    fn send(&self, alerts: &[Alert]) {
        Notifier::send(self, alerts.to_vec());
    }
}

/// Recorded series and alert states go into the store like collected
/// samples (and so to remote write too).
impl SampleSink for Mutex<Store> {
    fn append(&self, samples: &[Sample]) -> anyhow::Result<()> {
        self.lock()
            .map_err(|_| anyhow::anyhow!("the store lock is poisoned"))?
            .append(samples)
    }
}
