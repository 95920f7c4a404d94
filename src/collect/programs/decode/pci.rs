//! PCI names from the pci.ids database (/usr/share/misc/pci.ids, Debian's
//! `pci.ids` package, or /usr/share/hwdata/pci.ids), read once on first use.
//! Inputs and names are ebpf_exporter's: `pci_vendor` takes a vendor id,
//! `pci_device` vendor << 16 | device (a device id means nothing without its
//! vendor), `pci_class` a class byte and `pci_subclass` class << 8 |
//! subclass; an id the database lacks becomes `unknown pci vendor: 0x...`
//! (device, class alike; a subclass of an unknown class is an unknown
//! class). Without the database every PCI decoder gives `missing pci.ids
//! db`, as ebpf_exporter does, and the log says once which files it looked
//! for: one series per metric, not one per id, until it is installed.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{text, Outcome};

const PATHS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];
const MISSING: &str = "missing pci.ids db";

#[derive(Default)]
struct Db {
    vendors: HashMap<u16, String>,
    /// Devices by vendor << 16 | device.
    devices: HashMap<u32, String>,
    classes: HashMap<u8, String>,
    subclasses: HashMap<(u8, u8), String>,
}

fn db() -> Option<&'static Db> {
    static DB: OnceLock<Option<Db>> = OnceLock::new();
    DB.get_or_init(|| read(&PATHS)).as_ref()
}

/// The first of `paths` that can be read, parsed; None (said once in the
/// log) when none can.
fn read(paths: &[&str]) -> Option<Db> {
    let Some(text) = paths.iter().find_map(|p| std::fs::read_to_string(p).ok()) else {
        tracing::warn!(
            "none of {} is readable: pci_* decoders give {MISSING:?} (install pci.ids or hwdata)",
            paths.join(", ")
        );
        return None;
    };
    Some(parse(&text))
}

fn parse(text: &str) -> Db {
    let mut db = Db::default();
    let mut class = None;
    let mut vendor = None;
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
                    if let (Some(vendor), Some(device)) = (vendor, hex(id)) {
                        let key = u32::from(vendor) << 16 | u32::from(device);
                        db.devices.insert(key, name.trim().to_string());
                    }
                }
            }
        } else if let Some((id, name)) = line.split_once("  ") {
            class = None;
            vendor = hex(id);
            if let Some(vendor) = vendor {
                db.vendors.insert(vendor, name.trim().to_string());
            }
        }
    }
    db
}

/// The name `lookup` finds in the database, or `unknown` without one.
fn named(db: Option<&Db>, lookup: impl FnOnce(&Db) -> Option<&String>, unknown: String) -> Outcome {
    match db {
        None => text(MISSING),
        Some(db) => text(lookup(db).cloned().unwrap_or(unknown)),
    }
}

// The hex widths are ebpf_exporter's (Go's %02x, %04x: at least that many
// digits), so unknown ids read alike in both.

pub fn vendor(n: u64) -> Outcome {
    named(
        db(),
        |db| db.vendors.get(&u16::try_from(n).ok()?),
        format!("unknown pci vendor: 0x{n:02x}"),
    )
}

pub fn device(n: u64) -> Outcome {
    named(
        db(),
        |db| db.devices.get(&u32::try_from(n).ok()?),
        format!("unknown pci device: 0x{n:04x}"),
    )
}

pub fn class(n: u64) -> Outcome {
    named(
        db(),
        |db| db.classes.get(&u8::try_from(n).ok()?),
        format!("unknown pci class: 0x{n:02x}"),
    )
}

pub fn subclass(n: u64) -> Outcome {
    subclass_in(db(), n)
}

fn subclass_in(db: Option<&Db>, n: u64) -> Outcome {
    let (class, sub) = (n >> 8, n & 0xff);
    let known_class =
        db.is_some_and(|db| u8::try_from(class).is_ok_and(|c| db.classes.contains_key(&c)));
    let unknown = if known_class {
        format!("unknown pci subclass: 0x{sub:02x} (class 0x{class:02x})")
    } else {
        format!("unknown pci class: 0x{class:02x}")
    };
    named(
        db,
        |db| db.subclasses.get(&(u8::try_from(class).ok()?, sub as u8)),
        unknown,
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
        assert_eq!(db.devices[&0x8086_1237], "440FX - 82441FX PMC [Natoma]");
        assert_eq!(db.classes[&0x01], "Mass storage controller");
        assert_eq!(
            db.subclasses[&(0x01, 0x08)],
            "Non-Volatile memory controller"
        );
        let name = |outcome| match outcome {
            Outcome::Value(v) => String::from_utf8(v).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(subclass_in(Some(&db), 0x0108)),
            "Non-Volatile memory controller"
        );
        assert_eq!(
            name(subclass_in(Some(&db), 0x0109)),
            "unknown pci subclass: 0x09 (class 0x01)"
        );
        assert_eq!(
            name(subclass_in(Some(&db), 0x7f01)),
            "unknown pci class: 0x7f"
        );
    }

    /// Without the database every decoder gives one value, as
    /// ebpf_exporter's do.
    #[test]
    fn without_pci_ids_every_id_reads_missing() {
        let db = read(&["/nonexistent/pci.ids"]);
        assert!(db.is_none());
        assert_eq!(
            named(db.as_ref(), |db| db.vendors.get(&0x8086), "unknown".into()),
            Outcome::Value(MISSING.as_bytes().to_vec())
        );
        assert_eq!(
            subclass_in(db.as_ref(), 0x0108),
            Outcome::Value(MISSING.as_bytes().to_vec())
        );
    }
}
