//! Names the running machine gives to numbers in a key: kernel symbols
//! (/proc/kallsyms, read once), block devices (/proc/partitions), network
//! interfaces and cgroups (sonde's shared resolver, [`crate::collect::cgroup`]).
//! A number with no name here becomes one `unknown` value per kind, not one
//! per number, so a churn of ids cannot grow a metric's series.

use std::sync::OnceLock;

use super::{text, Outcome};

/// Kernel symbols sorted by address.
fn kallsyms() -> &'static [(u64, String)] {
    static SYMBOLS: OnceLock<Vec<(u64, String)>> = OnceLock::new();
    SYMBOLS.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut symbols: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
                let name = fields.nth(1)?;
                (addr != 0).then(|| (addr, name.to_string()))
            })
            .collect();
        symbols.sort_unstable();
        symbols
    })
}

/// The address of kernel symbol `name`, for `kaddrs`.
pub fn address_of(name: &str) -> Option<u64> {
    kallsyms()
        .iter()
        .find(|(_, symbol)| symbol == name)
        .map(|(addr, _)| *addr)
}

/// The symbol whose code holds `addr`: the last one at or below it.
fn symbol(addr: u64) -> Option<&'static str> {
    let symbols = kallsyms();
    let at = symbols.partition_point(|(start, _)| *start <= addr);
    at.checked_sub(1).map(|i| symbols[i].1.as_str())
}

fn word(input: &[u8]) -> u64 {
    u64::from_ne_bytes(input.try_into().unwrap_or_default())
}

pub fn ksym(input: &[u8]) -> Outcome {
    let addr = word(input);
    match symbol(addr) {
        Some(name) => text(name),
        None => text(format!("unknown_addr:0x{addr:x}")),
    }
}

pub fn kstack(input: &[u8]) -> Outcome {
    let frames: Vec<&str> = input
        .chunks_exact(8)
        .map(word)
        .take_while(|&addr| addr != 0)
        .map(|addr| symbol(addr).unwrap_or("??"))
        .collect();
    text(frames.join("\n"))
}

pub fn major_minor(input: &[u8]) -> Outcome {
    let dev = u32::from_ne_bytes(input[..4].try_into().unwrap_or_default());
    // The kernel's new_encode_dev: minor's low byte, major, minor's rest.
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    let partitions = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    let name = partitions.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() == 4 && fields[0] == major.to_string() && fields[1] == minor.to_string())
            .then(|| fields[3].to_string())
    });
    text(name.unwrap_or_else(|| format!("unknown:{major}:{minor}")))
}

pub fn ifname(input: &[u8]) -> Outcome {
    let index = u32::from_ne_bytes(input[..4].try_into().unwrap_or_default());
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname writes.
    let found = unsafe { libc::if_indextoname(index, name.as_mut_ptr().cast()) };
    if found.is_null() {
        return text(format!("unknown:{index}"));
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Outcome::Value(name[..end].to_vec())
}

/// A cgroup id as its path under the cgroup v2 mount; every id no walk of the
/// hierarchy finds shares one `unknown_cgroup` value.
pub fn cgroup(id: u64) -> Outcome {
    let path = crate::collect::cgroup::shared()
        .lock()
        .ok()
        .and_then(|mut cgroups| cgroups.path(id));
    match path.and_then(|path| full_cgroup_path(&path)) {
        Some(full) => text(full),
        None => text("unknown_cgroup"),
    }
}

/// A cgroup's path relative to the cgroup v2 root ("/" for the root
/// itself) as a path under its mount, e.g. /sys/fs/cgroup/system.slice.
pub fn full_cgroup_path(relative: &str) -> Option<String> {
    let root = crate::collect::cgroup::v2_root()?;
    Some(match relative.trim_start_matches('/') {
        "" => root.display().to_string(),
        relative => root.join(relative).display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_as_the_kernel_encodes_them() {
        // sda1 is 8:1: new_encode_dev gives 0x801.
        let Outcome::Value(name) = major_minor(&0x801u32.to_ne_bytes()) else {
            panic!()
        };
        let name = String::from_utf8(name).unwrap();
        assert!(name == "sda1" || name == "unknown:8:1", "{name}");
    }

    #[test]
    fn addresses_name_their_symbols() {
        // Hidden addresses (no root) leave nothing to look up.
        let Some(addr) = address_of("schedule") else {
            return;
        };
        assert_eq!(
            ksym(&addr.to_ne_bytes()),
            Outcome::Value(b"schedule".to_vec())
        );
        let stack = [addr.to_ne_bytes(), (addr + 1).to_ne_bytes(), [0; 8]].concat();
        assert_eq!(
            kstack(&stack),
            Outcome::Value(b"schedule\nschedule".to_vec())
        );
        assert_eq!(
            ksym(&1u64.to_ne_bytes()),
            Outcome::Value(b"unknown_addr:0x1".to_vec())
        );
    }

    #[test]
    fn cgroup_ids_name_their_paths() {
        use std::os::unix::fs::MetadataExt;
        let Some(root) = crate::collect::cgroup::v2_root() else {
            return;
        };
        let id = std::fs::metadata(&root).unwrap().ino();
        let expected = root.display().to_string().into_bytes();
        assert_eq!(cgroup(id), Outcome::Value(expected));
        assert_eq!(cgroup(u64::MAX), Outcome::Value(b"unknown_cgroup".to_vec()));
    }

    #[test]
    fn loopback_has_a_name() {
        assert_eq!(ifname(&1u32.to_ne_bytes()), Outcome::Value(b"lo".to_vec()));
        assert_eq!(
            ifname(&999_999u32.to_ne_bytes()),
            Outcome::Value(b"unknown:999999".to_vec())
        );
    }
}
