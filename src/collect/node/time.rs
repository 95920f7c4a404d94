//! node_exporter's time collector: the wall clock (`node_time_seconds`), the
//! local time zone's offset, and the kernel's clock sources from
//! /sys/devices/system/clocksource.

use std::ffi::CStr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::ProcFile;
use crate::collect::Collector;
use crate::model::Family;

pub struct Time {
    /// Per clock source device (clocksource0, ...): its available and
    /// current clock source files. node_exporter labels a device with its
    /// position among the directories in name order; so does sonde.
    clocksources: Vec<(ProcFile, ProcFile)>,
}

impl Time {
    pub fn new() -> Time {
        Time::at(Path::new("/sys/devices/system/clocksource"))
    }

    fn at(dir: &Path) -> Time {
        let mut devices: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| {
                        name.strip_prefix("clocksource")
                            .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        devices.sort();
        Time {
            clocksources: devices
                .iter()
                .map(|device| {
                    (
                        ProcFile::new(dir.join(device).join("available_clocksource")),
                        ProcFile::new(dir.join(device).join("current_clocksource")),
                    )
                })
                .collect(),
        }
    }
}

impl Collector for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut seconds = Family::gauge(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
        );
        seconds.push(&[], now.as_nanos() as f64 / 1e9);
        out.push(seconds);

        let (zone, offset) = local_zone(now.as_secs() as libc::time_t);
        let mut zone_offset = Family::gauge(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
        );
        zone_offset.push(&[("time_zone", &zone)], offset as f64);
        out.push(zone_offset);

        if self.clocksources.is_empty() {
            return Ok(());
        }
        let mut available = Family::gauge(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
        );
        let mut current = Family::gauge(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
        );
        for (index, (available_file, current_file)) in self.clocksources.iter_mut().enumerate() {
            let device = index.to_string();
            for clocksource in available_file.read()?.split_ascii_whitespace() {
                available.push(&[("device", &device), ("clocksource", clocksource)], 1.0);
            }
            current.push(
                &[
                    ("device", &device),
                    ("clocksource", current_file.read()?.trim()),
                ],
                1.0,
            );
        }
        out.push(available);
        out.push(current);
        Ok(())
    }
}

/// The local time zone's abbreviation and offset from UTC in seconds, as the
/// C library reads them from TZ or /etc/localtime ("UTC", 0 without either).
fn local_zone(now: libc::time_t) -> (String, i64) {
    // SAFETY: localtime_r writes only into `tm`, which is plain data valid
    // when zeroed; tm_zone then points at a static string of the C library
    // (or is null), read before any other time call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return ("UTC".to_string(), 0);
        }
        let zone = if tm.tm_zone.is_null() {
            "UTC".to_string()
        } else {
            CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
        };
        (zone, tm.tm_gmtoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocksources_are_labeled_by_position() {
        let root = std::env::temp_dir().join(format!("sonde-clocksource-{}", std::process::id()));
        let dir = root.join("clocksource0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.join("power")).unwrap();
        std::fs::write(dir.join("available_clocksource"), "tsc hpet acpi_pm \n").unwrap();
        std::fs::write(dir.join("current_clocksource"), "tsc\n").unwrap();
        let mut time = Time::at(&root);
        let mut out = Vec::new();
        time.collect(&mut out).unwrap();
        let shown: Vec<String> = out[2..]
            .iter()
            .flat_map(|f| f.series.iter().map(|s| s.labels.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                r#"node_time_clocksource_available_info{clocksource="tsc", device="0"}"#,
                r#"node_time_clocksource_available_info{clocksource="hpet", device="0"}"#,
                r#"node_time_clocksource_available_info{clocksource="acpi_pm", device="0"}"#,
                r#"node_time_clocksource_current_info{clocksource="tsc", device="0"}"#,
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn wall_clock_and_zone() {
        let mut out = Vec::new();
        Time::at(Path::new("/nonexistent"))
            .collect(&mut out)
            .unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((out[0].series[0].value - now).abs() < 5.0);
        assert!(out[1].series[0].labels.get("time_zone").is_some());
    }
}
