//! The block I/O collector (`bpf/block.bpf.c`): request latency per device
//! and op, and bytes and requests per process, device and op. Devices are
//! named as /proc/diskstats names them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use libbpf_rs::skel::SkelBuilder;

use super::drain::DoubleBuffered;
use super::maps::{read_map, Entry};
use super::who::{key_u32, Who, PROC_ID_LEN};
use super::{
    attach, object_storage, push_log2_histogram, AttachKind, Attached, Degraded, Loaded, Variant,
    HIST_WORDS,
};
use crate::collect::containers::charged_io;
use crate::collect::Collector;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/block.skel.rs"));
}
use skel::{BlockSkel, BlockSkelBuilder};

pub const NAME: &str = "block";

const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::TpBtf,
        programs: &["btf_io_start", "btf_rq_issue", "btf_rq_complete"],
    },
    Variant {
        kind: AttachKind::RawTp,
        programs: &["raw_io_start", "raw_rq_issue", "raw_rq_complete"],
    },
    Variant {
        kind: AttachKind::Tracepoint,
        programs: &["tp_io_start", "tp_rq_issue", "tp_rq_complete"],
    },
];

/// tracefs events carry no request pointer (bpf/block.bpf.c).
pub const DEGRADED: &[Degraded] = &[Degraded {
    kind: AttachKind::Tracepoint,
    lacks: "requests are matched by device and sector, so two in flight on one sector share a latency slot; completions interrupting another tracepoint program are lost (sonde_bpf_events_lost_total)",
}];

/// The bounded maps, in the order of `enum block_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["block_latency", "block_io"];

/// `forget_after`: how long a process name's totals outlive its last I/O.
pub fn load(forget_after: Duration) -> anyhow::Result<Loaded> {
    let attached = attach(NAME, VARIANTS, || {
        Ok(BlockSkelBuilder::default().open(object_storage())?)
    })?;
    Ok(Loaded {
        kind: attached.kind,
        programs: attached.program_handles()?,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Block {
            attached,
            devices: Devices::default(),
            io: DoubleBuffered::new([2], forget_after),
        }),
    })
}

struct Block {
    attached: Attached<BlockSkel<'static>>,
    devices: Devices,
    /// block_io: bytes and requests per (process, device, op).
    io: DoubleBuffered<1>,
}

/// The `op` label of a kernel REQ_OP_* number.
pub fn op_label(op: u32) -> &'static str {
    match op {
        0 => "read",
        1 => "write",
        2 => "flush",
        3 => "discard",
        _ => "other",
    }
}

/// Device numbers (packed as the kernel's dev_t: major << 20 | minor) to
/// their /proc/diskstats names, re-read when an unknown device shows up.
#[derive(Default)]
pub struct Devices {
    names: HashMap<u32, String>,
}

impl Devices {
    pub fn name(&mut self, dev: u32) -> String {
        if !self.names.contains_key(&dev) {
            if let Ok(text) = std::fs::read_to_string("/proc/diskstats") {
                self.names = parse_diskstats(&text);
            }
        }
        match self.names.get(&dev) {
            Some(name) => name.clone(),
            // Gone already (a removed loop device): its numbers, as lsblk shows them.
            None => format!("{}:{}", dev >> 20, dev & 0xf_ffff),
        }
    }
}

/// `major minor name ...` lines to (dev_t, name).
fn parse_diskstats(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let major: u32 = fields.next()?.parse().ok()?;
            let minor: u32 = fields.next()?.parse().ok()?;
            Some(((major << 20) | minor, fields.next()?.to_string()))
        })
        .collect()
}

impl Collector for Block {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        let bss = self.attached.skel.maps.bss_data.as_deref_mut();
        let bss = bss.context("the block object has no .bss")?;
        self.io.swap(&mut bss.sonde_generation);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let maps = &self.attached.skel.maps;
        self.io
            .drain_observed([[&maps.block_io_0, &maps.block_io_1]], |_, key, value| {
                charge_cgroup(key, value)
            })?;
        let mut latency = Family::histogram(
            "sonde_block_io_duration_seconds",
            "Time block I/O requests took from issue to the device to completion.",
        );
        for Entry { key, value } in read_map(&maps.block_latency, HIST_WORDS)? {
            let (Some(dev), Some(op)) = (key_u32(&key, 0), key_u32(&key, 4)) else {
                anyhow::bail!("block_latency key of {} bytes, expected 8", key.len());
            };
            let device = self.devices.name(dev);
            let hist = value;
            push_log2_histogram(
                &mut latency,
                &[("device", &device), ("op", op_label(op))],
                &hist,
            );
        }

        let mut bytes = Family::counter(
            "sonde_block_io_bytes_total",
            "Bytes of block I/O completed, charged to the process that submitted it.",
        );
        let mut ops = Family::counter(
            "sonde_block_io_ops_total",
            "Block I/O requests completed, charged to the process that submitted them.",
        );
        for (key, sums) in self.io.totals(0).iter() {
            let (Some(who), Some(dev), Some(op)) = (
                Who::from_key(key),
                key_u32(key, PROC_ID_LEN),
                key_u32(key, PROC_ID_LEN + 4),
            ) else {
                anyhow::bail!("block_io key of {} bytes, expected 32", key.len());
            };
            let device = self.devices.name(dev);
            let labels = who.labels(&[("device", &device), ("op", op_label(op))]);
            bytes.push(&labels, sums[0] as f64);
            ops.push(&labels, sums[1] as f64);
        }
        out.extend([latency, bytes, ops]);
        Ok(())
    }
}

/// Hands a drained increment of read or written bytes to the containers
/// collector, per cgroup and device (`container_fs_*_bytes_total`).
fn charge_cgroup(key: &[u8], value: &[u64]) {
    let cgroup = key
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_ne_bytes);
    let (Some(cgroup), Some(dev), Some(op)) = (
        cgroup,
        key_u32(key, PROC_ID_LEN),
        key_u32(key, PROC_ID_LEN + 4),
    ) else {
        return;
    };
    if op <= 1 {
        let bytes = value.first().copied().unwrap_or(0);
        charged_io::charge(cgroup, dev, op == 1, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_diskstats() {
        let names = parse_diskstats(
            " 254       0 vda 45225 7582 4988970 39579\n 259       1 nvme0n1p1 1 2 3\nbad line\n",
        );
        assert_eq!(names.get(&(254 << 20)).map(String::as_str), Some("vda"));
        assert_eq!(
            names.get(&((259 << 20) | 1)).map(String::as_str),
            Some("nvme0n1p1")
        );
        assert_eq!(names.len(), 2);
        assert_eq!(op_label(3), "discard");
    }
}
