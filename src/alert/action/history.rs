//! The last runs of every action, newest first, for the Alerts view: what
//! ran for which alert, how it ended and what it printed. Bounded to
//! [`KEPT`] runs in memory; the log keeps every run and
//! `sonde_actions_total` counts them, so what falls off here is only the
//! detail of old runs, and a restart forgets it.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Outcome;

/// Runs kept; enough to see a flapping alert's last hours of actions.
pub const KEPT: usize = 50;

/// Output kept per run for the page (the log has up to 4 KiB).
const OUTPUT_SHOWN: usize = 512;

/// One decision about one alert: a run, a dry run, or a run refused
/// before it started (a failing template, a full queue).
#[derive(Clone, Debug)]
pub struct Run {
    pub at_ms: i64,
    pub action: String,
    /// The alert's labels, as `{alertname="…", …}`.
    pub alert: String,
    pub outcome: Outcome,
    /// "exit status 3", "killed at the 1s timeout", "would run […]".
    pub detail: String,
    /// Seconds the command ran; `None` when nothing ran.
    pub took: Option<f64>,
    /// The first bytes of its output.
    pub output: String,
}

#[derive(Default)]
pub struct History {
    runs: Mutex<VecDeque<Run>>,
}

impl History {
    pub fn record(&self, mut run: Run) {
        if run.output.len() > OUTPUT_SHOWN {
            let mut end = OUTPUT_SHOWN;
            while !run.output.is_char_boundary(end) {
                end -= 1;
            }
            run.output.truncate(end);
            run.output.push('…');
        }
        let mut runs = self.runs.lock().expect("lock poisoned");
        if runs.len() == KEPT {
            runs.pop_back();
        }
        runs.push_front(run);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Run> {
        self.runs
            .lock()
            .expect("lock poisoned")
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, output: String) -> Run {
        Run {
            at_ms: n as i64,
            action: format!("a{n}"),
            alert: String::new(),
            outcome: Outcome::Ok,
            detail: String::new(),
            took: None,
            output,
        }
    }

    #[test]
    fn keeps_the_newest_runs_first_and_cuts_long_output_on_a_char() {
        let history = History::default();
        for n in 0..KEPT + 5 {
            history.record(run(n, String::new()));
        }
        let recent = history.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].at_ms, (KEPT + 4) as i64);
        assert_eq!(recent[KEPT - 1].at_ms, 5);

        history.record(run(0, "é".repeat(OUTPUT_SHOWN)));
        let output = &history.recent()[0].output;
        assert_eq!(output.len(), OUTPUT_SHOWN + '…'.len_utf8());
        assert!(output.ends_with('…'));
    }
}
