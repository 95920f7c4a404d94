//! PCI names from the pci.ids database (/usr/share/misc/pci.ids or
//! /usr/share/hwdata/pci.ids), read once on first use. Without it every PCI
//! decoder gives `missing pci.ids db`, as ebpf_exporter does, and the log
//! says so once.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{text, Outcome};

const PATHS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];
const MISSING: &str = "missing pci.ids db";

#[derive(Default)]
struct Db {
    vendors: HashMap<u16, String>,
    /// Devices by id alone, as ebpf_exporter looks them up (the first
    /// vendor listing an id wins).
    devices: HashMap<u16, String>,
    classes: HashMap<u8, String>,
    subclasses: HashMap<(u8, u8), String>,
}

fn db() -> Option<&'static Db> {
    static DB: OnceLock<Option<Db>> = OnceLock::new();
    DB.get_or_init(|| {
        let Some(text) = PATHS.iter().find_map(|p| std::fs::read_to_string(p).ok()) else {
            tracing::warn!(
                "none of {} is readable: pci_* decoders give {MISSING:?} (install pciutils or hwdata)",
                PATHS.join(", ")
            );
            return None;
        };
        Some(parse(&text))
    })
    .as_ref()
}

fn parse(text: &str) -> Db {
    let mut db = Db::default();
    let mut class = None;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let hex = |s: &str| u16::from_str_radix(s, 16).ok();
        if let Some(rest) = line.strip_prefix("C ") {
            let (id, name) = rest.split_once("  ").unwrap_or((rest, ""));
            class = hex(id.trim()).and_then(|c| u8::try_from(c).ok());
            if let Some(c) = class {
                db.classes.insert(c, name.trim().to_string());
            }
        } else if let Some(rest) = line.strip_prefix('\t') {
            if rest.starts_with('\t') {
                continue; // subsystem or programming interface
            }
            let (id, name) = rest.split_once("  ").unwrap_or((rest, ""));
            match class {
                Some(c) => {
                    if let Some(sub) = hex(id).and_then(|s| u8::try_from(s).ok()) {
                        db.subclasses.insert((c, sub), name.trim().to_string());
                    }
                }
                None => {
                    if let Some(device) = hex(id) {
                        db.devices
                            .entry(device)
                            .or_insert_with(|| name.trim().to_string());
                    }
                }
            }
        } else if let Some((id, name)) = line.split_once("  ") {
            class = None;
            if let Some(vendor) = hex(id) {
                db.vendors.insert(vendor, name.trim().to_string());
            }
        }
    }
    db
}

fn named(found: Option<&String>, unknown: String) -> Outcome {
    match db() {
        None => text(MISSING),
        Some(_) => text(found.cloned().unwrap_or(unknown)),
    }
}

pub fn vendor(n: u64) -> Outcome {
    let found = db().and_then(|db| db.vendors.get(&(n as u16)));
    named(found, format!("unknown pci vendor: 0x{n:02x}"))
}

pub fn device(n: u64) -> Outcome {
    let found = db().and_then(|db| db.devices.get(&(n as u16)));
    named(found, format!("unknown pci device: 0x{n:04x}"))
}

pub fn class(n: u64) -> Outcome {
    let found = db().and_then(|db| db.classes.get(&(n as u8)));
    named(found, format!("unknown pci class: 0x{n:02x}"))
}

/// `n` is class << 8 | subclass.
pub fn subclass(n: u64) -> Outcome {
    let (class, sub) = ((n >> 8) as u8, n as u8);
    let found = db().and_then(|db| db.subclasses.get(&(class, sub)));
    named(
        found,
        format!("unknown pci subclass: 0x{sub:02x} (class 0x{class:02x})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vendors_devices_and_classes() {
        let db = parse(
            "# comment\n8086  Intel Corporation\n\t1237  440FX - 82441FX PMC [Natoma]\n\t\t1af4 1100  Qemu\nC 01  Mass storage controller\n\t08  Non-Volatile memory controller\n\t\t02  NVM Express\n",
        );
        assert_eq!(db.vendors[&0x8086], "Intel Corporation");
        assert_eq!(db.devices[&0x1237], "440FX - 82441FX PMC [Natoma]");
        assert_eq!(db.classes[&0x01], "Mass storage controller");
        assert_eq!(
            db.subclasses[&(0x01, 0x08)],
            "Non-Volatile memory controller"
        );
    }
}
