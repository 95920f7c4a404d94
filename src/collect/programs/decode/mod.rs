//! Decoders: the chain that turns one field of a map's key into a label
//! value, as ebpf_exporter's `decoders:` lists them. Each step takes the
//! bytes the step before gave (the raw field for the first) and gives bytes;
//! numbers travel between steps as decimal text (`uint` then `syscall`).
//!
//! A step fails ([`Outcome::Failed`]) when its input is not what it
//! decodes (a 3-byte `uint`); the key is then left out of the round and
//! counted in `ebpf_exporter_decoder_errors_total{config,decoder}`. A
//! `regexp` that matches nothing drops the key on purpose
//! ([`Outcome::Skip`]). Names looked up in the machine (symbols, devices,
//! interfaces, cgroups, PCI ids) live in [`kernel`] and [`pci`].

mod kernel;
mod pci;

pub use kernel::{address_of, full_cgroup_path};

use anyhow::{anyhow, bail};
use regex::bytes::Regex;

use super::config::DecoderConfig;
use crate::collect::bpf::errno_names::{ERRNO_NAMES, KERNEL_ERRNO_NAMES};
use crate::collect::bpf::syscall_names::SYSCALL_NAMES;

/// One step of a decoder chain.
#[derive(Clone, Debug)]
pub enum Decoder {
    /// Native-endian unsigned integer of 1, 2, 4 or 8 bytes, as decimal.
    Uint,
    /// Bytes up to the first NUL.
    String,
    /// Lowercase hex of every byte.
    Hex,
    /// A kernel address (8 bytes) as its symbol from /proc/kallsyms.
    Ksym,
    /// Kernel addresses (8 bytes each, up to the first 0) as symbols, one
    /// per line.
    Kstack,
    /// A `new_encode_dev` device number as its /proc/partitions name.
    MajorMinor,
    /// 4 or 16 bytes as an IPv4 or IPv6 address.
    InetIp,
    /// An interface index (u32) as its name.
    Ifname,
    /// A DNS name in wire format (length-prefixed labels) as dotted text.
    Dname,
    /// A decimal cgroup id as its cgroup v2 path.
    Cgroup,
    /// A decimal syscall number as its x86_64 name.
    Syscall,
    /// A decimal errno as its name (ENOENT).
    Errno,
    /// The input looked up in a table; unknown inputs pass through with
    /// `allow_unknown`, else become `unknown:<input>`.
    StaticMap {
        map: Vec<(Vec<u8>, Vec<u8>)>,
        allow_unknown: bool,
    },
    /// The first regexp that matches gives its first group (or the whole
    /// match); none matching drops the key.
    Regexp(Vec<Regex>),
    PciVendor,
    PciDevice,
    PciClass,
    PciSubclass,
}

/// What one step made of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Value(Vec<u8>),
    /// Leave the key out: a filter said so.
    Skip,
    /// The input was not what the step decodes; why.
    Failed(String),
}

impl Decoder {
    /// The step `config` names, for a field of `size` bytes; refuses names
    /// ebpf_exporter does not know, sizes the decoder cannot read and
    /// missing settings.
    pub fn build(config: &DecoderConfig, size: usize) -> anyhow::Result<Decoder> {
        let sized = |ok: bool, expected: &str| {
            if ok {
                Ok(())
            } else {
                Err(anyhow!(
                    "decoder {}: size {size}: expected {expected}",
                    config.name
                ))
            }
        };
        let decoder = match config.name.as_str() {
            "uint" => Decoder::Uint,
            "string" => Decoder::String,
            "hex" => Decoder::Hex,
            "ksym" => {
                sized(size == 8, "8 (a kernel address)")?;
                Decoder::Ksym
            }
            "kstack" => {
                sized(size.is_multiple_of(8), "a multiple of 8 (kernel addresses)")?;
                Decoder::Kstack
            }
            "majorminor" => {
                sized(size >= 4, "at least 4 (a u32 device number)")?;
                Decoder::MajorMinor
            }
            "ifname" => {
                sized(size >= 4, "at least 4 (a u32 interface index)")?;
                Decoder::Ifname
            }
            "inet_ip" => Decoder::InetIp,
            "dname" => Decoder::Dname,
            "cgroup" => Decoder::Cgroup,
            "syscall" => Decoder::Syscall,
            "errno" => Decoder::Errno,
            "static_map" => {
                let map = config.static_map.as_ref().ok_or_else(|| {
                    anyhow!("decoder static_map without static_map: expected a table of input: label value")
                })?;
                let map = map
                    .iter()
                    .map(|(from, to)| Ok((scalar(from)?.into_bytes(), scalar(to)?.into_bytes())))
                    .collect::<anyhow::Result<_>>()?;
                Decoder::StaticMap {
                    map,
                    allow_unknown: config.allow_unknown,
                }
            }
            "regexp" => {
                let exprs = config.regexps.as_ref().filter(|r| !r.is_empty()).ok_or_else(|| {
                    anyhow!("decoder regexp without regexps: expected a list of regular expressions")
                })?;
                let compiled = exprs
                    .iter()
                    .map(|expr| {
                        Regex::new(expr).map_err(|err| anyhow!("decoder regexp {expr:?}: {err}"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                Decoder::Regexp(compiled)
            }
            "pci_vendor" => Decoder::PciVendor,
            "pci_device" => Decoder::PciDevice,
            "pci_class" => Decoder::PciClass,
            "pci_subclass" => Decoder::PciSubclass,
            other => bail!(
                "unknown decoder {other:?}: expected one of uint, string, hex, ksym, kstack, majorminor, inet_ip, ifname, dname, cgroup, syscall, errno, static_map, regexp, pci_vendor, pci_device, pci_class, pci_subclass"
            ),
        };
        if !matches!(config.name.as_str(), "static_map") && config.static_map.is_some() {
            bail!("decoder {}: static_map is only for static_map", config.name);
        }
        if !matches!(config.name.as_str(), "regexp") && config.regexps.is_some() {
            bail!("decoder {}: regexps is only for regexp", config.name);
        }
        Ok(decoder)
    }

    /// The name ebpf_exporter gives this step (the `decoder` label of
    /// decoder errors).
    pub fn name(&self) -> &'static str {
        match self {
            Decoder::Uint => "uint",
            Decoder::String => "string",
            Decoder::Hex => "hex",
            Decoder::Ksym => "ksym",
            Decoder::Kstack => "kstack",
            Decoder::MajorMinor => "majorminor",
            Decoder::InetIp => "inet_ip",
            Decoder::Ifname => "ifname",
            Decoder::Dname => "dname",
            Decoder::Cgroup => "cgroup",
            Decoder::Syscall => "syscall",
            Decoder::Errno => "errno",
            Decoder::StaticMap { .. } => "static_map",
            Decoder::Regexp(_) => "regexp",
            Decoder::PciVendor => "pci_vendor",
            Decoder::PciDevice => "pci_device",
            Decoder::PciClass => "pci_class",
            Decoder::PciSubclass => "pci_subclass",
        }
    }

    pub fn decode(&self, input: &[u8]) -> Outcome {
        let value = match self {
            Decoder::Uint => return uint(input).map_or_else(Outcome::Failed, text),
            Decoder::String => input[..nul(input)].to_vec(),
            Decoder::Hex => input
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
            Decoder::Ksym => return kernel::ksym(input),
            Decoder::Kstack => return kernel::kstack(input),
            Decoder::MajorMinor => return kernel::major_minor(input),
            Decoder::Ifname => return kernel::ifname(input),
            Decoder::Cgroup => return number(input).map_or_else(Outcome::Failed, kernel::cgroup),
            Decoder::InetIp => return inet_ip(input),
            Decoder::Dname => dname(input),
            Decoder::Syscall => {
                return number(input).map_or_else(Outcome::Failed, |n| {
                    let name = usize::try_from(n).ok().and_then(|i| SYSCALL_NAMES.get(i));
                    match name {
                        Some(name) if !name.is_empty() => text(name),
                        _ => text(format!("unknown_syscall:{n}")),
                    }
                })
            }
            Decoder::Errno => return number(input).map_or_else(Outcome::Failed, errno),
            Decoder::StaticMap { map, allow_unknown } => {
                match map.iter().find(|(from, _)| from == input) {
                    Some((_, to)) => to.clone(),
                    None if *allow_unknown => input.to_vec(),
                    None => [b"unknown:", input].concat(),
                }
            }
            Decoder::Regexp(exprs) => {
                let found = exprs.iter().find_map(|expr| {
                    let captures = expr.captures(input)?;
                    captures.get(1).or_else(|| captures.get(0))
                });
                return found.map_or(Outcome::Skip, |m| Outcome::Value(m.as_bytes().to_vec()));
            }
            Decoder::PciVendor => return number(input).map_or_else(Outcome::Failed, pci::vendor),
            Decoder::PciDevice => return number(input).map_or_else(Outcome::Failed, pci::device),
            Decoder::PciClass => return number(input).map_or_else(Outcome::Failed, pci::class),
            Decoder::PciSubclass => {
                return number(input).map_or_else(Outcome::Failed, pci::subclass)
            }
        };
        Outcome::Value(value)
    }
}

/// A YAML scalar as the text a decoder compares with.
fn scalar(value: &serde_yaml::Value) -> anyhow::Result<String> {
    match value {
        serde_yaml::Value::String(s) => Ok(s.clone()),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        other => bail!("static_map entry {other:?}: expected a number or a string"),
    }
}

fn text(value: impl ToString) -> Outcome {
    Outcome::Value(value.to_string().into_bytes())
}

fn nul(input: &[u8]) -> usize {
    input.iter().position(|&b| b == 0).unwrap_or(input.len())
}

fn uint(input: &[u8]) -> Result<u64, String> {
    Ok(match input.len() {
        1 => u64::from(input[0]),
        2 => u64::from(u16::from_ne_bytes([input[0], input[1]])),
        4 => u64::from(u32::from_ne_bytes(input.try_into().unwrap_or_default())),
        8 => u64::from_ne_bytes(input.try_into().unwrap_or_default()),
        n => return Err(format!("uint of {n} bytes: expected 1, 2, 4 or 8")),
    })
}

/// The decimal number a previous step (usually `uint`) gave.
fn number(input: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(input)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "{:?} is not a decimal number: put uint before this decoder",
                String::from_utf8_lossy(input)
            )
        })
}

fn errno(n: u64) -> Outcome {
    let known = usize::try_from(n)
        .ok()
        .and_then(|i| ERRNO_NAMES.get(i))
        .filter(|name| !name.is_empty())
        .copied()
        .or_else(|| {
            KERNEL_ERRNO_NAMES
                .iter()
                .find(|(code, _)| u64::from(*code) == n)
                .map(|(_, name)| *name)
        });
    match known {
        Some(name) => text(name),
        None => text(format!("unknown:{n}")),
    }
}

fn inet_ip(input: &[u8]) -> Outcome {
    match input.len() {
        4 => text(std::net::Ipv4Addr::from(
            <[u8; 4]>::try_from(input).unwrap_or_default(),
        )),
        // An IPv4-mapped address reads as IPv4, as Go's net.IP (and so
        // ebpf_exporter) prints it: one 16-byte field holds both families.
        16 => {
            let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(input).unwrap_or_default());
            match ip.to_ipv4_mapped() {
                Some(v4) => text(v4),
                None => text(ip),
            }
        }
        n => Outcome::Failed(format!("inet_ip of {n} bytes: expected 4 or 16")),
    }
}

fn dname(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut at = 0;
    while at < input.len() {
        let len = usize::from(input[at]);
        if len == 0 {
            break;
        }
        let Some(label) = input.get(at + 1..at + 1 + len) else {
            return input.to_vec();
        };
        if !out.is_empty() {
            out.push(b'.');
        }
        out.extend_from_slice(label);
        at += 1 + len;
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// A chain's result: the label value, or why the key is left out.
pub fn chain(
    decoders: &[Decoder],
    field: &[u8],
) -> Result<Vec<u8>, (Option<&'static str>, String)> {
    let mut value = field.to_vec();
    for decoder in decoders {
        match decoder.decode(&value) {
            Outcome::Value(next) => value = next,
            Outcome::Skip => return Err((None, String::new())),
            Outcome::Failed(why) => return Err((Some(decoder.name()), why)),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str, size: usize) -> Decoder {
        Decoder::build(&serde_yaml::from_str(yaml).unwrap(), size).unwrap()
    }

    fn value(outcome: Outcome) -> String {
        match outcome {
            Outcome::Value(v) => String::from_utf8(v).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_chain_into_names() {
        let chain_of = [build("name: uint", 8), build("name: syscall", 8)];
        assert_eq!(chain(&chain_of, &110u64.to_ne_bytes()).unwrap(), b"getppid");
        let errno_chain = [build("name: uint", 4), build("name: errno", 4)];
        assert_eq!(chain(&errno_chain, &2u32.to_ne_bytes()).unwrap(), b"ENOENT");
        assert_eq!(
            chain(&errno_chain, &999u32.to_ne_bytes()).unwrap(),
            b"unknown:999"
        );
        let failed = chain(&[build("name: uint", 3)], &[1, 2, 3]).unwrap_err();
        assert_eq!(failed.0, Some("uint"));
    }

    #[test]
    fn strings_hex_ips_and_dnames() {
        assert_eq!(value(Decoder::String.decode(b"bash\0\0\0")), "bash");
        assert_eq!(value(Decoder::Hex.decode(&[0xde, 0xad])), "dead");
        assert_eq!(value(Decoder::InetIp.decode(&[10, 0, 0, 1])), "10.0.0.1");
        let mapped = std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped();
        assert_eq!(value(Decoder::InetIp.decode(&mapped.octets())), "127.0.0.1");
        let v6 = std::net::Ipv6Addr::LOCALHOST.octets();
        assert_eq!(value(Decoder::InetIp.decode(&v6)), "::1");
        assert_eq!(
            value(Decoder::Dname.decode(b"\x03www\x07example\x03com\0")),
            "www.example.com"
        );
        assert_eq!(value(Decoder::Dname.decode(b"\0")), ".");
    }

    #[test]
    fn static_map_and_regexp() {
        let map = build("{name: static_map, static_map: {1: one, two: 2}}", 1);
        assert_eq!(value(map.decode(b"1")), "one");
        assert_eq!(value(map.decode(b"two")), "2");
        assert_eq!(value(map.decode(b"3")), "unknown:3");
        let open = build(
            "{name: static_map, allow_unknown: true, static_map: {1: one}}",
            1,
        );
        assert_eq!(value(open.decode(b"3")), "3");
        let re = build("{name: regexp, regexps: ['^sonde-(\\w+)$', '^keep$']}", 16);
        assert_eq!(value(re.decode(b"sonde-test")), "test");
        assert_eq!(value(re.decode(b"keep")), "keep");
        assert_eq!(re.decode(b"other"), Outcome::Skip);
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        let err = |yaml: &str, size| {
            Decoder::build(&serde_yaml::from_str(yaml).unwrap(), size)
                .unwrap_err()
                .to_string()
        };
        assert!(err("name: ksym", 4).contains("expected 8"));
        assert!(err("name: static_map", 4).contains("without static_map"));
        assert!(err("{name: regexp, regexps: ['(']}", 4).contains("regexp \"(\""));
        assert!(err("{name: uint, regexps: ['a']}", 4).contains("only for regexp"));
    }
}
