//! node_exporter's netdev collector: per network device traffic and error
//! counters, `node_network_{receive,transmit}_<stat>_total{device}`.
//!
//! Like node_exporter 1.5 (its default `--collector.netdev.netlink`), sonde
//! asks the kernel over rtnetlink (one RTM_GETLINK dump of every link's
//! `rtnl_link_stats64`) instead of parsing /proc/net/dev: binary counters, no
//! text to format and parse, and `rx_nohandler`, which /proc/net/dev lacks.
//! The detailed error counters are folded into /proc/net/dev's columns as
//! node_exporter's default (non-detailed) names do, so `receive_drop`
//! includes missed packets and `receive_frame` all framing errors. The
//! loopback device is skipped, as Debian's node_exporter does by default.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::Context;

use crate::collect::Collector;
use crate::model::Family;

// From the kernel's uapi headers (linux/netlink.h, linux/rtnetlink.h,
// linux/if_link.h).
const NLMSG_HEADER: usize = 16;
const IFINFOMSG: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;
/// Attribute type bits besides the nested and byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Indices into `struct rtnl_link_stats64`.
mod stat {
    pub const RX_PACKETS: usize = 0;
    pub const TX_PACKETS: usize = 1;
    pub const RX_BYTES: usize = 2;
    pub const TX_BYTES: usize = 3;
    pub const RX_ERRORS: usize = 4;
    pub const TX_ERRORS: usize = 5;
    pub const RX_DROPPED: usize = 6;
    pub const TX_DROPPED: usize = 7;
    pub const MULTICAST: usize = 8;
    pub const COLLISIONS: usize = 9;
    pub const RX_LENGTH_ERRORS: usize = 10;
    pub const RX_OVER_ERRORS: usize = 11;
    pub const RX_CRC_ERRORS: usize = 12;
    pub const RX_FRAME_ERRORS: usize = 13;
    pub const RX_FIFO_ERRORS: usize = 14;
    pub const RX_MISSED_ERRORS: usize = 15;
    pub const TX_ABORTED_ERRORS: usize = 16;
    pub const TX_CARRIER_ERRORS: usize = 17;
    pub const TX_FIFO_ERRORS: usize = 18;
    pub const TX_HEARTBEAT_ERRORS: usize = 19;
    pub const TX_WINDOW_ERRORS: usize = 20;
    pub const RX_COMPRESSED: usize = 21;
    pub const TX_COMPRESSED: usize = 22;
    pub const RX_NOHANDLER: usize = 23;
    /// Fields read; later kernels append more, older ones lack the last.
    pub const COUNT: usize = 24;
}

/// Each exported statistic: its name between `node_network_` and `_total`,
/// and the `rtnl_link_stats64` fields it sums (as /proc/net/dev does).
const EXPORTED: [(&str, &[usize]); 17] = {
    use stat::*;
    [
        ("receive_bytes", &[RX_BYTES]),
        ("receive_packets", &[RX_PACKETS]),
        ("receive_errs", &[RX_ERRORS]),
        ("receive_drop", &[RX_DROPPED, RX_MISSED_ERRORS]),
        ("receive_fifo", &[RX_FIFO_ERRORS]),
        (
            "receive_frame",
            &[
                RX_FRAME_ERRORS,
                RX_LENGTH_ERRORS,
                RX_OVER_ERRORS,
                RX_CRC_ERRORS,
            ],
        ),
        ("receive_compressed", &[RX_COMPRESSED]),
        ("receive_multicast", &[MULTICAST]),
        ("receive_nohandler", &[RX_NOHANDLER]),
        ("transmit_bytes", &[TX_BYTES]),
        ("transmit_packets", &[TX_PACKETS]),
        ("transmit_errs", &[TX_ERRORS]),
        ("transmit_drop", &[TX_DROPPED]),
        ("transmit_fifo", &[TX_FIFO_ERRORS]),
        ("transmit_colls", &[COLLISIONS]),
        (
            "transmit_carrier",
            &[
                TX_CARRIER_ERRORS,
                TX_ABORTED_ERRORS,
                TX_HEARTBEAT_ERRORS,
                TX_WINDOW_ERRORS,
            ],
        ),
        ("transmit_compressed", &[TX_COMPRESSED]),
    ]
};

pub struct Netdev {
    /// Receive buffer, reused; grows when a message did not fit.
    buf: Vec<u8>,
    seq: u32,
}

impl Netdev {
    pub fn new() -> Netdev {
        Netdev {
            // Large enough for the kernel's biggest dump batches (32 KiB).
            buf: vec![0; 64 << 10],
            seq: 0,
        }
    }
}

impl Collector for Netdev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut families: Vec<Family> = EXPORTED
            .iter()
            .map(|(stat, _)| {
                Family::counter(
                    format!("node_network_{stat}_total"),
                    format!("Network device statistic {stat}."),
                )
            })
            .collect();
        self.seq = self.seq.wrapping_add(1);
        let socket = request_links(self.seq)
            .context("cannot ask the kernel for network devices (rtnetlink)")?;
        loop {
            let received = receive(&socket, &mut self.buf)?;
            let done = parse_dump(&self.buf[..received], self.seq, |device, stats| {
                if device == "lo" {
                    return;
                }
                for (family, (_, fields)) in families.iter_mut().zip(&EXPORTED) {
                    let value = fields
                        .iter()
                        .fold(0u64, |sum, &i| sum.wrapping_add(stats[i]));
                    family.push(&[("device", device)], value as f64);
                }
            })?;
            if done {
                break;
            }
        }
        out.extend(families);
        Ok(())
    }
}

/// Opens a route netlink socket and sends it a dump request for all links.
fn request_links(seq: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut request = [0u8; NLMSG_HEADER + IFINFOMSG];
    request[0..4].copy_from_slice(&((NLMSG_HEADER + IFINFOMSG) as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request[8..12].copy_from_slice(&seq.to_ne_bytes());
    // Port id 0 and an all-zero ifinfomsg (any family, any link).
    // SAFETY: the buffer is valid for its length; with no address the
    // message goes to the kernel.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Receives one datagram; the kernel answers a dump synchronously, so this
/// never waits on anything but the kernel.
fn receive(socket: &OwnedFd, buf: &mut Vec<u8>) -> anyhow::Result<usize> {
    loop {
        // SAFETY: the buffer is valid for writes of its length. MSG_TRUNC
        // makes recv return the datagram's real length even if it did not fit.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if received < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("rtnetlink receive failed");
        }
        let received = received as usize;
        if received > buf.len() {
            // The dump is incomplete now; the next round gets it whole.
            buf.resize(received.next_power_of_two(), 0);
            anyhow::bail!("rtnetlink message of {received} bytes did not fit the buffer");
        }
        return Ok(received);
    }
}

/// Parses a batch of dump messages answering request `seq`, calling `link`
/// with each device name and its `rtnl_link_stats64` (missing trailing fields
/// as 0). Returns whether the dump is complete.
pub fn parse_dump(
    mut batch: &[u8],
    seq: u32,
    mut link: impl FnMut(&str, &[u64; stat::COUNT]),
) -> anyhow::Result<bool> {
    while batch.len() >= NLMSG_HEADER {
        let len = u32::from_ne_bytes(batch[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(batch[4..6].try_into().expect("2 bytes"));
        let message_seq = u32::from_ne_bytes(batch[8..12].try_into().expect("4 bytes"));
        if len < NLMSG_HEADER || len > batch.len() {
            anyhow::bail!(
                "malformed rtnetlink message: length {len} of {} bytes",
                batch.len()
            );
        }
        let payload = &batch[NLMSG_HEADER..len];
        batch = &batch[align4(len).min(batch.len())..];
        if message_seq != seq {
            continue; // an answer to an earlier request
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                let code = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .unwrap_or(0);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code))
                        .context("rtnetlink dump refused");
                }
            }
            RTM_NEWLINK => {
                let (name, stats) = link_attributes(payload.get(IFINFOMSG..).unwrap_or(&[]));
                if let (Some(name), Some(stats)) = (name, stats) {
                    link(name, &stats);
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The name and statistics attributes of one link message.
fn link_attributes(mut attributes: &[u8]) -> (Option<&str>, Option<[u64; stat::COUNT]>) {
    let (mut name, mut stats) = (None, None);
    while attributes.len() >= 4 {
        let len = u16::from_ne_bytes([attributes[0], attributes[1]]) as usize;
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attributes.len() {
            break;
        }
        let value = &attributes[4..len];
        match kind {
            IFLA_IFNAME => {
                let bytes = value.split(|&b| b == 0).next().unwrap_or(&[]);
                name = std::str::from_utf8(bytes).ok();
            }
            IFLA_STATS64 => {
                let mut fields = [0u64; stat::COUNT];
                for (field, chunk) in fields.iter_mut().zip(value.chunks_exact(8)) {
                    *field = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
                }
                stats = Some(fields);
            }
            _ => {}
        }
        attributes = &attributes[align4(len).min(attributes.len())..];
    }
    (name, stats)
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(((4 + value.len()) as u16).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend(value);
        out.resize(align4(out.len()), 0);
        out
    }

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(((NLMSG_HEADER + payload.len()) as u32).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend(2u16.to_ne_bytes());
        out.extend(seq.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(payload);
        out
    }

    fn link(name: &str, stats: &[u64]) -> Vec<u8> {
        let mut payload = vec![0u8; IFINFOMSG];
        payload.extend(attribute(IFLA_IFNAME, format!("{name}\0").as_bytes()));
        let raw: Vec<u8> = stats.iter().flat_map(|v| v.to_ne_bytes()).collect();
        payload.extend(attribute(IFLA_STATS64, &raw));
        message(RTM_NEWLINK, 7, &payload)
    }

    #[test]
    fn dump_messages_yield_names_and_stats() {
        let stats: Vec<u64> = (1..=25).collect(); // a 6.x kernel's 25 fields
        let mut batch = link("eth0", &stats);
        batch.extend(link("old0", &stats[..23])); // before rx_nohandler
        batch.extend(message(RTM_NEWLINK, 6, &[0; IFINFOMSG])); // stale answer
        let mut seen = Vec::new();
        let done = parse_dump(&batch, 7, |name, stats| {
            seen.push((name.to_string(), *stats))
        })
        .unwrap();
        assert!(!done);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "eth0");
        assert_eq!(seen[0].1[stat::RX_BYTES], 3);
        assert_eq!(seen[0].1[stat::RX_NOHANDLER], 24);
        assert_eq!(seen[1].1[stat::RX_NOHANDLER], 0);
        assert!(parse_dump(&message(NLMSG_DONE, 7, &[0; 4]), 7, |_, _| {}).unwrap());
    }

    #[test]
    fn errors_and_garbage_are_errors_not_panics() {
        let refused = message(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes());
        assert!(parse_dump(&refused, 7, |_, _| {}).is_err());
        let mut truncated = link("eth0", &[1; 24]);
        truncated.truncate(40);
        assert!(parse_dump(&truncated, 7, |_, _| {}).is_err());
        let mut bad_attribute = message(RTM_NEWLINK, 7, &[0; IFINFOMSG]);
        bad_attribute.extend([0xff, 0xff, 3, 0]);
        let len = bad_attribute.len() as u32;
        bad_attribute[0..4].copy_from_slice(&len.to_ne_bytes());
        assert!(!parse_dump(&bad_attribute, 7, |_, _| panic!("no link")).unwrap());
    }

    #[test]
    fn this_machines_devices_are_listed_without_loopback() {
        let devices = || -> std::collections::BTreeSet<String> {
            std::fs::read_to_string("/proc/net/dev")
                .unwrap()
                .lines()
                .skip(2)
                .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
                .filter(|name| name != "lo")
                .collect()
        };
        let before = devices();
        let mut out = Vec::new();
        Netdev::new().collect(&mut out).unwrap();
        let after = devices();
        assert_eq!(out.len(), 17);
        let ours: std::collections::BTreeSet<String> = out[0]
            .series
            .iter()
            .map(|s| s.labels.get("device").unwrap().to_string())
            .collect();
        // Devices may come and go meanwhile (other tests): between the two.
        assert!(
            before.intersection(&after).all(|d| ours.contains(d)),
            "{ours:?} vs {before:?}"
        );
        assert!(
            ours.iter().all(|d| before.contains(d) || after.contains(d)),
            "{ours:?} vs {after:?}"
        );
    }
}
