//! node_exporter's loadavg collector: `node_load1`, `node_load5` and
//! `node_load15` from /proc/loadavg.

use super::{parse_number, ProcFile};
use crate::collect::Collector;
use crate::model::Family;

pub struct Loadavg {
    file: ProcFile,
}

impl Loadavg {
    pub fn new() -> Loadavg {
        Loadavg {
            file: ProcFile::new("/proc/loadavg"),
        }
    }
}

impl Collector for Loadavg {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let loads = parse_loadavg(self.file.read()?)?;
        for ((name, help), load) in [
            ("node_load1", "1m load average."),
            ("node_load5", "5m load average."),
            ("node_load15", "15m load average."),
        ]
        .into_iter()
        .zip(loads)
        {
            let mut family = Family::gauge(name, help);
            family.push(&[], load);
            out.push(family);
        }
        Ok(())
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> anyhow::Result<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace();
    let mut loads = [0.0; 3];
    for load in &mut loads {
        let field = fields.next().ok_or_else(|| {
            anyhow::anyhow!("/proc/loadavg: expected 3 load averages, got {text:?}")
        })?;
        *load = parse_number(field, "/proc/loadavg")?;
    }
    Ok(loads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_averages() {
        assert_eq!(
            parse_loadavg("1.19 1.27 0.70 3/245 12345\n").unwrap(),
            [1.19, 1.27, 0.70]
        );
        assert!(parse_loadavg("1.19\n").is_err());
        assert!(parse_loadavg("a b c\n").is_err());
    }
}
