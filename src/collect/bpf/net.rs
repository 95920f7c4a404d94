//! The network collector (`bpf/net.bpf.c`): bytes per process, direction and
//! protocol; TCP connects, accepts, established connections, retransmits
//! and resets per process; connect latency and connection lifetime.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use libbpf_rs::skel::SkelBuilder;

use super::drain::DoubleBuffered;
use super::maps::read_map;
use super::who::{key_u32, Who, PROC_ID_LEN};
use super::{
    attach, object_storage, push_log2_histogram, AttachKind, Attached, Loaded, Variant, HIST_WORDS,
};
use crate::collect::Collector;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/net.skel.rs"));
}
use skel::{NetSkel, NetSkelBuilder};

pub const NAME: &str = "net";

const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::TpBtf,
        programs: &[
            "btf_send",
            "btf_recv",
            "btf_state",
            "btf_retransmit",
            "btf_send_reset",
            "btf_receive_reset",
        ],
    },
    Variant {
        kind: AttachKind::RawTp,
        programs: &[
            "raw_send",
            "raw_recv",
            "raw_state",
            "raw_retransmit",
            "raw_send_reset",
            "raw_receive_reset",
        ],
    },
    Variant {
        kind: AttachKind::Tracepoint,
        programs: &[
            "tp_send",
            "tp_recv",
            "tp_state",
            "tp_retransmit",
            "tp_send_reset",
            "tp_receive_reset",
        ],
    },
];

/// The bounded maps, in the order of `enum net_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["net_bytes", "tcp_events", "sockets", "listeners"];

/// `enum tcp_event` in sonde.h.
const CONNECT_OK: u32 = 0;
const CONNECT_FAILED: u32 = 1;
const ACCEPT: u32 = 2;
const RETRANSMIT: u32 = 3;
const RESET_SENT: u32 = 4;
const RESET_RECEIVED: u32 = 5;
const ESTABLISHED_OPENED: u32 = 6;
const ESTABLISHED_CLOSED: u32 = 7;

/// `forget_after`: how long a process name's totals outlive its last event.
pub fn load(forget_after: Duration) -> anyhow::Result<Loaded> {
    let attached = attach(NAME, VARIANTS, || {
        Ok(NetSkelBuilder::default().open(object_storage())?)
    })?;
    Ok(Loaded {
        kind: attached.kind,
        programs: attached.program_handles()?,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Net {
            attached,
            counts: DoubleBuffered::new([1, 1], forget_after),
            established: HashMap::new(),
        }),
    })
}

struct Net {
    attached: Attached<NetSkel<'static>>,
    /// net_bytes, then tcp_events.
    counts: DoubleBuffered<2>,
    /// Connections established now, per owner (a `struct proc_id`): opened
    /// less closed, kept from the changes, since a connection may stay open
    /// long after its owner's totals are forgotten. An owner leaves once a
    /// round ends with none open, so this is bounded by open connections.
    established: HashMap<Vec<u8>, i64>,
}

const NET_BYTES: usize = 0;
const TCP_EVENTS: usize = 1;

/// The `proto` label of an IPPROTO_* number.
pub fn proto_label(proto: u32) -> String {
    match proto {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        262 => "mptcp".into(),
        other => other.to_string(),
    }
}

/// The TCP families, filled from the tcp_events map.
struct TcpFamilies {
    connects: Family,
    accepts: Family,
    retransmits: Family,
    resets: Family,
    established: Family,
}

impl TcpFamilies {
    fn new() -> TcpFamilies {
        TcpFamilies {
            connects: Family::counter(
                "sonde_tcp_connects_total",
                "TCP connections a process opened (connect), by result: ok or failed.",
            ),
            accepts: Family::counter(
                "sonde_tcp_accepts_total",
                "TCP connections a process accepted.",
            ),
            retransmits: Family::counter(
                "sonde_tcp_retransmits_total",
                "TCP segments retransmitted, by the process owning the connection.",
            ),
            resets: Family::counter(
                "sonde_tcp_resets_total",
                "TCP resets sent or received, by the process owning the connection (\"unknown\" when none).",
            ),
            established: Family::gauge(
                "sonde_tcp_established",
                "TCP connections established now that sonde saw open, by owning process.",
            ),
        }
    }
}

impl Collector for Net {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        let bss = self.attached.skel.maps.bss_data.as_deref_mut();
        let bss = bss.context("the net object has no .bss")?;
        self.counts.swap(&mut bss.sonde_generation);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let maps = &self.attached.skel.maps;
        let established = &mut self.established;
        self.counts.drain_observed(
            [
                [&maps.net_bytes_0, &maps.net_bytes_1],
                [&maps.tcp_events_0, &maps.tcp_events_1],
            ],
            |map, key, value| {
                if map == TCP_EVENTS && key.len() >= PROC_ID_LEN {
                    count_established(established, key, value[0]);
                }
            },
        )?;
        self.established.retain(|_, open| *open > 0);
        let mut bytes = Family::counter(
            "sonde_net_bytes_total",
            "Bytes a process sent or received through IPv4 and IPv6 sockets, by protocol.",
        );
        for (key, value) in self.counts.totals(NET_BYTES).iter() {
            let (Some(who), Some(direction), Some(proto)) = (
                Who::from_key(key),
                key_u32(key, PROC_ID_LEN),
                key_u32(key, PROC_ID_LEN + 4),
            ) else {
                anyhow::bail!("net_bytes key of {} bytes, expected 32", key.len());
            };
            let direction = if direction == 0 { "sent" } else { "received" };
            let proto = proto_label(proto);
            bytes.push(
                &who.labels(&[("direction", direction), ("proto", &proto)]),
                value[0] as f64,
            );
        }

        let mut tcp = TcpFamilies::new();
        for (key, value) in self.counts.totals(TCP_EVENTS).iter() {
            let (Some(who), Some(event)) = (Who::from_key(key), key_u32(key, PROC_ID_LEN)) else {
                anyhow::bail!("tcp_events key of {} bytes, expected 32", key.len());
            };
            let value = value[0] as f64;
            match event {
                CONNECT_OK => tcp.connects.push(&who.labels(&[("result", "ok")]), value),
                CONNECT_FAILED => tcp
                    .connects
                    .push(&who.labels(&[("result", "failed")]), value),
                ACCEPT => tcp.accepts.push(&who.labels(&[]), value),
                RETRANSMIT => tcp.retransmits.push(&who.labels(&[]), value),
                RESET_SENT => tcp
                    .resets
                    .push(&who.labels(&[("direction", "sent")]), value),
                RESET_RECEIVED => tcp
                    .resets
                    .push(&who.labels(&[("direction", "received")]), value),
                _ => {}
            }
        }
        for (owner, open) in &self.established {
            if let Some(who) = Who::from_key(owner) {
                tcp.established.push(&who.labels(&[]), *open as f64);
            }
        }

        let mut connect = Family::histogram(
            "sonde_tcp_connect_duration_seconds",
            "Time TCP connects took, from SYN sent to established.",
        );
        let mut lifetime = Family::histogram(
            "sonde_tcp_connection_duration_seconds",
            "Lifetime of TCP connections, from established to closed.",
        );
        let hists = read_map(&maps.tcp_latency, HIST_WORDS)?;
        for (slot, family) in [(0u32, &mut connect), (1, &mut lifetime)] {
            if let Some(hist) = hists.iter().find(|e| key_u32(&e.key, 0) == Some(slot)) {
                push_log2_histogram(family, &[], &hist.value);
            }
        }

        out.extend([
            bytes,
            tcp.connects,
            tcp.accepts,
            tcp.established,
            tcp.retransmits,
            tcp.resets,
            connect,
            lifetime,
        ]);
        Ok(())
    }
}

/// Applies one drained tcp_events entry to the connections open per owner.
/// An interval's opens and closes of one owner come as two entries in either
/// order, so a count may dip below zero until both are applied (a close is
/// only counted for a connection sonde saw established).
fn count_established(established: &mut HashMap<Vec<u8>, i64>, key: &[u8], count: u64) {
    let change = i64::try_from(count).unwrap_or(i64::MAX);
    let change = match key_u32(key, PROC_ID_LEN) {
        Some(ESTABLISHED_OPENED) => change,
        Some(ESTABLISHED_CLOSED) => -change,
        _ => return,
    };
    *established.entry(key[..PROC_ID_LEN].to_vec()).or_default() += change;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named() {
        assert_eq!(proto_label(6), "tcp");
        assert_eq!(proto_label(17), "udp");
        assert_eq!(proto_label(255), "255");
    }
}
