//! node_exporter's meminfo collector: one gauge per line of /proc/meminfo,
//! `node_memory_<Field>_bytes` for fields in kB (converted to bytes) and
//! `node_memory_<Field>` for counts (`HugePages_Total`). `Active(anon)`
//! becomes `Active_anon`. The names keep the kernel's CamelCase, as
//! node_exporter's do, so dashboards find them.

use super::{parse_number, ProcFile};
use crate::collect::Collector;
use crate::model::Family;

pub struct Meminfo {
    file: ProcFile,
}

impl Meminfo {
    pub fn new() -> Meminfo {
        Meminfo {
            file: ProcFile::new("/proc/meminfo"),
        }
    }
}

impl Collector for Meminfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        parse_meminfo(self.file.read()?, |name, value| {
            let mut family = Family::gauge(
                format!("node_memory_{name}"),
                format!("Memory information field {name}."),
            );
            family.push(&[], value);
            out.push(family);
        })
    }
}

/// Calls `field` with each line's metric name suffix and value.
pub fn parse_meminfo(text: &str, mut field: impl FnMut(&str, f64)) -> anyhow::Result<()> {
    let mut name = String::with_capacity(32);
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue; // some old kernels print blank lines
        };
        let key = key.strip_suffix(':').unwrap_or(key);
        let mut value: f64 = parse_number(value, key)?;
        name.clear();
        match key.split_once('(') {
            Some((base, inner)) => {
                name.push_str(base);
                name.push('_');
                name.push_str(inner.strip_suffix(')').unwrap_or(inner));
            }
            None => name.push_str(key),
        }
        match parts.next() {
            None => {}
            Some("kB") => {
                value *= 1024.0;
                name.push_str("_bytes");
            }
            Some(unit) => anyhow::bail!("/proc/meminfo {key}: unknown unit {unit:?}"),
        }
        field(&name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_names_and_bytes() {
        let text = "MemTotal:       24684084 kB\nActive(anon):       1560 kB\n\
                    HugePages_Total:       0\nHugepagesize:       2048 kB\n\n";
        let mut seen = Vec::new();
        parse_meminfo(text, |name, value| seen.push((name.to_string(), value))).unwrap();
        assert_eq!(
            seen,
            [
                ("MemTotal_bytes".to_string(), 24684084.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 1560.0 * 1024.0),
                ("HugePages_Total".to_string(), 0.0),
                ("Hugepagesize_bytes".to_string(), 2048.0 * 1024.0),
            ]
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse_meminfo("MemTotal: lots kB\n", |_, _| {}).is_err());
        assert!(parse_meminfo("MemTotal: 1 MB\n", |_, _| {}).is_err());
    }
}
