//! node_exporter's vmstat collector: the /proc/vmstat fields its default
//! `--collector.vmstat.fields` pattern `^(oom_kill|pgpg|pswp|pg.*fault).*`
//! selects, as untyped `node_vmstat_<field>`.

use super::{parse_number, ProcFile};
use crate::collect::Collector;
use crate::model::{Family, MetricKind};

pub struct Vmstat {
    file: ProcFile,
}

impl Vmstat {
    pub fn new() -> Vmstat {
        Vmstat {
            file: ProcFile::new("/proc/vmstat"),
        }
    }
}

impl Collector for Vmstat {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        for line in self.file.read()?.lines() {
            let Some((field, value)) = line.split_once(' ') else {
                continue;
            };
            if !exported(field) {
                continue;
            }
            let value: f64 = parse_number(value.trim(), field)?;
            let mut family = Family::new(
                format!("node_vmstat_{field}"),
                format!("/proc/vmstat information field {field}."),
                MetricKind::Untyped,
            );
            family.push(&[], value);
            out.push(family);
        }
        Ok(())
    }
}

/// Whether node_exporter's default pattern `^(oom_kill|pgpg|pswp|pg.*fault).*`
/// selects the field.
pub fn exported(field: &str) -> bool {
    field.starts_with("oom_kill")
        || field.starts_with("pgpg")
        || field.starts_with("pswp")
        || field
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_field_selection() {
        for field in [
            "oom_kill",
            "pgpgin",
            "pgpgout",
            "pswpin",
            "pgfault",
            "pgmajfault",
        ] {
            assert!(exported(field), "{field}");
        }
        for field in [
            "nr_free_pages",
            "pgfree",
            "workingset_refault_anon",
            "thp_fault_alloc",
        ] {
            assert!(!exported(field), "{field}");
        }
    }
}
