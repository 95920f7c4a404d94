//! The functions an idle sonde calls (`link/hot-text.txt`, made by `cargo
//! bench --bench hot_text`) lie side by side in the binary's code: build.rs
//! hands the list to the linker, and an idle round then touches a few pages
//! of code instead of pages all over the binary.

use std::collections::HashSet;
use std::process::Command;

const SONDE: &str = env!("CARGO_BIN_EXE_sonde");
const LIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/link/hot-text.txt");

/// (address, size, name) of every function of the binary, by address.
fn functions() -> Vec<(u64, u64, String)> {
    let out = Command::new("nm")
        .args(["--defined-only", "--print-size", "--numeric-sort", SONDE])
        .output()
        .expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {SONDE} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            let [address, size, kind, name] = fields[..] else {
                return None;
            };
            let text = matches!(kind, "t" | "T" | "W" | "w");
            let address = u64::from_str_radix(address, 16).ok()?;
            let size = u64::from_str_radix(size, 16).ok()?;
            (text && size > 0).then(|| (address, size, name.to_string()))
        })
        .collect()
}

#[test]
fn the_functions_an_idle_round_calls_lie_together() {
    let list = std::fs::read_to_string(LIST).expect("link/hot-text.txt is committed");
    let listed: HashSet<&str> = list
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let functions = functions();
    let hot: Vec<&(u64, u64, String)> = functions
        .iter()
        .filter(|(_, _, name)| listed.contains(name.as_str()))
        .collect();
    let found: HashSet<&str> = hot.iter().map(|(_, _, name)| name.as_str()).collect();
    // Functions renamed since the list was made are not moved; when most
    // are, the list no longer describes this code.
    assert!(
        found.len() * 10 >= listed.len() * 8,
        "only {} of the {} functions of link/hot-text.txt are in the binary: \
         make the list again (`cargo bench --bench hot_text`)",
        found.len(),
        listed.len()
    );
    let bytes: u64 = hot.iter().map(|(_, size, _)| size).sum();
    let first = hot.first().expect("some listed function").0;
    let last = hot.last().map(|(address, size, _)| address + size).unwrap();
    assert!(
        last - first <= bytes + bytes / 4,
        "the {} listed functions ({} KiB) are spread over {} KiB: \
         is the linker LLD (build.rs passes --symbol-ordering-file)?",
        hot.len(),
        bytes >> 10,
        (last - first) >> 10
    );
}
