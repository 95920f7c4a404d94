//! `sonde check rules`: rule files checked as `promtool check rules` checks
//! them, with its output and exit status.
//!
//! A file that does not load fails the check. A file that loads but holds
//! rules of the same name and labels gets promtool's duplicate-rule lint
//! report: printed as a failure, yet (as promtool's default, non-fatal
//! lint) it does not fail the check.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::alert::rulefile::{self, RuleFile};

/// Checks every file, printing `Checking FILE` and the verdict on `out`,
/// problems on `err`. True when no file has an error.
pub fn check_rules(
    files: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    let mut passed = true;
    for path in files {
        writeln!(out, "Checking {}", path.display())?;
        match rulefile::load(path) {
            Err(problems) => {
                passed = false;
                writeln!(err, "  FAILED:\n{problems}")?;
            }
            Ok(file) => match duplicates_report(&file) {
                Some(report) => writeln!(err, "  FAILED:\n{report}")?,
                None => writeln!(out, "  SUCCESS: {} rules found", file.rule_count())?,
            },
        }
        writeln!(out)?;
    }
    Ok(passed)
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

    fn check(files: &[(&str, &str)]) -> (bool, String, String) {
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
        let passed = check_rules(&paths, &mut out, &mut err).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let text = |b: Vec<u8>| {
            String::from_utf8(b)
                .unwrap()
                .replace(&dir.display().to_string(), "D")
        };
        (passed, text(out), text(err))
    }

    #[test]
    fn verdicts_and_output_as_promtool() {
        let (passed, out, err) = check(&[
            (
                "good.yml",
                "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n",
            ),
            (
                "bad.yml",
                "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 1m\n",
            ),
        ]);
        assert!(!passed);
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
    fn duplicates_are_reported_without_failing() {
        let (passed, out, err) = check(&[(
            "dup.yml",
            "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n  - record: x\n    expr: up + 1\n  - alert: A\n    expr: up\n    labels: {s: '1'}\n  - alert: A\n    expr: up\n    labels: {s: '1'}\n  - alert: A\n    expr: up\n    labels: {s: '1'}\n",
        )]);
        assert!(passed);
        assert_eq!(out, "Checking D/dup.yml\n\n");
        assert_eq!(
            err,
            "  FAILED:\nlint error 2 duplicate rule(s) found.\nMetric: A\nLabel(s):\n\ts: 1\nMetric: x\nLabel(s):\nMight cause inconsistency while recording expressions\n"
        );
    }
}
