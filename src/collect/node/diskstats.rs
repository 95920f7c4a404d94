//! node_exporter's diskstats collector: block device I/O counters from
//! /proc/diskstats (sectors of 512 bytes turned into bytes, milliseconds into
//! seconds, except discarded sectors, which node_exporter keeps in sectors),
//! `node_disk_info` per device, and the udev properties node_exporter 1.5
//! exports (filesystem, device mapper and ATA facts) when /run/udev/data
//! exists.
//!
//! Devices are skipped as node_exporter's default `--collector.diskstats.
//! device-exclude` does: partitions, RAM disks, loop and floppy devices.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use super::{parse_number, ProcFile};
use crate::collect::Collector;
use crate::model::{Family, MetricKind};

const DEVICE_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
const UDEV_DATA: &str = "/run/udev/data";

/// The statistics of a /proc/diskstats line in file order: metric name,
/// help, kind, and the factor turning the kernel's unit into the metric's.
const STATS: [(&str, &str, MetricKind, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        MetricKind::Counter,
        512.0,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        MetricKind::Counter,
        0.001,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        MetricKind::Counter,
        512.0,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MetricKind::Counter,
        0.001,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricKind::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        MetricKind::Counter,
        0.001,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MetricKind::Counter,
        0.001,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MetricKind::Counter,
        0.001,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        MetricKind::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricKind::Counter,
        0.001,
    ),
];

/// ATA udev properties exported as gauges of the same name.
const ATA: [(&str, &str, &str); 3] = [
    (
        "ID_ATA_WRITE_CACHE",
        "node_disk_ata_write_cache",
        "ATA disk has a write cache.",
    ),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "node_disk_ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "node_disk_ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
];

pub struct Diskstats {
    file: ProcFile,
    exclude: Regex,
    /// Whether udev keeps device properties here; checked once, as
    /// node_exporter does.
    udev: bool,
}

/// One line of /proc/diskstats.
#[derive(Debug, PartialEq)]
pub struct DiskLine<'a> {
    pub major: &'a str,
    pub minor: &'a str,
    pub device: &'a str,
    /// The statistics in [`STATS`] order, already in the metrics' units;
    /// the first `count` are present (11 before Linux 4.18, 15 before 5.5,
    /// then 17).
    pub stats: [f64; STATS.len()],
    pub count: usize,
}

impl Diskstats {
    pub fn new() -> Diskstats {
        Diskstats {
            file: ProcFile::new("/proc/diskstats"),
            exclude: Regex::new(DEVICE_EXCLUDE).expect("valid pattern"),
            udev: Path::new(UDEV_DATA).is_dir(),
        }
    }
}

impl Collector for Diskstats {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut stats: Vec<Family> = STATS
            .iter()
            .map(|(name, help, kind, _)| Family::new(*name, *help, *kind))
            .collect();
        let mut info = Family::gauge("node_disk_info", "Info of /sys/block/<block_device>.");
        let mut filesystem =
            Family::gauge("node_disk_filesystem_info", "Info about disk filesystem.");
        let mut mapper = Family::gauge(
            "node_disk_device_mapper_info",
            "Info about disk device mapper.",
        );
        let mut ata: Vec<Family> = ATA
            .iter()
            .map(|(_, name, help)| Family::gauge(*name, *help))
            .collect();

        for line in self.file.read()?.lines() {
            let Some(disk) = parse_line(line)? else {
                continue;
            };
            if self.exclude.is_match(disk.device) {
                continue;
            }
            let udev = if self.udev {
                udev_properties(disk.major, disk.minor)
            } else {
                HashMap::new()
            };
            let property = |key: &str| udev.get(key).map(String::as_str).unwrap_or("");
            let device = ("device", disk.device);
            info.push(
                &[
                    device,
                    ("major", disk.major),
                    ("minor", disk.minor),
                    ("path", property("ID_PATH")),
                    ("wwn", property("ID_WWN")),
                    ("model", property("ID_MODEL")),
                    ("serial", property("ID_SERIAL_SHORT")),
                    ("revision", property("ID_REVISION")),
                ],
                1.0,
            );
            for (family, value) in stats.iter_mut().zip(&disk.stats[..disk.count]) {
                family.push(&[device], *value);
            }
            if !property("ID_FS_TYPE").is_empty() {
                filesystem.push(
                    &[
                        device,
                        ("type", property("ID_FS_TYPE")),
                        ("usage", property("ID_FS_USAGE")),
                        ("uuid", property("ID_FS_UUID")),
                        ("version", property("ID_FS_VERSION")),
                    ],
                    1.0,
                );
            }
            if !property("DM_NAME").is_empty() {
                mapper.push(
                    &[
                        device,
                        ("name", property("DM_NAME")),
                        ("uuid", property("DM_UUID")),
                        ("vg_name", property("DM_VG_NAME")),
                        ("lv_name", property("DM_LV_NAME")),
                        ("lv_layer", property("DM_LV_LAYER")),
                    ],
                    1.0,
                );
            }
            if !property("ID_ATA").is_empty() {
                for ((key, _, _), family) in ATA.iter().zip(&mut ata) {
                    if let Some(value) = udev.get(*key).and_then(|v| v.parse::<f64>().ok()) {
                        family.push(&[device], value);
                    }
                }
            }
        }
        out.push(info);
        out.extend(stats);
        out.push(filesystem);
        out.push(mapper);
        out.extend(ata);
        Ok(())
    }
}

/// Parses one line; `None` for lines with fewer than the 11 statistics
/// node_exporter requires (partitions of kernels before 2.6.25 had 4).
pub fn parse_line(line: &str) -> anyhow::Result<Option<DiskLine<'_>>> {
    let mut fields = line.split_ascii_whitespace();
    let (Some(major), Some(minor), Some(device)) = (fields.next(), fields.next(), fields.next())
    else {
        return Ok(None);
    };
    let mut stats = [0.0; STATS.len()];
    let mut count = 0;
    for ((stat, (name, _, _, factor)), field) in stats.iter_mut().zip(&STATS).zip(fields) {
        let raw: u64 = parse_number(field, name)?;
        *stat = raw as f64 * factor;
        count += 1;
    }
    if count < 11 {
        return Ok(None);
    }
    Ok(Some(DiskLine {
        major,
        minor,
        device,
        stats,
        count,
    }))
}

/// The `E:` (property) lines of udev's database entry for a block device;
/// empty when it has none.
fn udev_properties(major: &str, minor: &str) -> HashMap<String, String> {
    let path = format!("{UDEV_DATA}/b{major}:{minor}");
    // A fresh open each time: udev replaces the file when a device changes.
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    parse_udev(&text)
}

pub fn parse_udev(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("E:")?.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_convert_sectors_and_milliseconds() {
        let line = " 254       0 vda 91303 25061 6384106 72599 17775 55267 12584096 52280 0 15820 125841 9043 35 1330152 902 1349 59";
        let disk = parse_line(line).unwrap().unwrap();
        assert_eq!((disk.major, disk.minor, disk.device), ("254", "0", "vda"));
        assert_eq!(disk.count, 17);
        assert_eq!(disk.stats[2], 6384106.0 * 512.0); // read bytes
        assert_eq!(disk.stats[3], 72599.0 * 0.001); // read seconds
        assert_eq!(disk.stats[8], 0.0); // in flight
        assert_eq!(disk.stats[13], 1330152.0); // discarded sectors stay sectors
        assert_eq!(disk.stats[16], 59.0 * 0.001); // flush seconds
    }

    #[test]
    fn old_kernels_have_fewer_fields_and_old_partitions_none() {
        let eleven = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11";
        assert_eq!(parse_line(eleven).unwrap().unwrap().count, 11);
        assert_eq!(parse_line("8 1 sda1 1 2 3 4").unwrap(), None);
        assert!(parse_line("8 0 sda 1 2 x 4 5 6 7 8 9 10 11").is_err());
    }

    #[test]
    fn default_exclusions_match_node_exporter() {
        let exclude = Regex::new(DEVICE_EXCLUDE).unwrap();
        for skipped in ["loop0", "ram1", "sda1", "vda2", "xvda1", "nvme0n1p1", "fd0"] {
            assert!(exclude.is_match(skipped), "{skipped}");
        }
        for kept in ["sda", "vda", "nvme0n1", "dm-0", "zram0", "md0", "sr0"] {
            assert!(!exclude.is_match(kept), "{kept}");
        }
    }

    #[test]
    fn udev_properties_are_the_e_lines() {
        let text = "S:disk/by-id/x\nE:ID_MODEL=QEMU_HARDDISK\nE:ID_FS_UUID=a=b\nG:systemd\n";
        let props = parse_udev(text);
        assert_eq!(props.len(), 2);
        assert_eq!(props["ID_MODEL"], "QEMU_HARDDISK");
        assert_eq!(props["ID_FS_UUID"], "a=b");
    }
}
