//! `sonde check rules`: rule files checked as `promtool check rules` checks
//! them, with its output and exit status.
//!
//! A file that does not load fails the check. A file that loads but holds
//! rules of the same name and labels gets promtool's duplicate-rule lint
//! report: printed as a failure, yet it fails the check only when lint
//! problems are made fatal (`--lint-fatal`).

use std::io::{self, Write};
use std::path::PathBuf;

use crate::alert::rulefile::{self, RuleFile};

/// The verdict on a set of rule files, as promtool's exit status says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every file loads and passes the lint (exit 0).
    Passed,
    /// Every file loads; some fail the lint (exit 0, or 3 when fatal).
    LintProblems,
    /// Some file does not load (exit 1).
    Failed,
}

/// Checks every file, printing `Checking FILE` and the verdict on `out`,
/// problems on `err`; with `lint`, also promtool's duplicate-rule lint.
pub fn check_rules(
    files: &[PathBuf],
    lint: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<Verdict> {
    let mut verdict = Verdict::Passed;
    for path in files {
        writeln!(out, "Checking {}", path.display())?;
        match rulefile::load(path) {
            Err(problems) => {
                verdict = Verdict::Failed;
                writeln!(err, "  FAILED:\n{problems}")?;
            }
            Ok(file) => match duplicates_report(&file).filter(|_| lint) {
                Some(report) => {
                    if verdict == Verdict::Passed {
                        verdict = Verdict::LintProblems;
                    }
                    writeln!(err, "  FAILED:\n{report}")?;
                }
                None => writeln!(out, "  SUCCESS: {} rules found", file.rule_count())?,
            },
        }
        writeln!(out)?;
    }
    Ok(verdict)
}

/// promtool's lint: rules of one file sharing a name (recorded metric or
/// alert) and labels, each such pair named once.
fn duplicates_report(file: &RuleFile) -> Option<String> {
    let mut rules: Vec<(&str, &[(String, String)])> = file
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| (r.name(), r.labels.as_slice()))
        .collect();
    rules.sort();
    let mut duplicates = rules
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[1])
        .collect::<Vec<_>>();
    duplicates.dedup();
    if duplicates.is_empty() {
        return None;
    }
    let mut report = format!("lint error {} duplicate rule(s) found.\n", duplicates.len());
    for (metric, labels) in duplicates {
        report.push_str(&format!("Metric: {metric}\nLabel(s):\n"));
        for (name, value) in labels {
            report.push_str(&format!("\t{name}: {value}\n"));
        }
    }
    report.push_str("Might cause inconsistency while recording expressions");
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[(&str, &str)], lint: bool) -> (Verdict, String, String) {
        let dir = std::env::temp_dir().join(format!(
            "sonde-check-rules-{}-{}",
            std::process::id(),
            files[0].0
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<PathBuf> = files
            .iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let verdict = check_rules(&paths, lint, &mut out, &mut err).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let text = |b: Vec<u8>| {
            String::from_utf8(b)
                .unwrap()
                .replace(&dir.display().to_string(), "D")
        };
        (verdict, text(out), text(err))
    }

    #[test]
    fn verdicts_and_output_as_promtool() {
        let (verdict, out, err) = check(
            &[
                (
                    "good.yml",
                    "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n",
                ),
                (
                    "bad.yml",
                    "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 1m\n",
                ),
            ],
            true,
        );
        assert_eq!(verdict, Verdict::Failed);
        assert_eq!(
            out,
            "Checking D/good.yml\n  SUCCESS: 1 rules found\n\nChecking D/bad.yml\n\n"
        );
        assert!(
            err.starts_with("  FAILED:\nD/bad.yml: group \"g\", rule 1"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_are_a_lint_problem() {
        let duplicates = (
            "dup.yml",
            "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n  - record: x\n    expr: up + 1\n  - alert: A\n    expr: up\n    labels: {s: '1'}\n  - alert: A\n    expr: up\n    labels: {s: '1'}\n  - alert: A\n    expr: up\n    labels: {s: '1'}\n",
        );
        let (verdict, out, err) = check(&[duplicates], true);
        assert_eq!(verdict, Verdict::LintProblems);
        assert_eq!(out, "Checking D/dup.yml\n\n");
        assert_eq!(
            err,
            "  FAILED:\nlint error 2 duplicate rule(s) found.\nMetric: A\nLabel(s):\n\ts: 1\nMetric: x\nLabel(s):\nMight cause inconsistency while recording expressions\n"
        );
        let (verdict, out, err) = check(&[duplicates], false);
        assert_eq!(verdict, Verdict::Passed);
        assert_eq!(out, "Checking D/dup.yml\n  SUCCESS: 5 rules found\n\n");
        assert_eq!(err, "");
    }
}
