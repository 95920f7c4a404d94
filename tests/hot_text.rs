//! The functions an idle sonde calls (`link/hot-text.txt`, made by `cargo
//! bench --bench hot_text`) lie side by side in the binary's code: build.rs
//! hands the list to the linker, and an idle round then touches a few pages
//! of code instead of pages all over the binary.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::SONDE;

const LIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/link/hot-text.txt");

#[test]
fn the_functions_an_idle_round_calls_lie_together() {
    let list = std::fs::read_to_string(LIST).expect("link/hot-text.txt is committed");
    let listed: HashSet<&str> = list
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let functions = common::text_symbols(Path::new(SONDE));
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
