//! Which functions an idle sonde calls, for the linker to lay them out side
//! by side (needs root; the sonde binary cargo built):
//!
//!     cargo bench --bench hot_text -- [SECONDS [OUTPUT]]
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md, "Idle:
//! the code an idle round runs, laid out together").
//!
//! Two sondes at a 1 s interval (a copy of the binary written a page at a
//! time, so that its page cache is small folios), each for SECONDS
//! (default 130: two minute-long maintenance passes and checkpoints, a
//! chunk cut from the head). The first says which pages of code stay
//! resident once the startup pages are released, the functions on them
//! are the candidates; in the second, a uprobe on each candidate
//! (`bpf/hot_text.bpf.c`) counts its calls from its first round on. The
//! names of the functions called go, in the binary's order, to OUTPUT (default
//! `link/hot-text.txt`), which `build.rs` hands to the linker as its symbol
//! ordering file, and the bench prints how much code that is.
//!
//! Why: after the release, the rounds touch about a MiB of code scattered
//! over the binary's 13 MiB, and the kernel maps 64 KiB around every page a
//! fault touches, so the scattered set kept ~8 MiB resident.
//!
//! The list is written after SECONDS twice, then the bench's process takes
//! long to exit (over half an hour here): the kernel removes its ~9,000
//! uprobes one by one, each after a wait for an RCU grace period.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::mem::MaybeUninit;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, UprobeOpts};

use common::{Sonde, TempDir, SONDE};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/hot_text.skel.rs"));
}

const PAGE: u64 = 4096;

/// One function of the binary: where it starts and every name it has there.
struct Function {
    address: u64,
    size: u64,
    names: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds: u64 = match args.first() {
        Some(s) => s.parse().context("SECONDS must be a whole number")?,
        None => 130,
    };
    let output = args.get(1).map_or("link/hot-text.txt", String::as_str);

    let dir = TempDir::new("hot-text");
    let binary = dir.0.join("sonde");
    copy_in_pages(Path::new(SONDE), &binary)?;
    let functions = functions(&binary);
    let offsets = file_offsets(&binary, &functions)?;

    // Stage one: what a sonde keeps resident after its startup pages are
    // released. Pages come back a 64 KiB window at a time, so the functions
    // on them are a few times more than those called, but far fewer than
    // all, and none that only starting calls.
    let sonde = Sonde::start_program(&binary, TempDir::new("data"), "", &[]);
    std::thread::sleep(Duration::from_secs(seconds));
    let resident = resident_pages(sonde.child.id() as i32, &binary)?;
    sonde.stop();
    let candidates: Vec<(u64, usize)> = (0..)
        .zip(offsets)
        .zip(&functions)
        .filter(|(_, f)| {
            (f.address / PAGE..(f.address + f.size).div_ceil(PAGE)).any(|p| resident.contains(&p))
        })
        .map(|(probe, _)| probe)
        .collect();

    // Stage two: a uprobe on each of them counts their calls in a second
    // sonde, from its first round on: work done once but late (the first
    // maintenance pass compiles its SQL statements) is counted too.
    // (Uprobes placed before it started made it die of SIGBUS.) One
    // uprobe.multi link on every function left most calls uncounted here
    // (a function bpftrace counted 374 times in 20 s, none), so each has a
    // perf event of its own, two files, within the limit on open files.
    let mut storage = MaybeUninit::uninit();
    let skel = skel::HotTextSkelBuilder::default()
        .open(&mut storage)?
        .load()
        .context("cannot load the call counter (root needed)")?;
    let most = probes_at_once()?;
    if candidates.len() > most {
        eprintln!(
            "{} functions on resident pages, more than the {most} uprobes open files allow: counting the first {most}",
            candidates.len()
        );
    }
    let sonde = Sonde::start_program(&binary, TempDir::new("data"), "", &[]);
    let mut links = Vec::new();
    let refused = attach(
        &skel.progs.count_call,
        &binary,
        sonde.child.id() as i32,
        &candidates[..candidates.len().min(most)],
        &mut links,
    );
    eprintln!(
        "counting calls to {} of {} functions for {seconds} s ({refused} refuse a uprobe)",
        links.len(),
        functions.len()
    );
    std::thread::sleep(Duration::from_secs(seconds));

    let mut called = Vec::new();
    for (index, function) in functions.iter().enumerate() {
        let key = (index as u32).to_ne_bytes();
        let value = skel.maps.calls.lookup(&key, MapFlags::ANY)?;
        let calls = value.map_or(0, |v| u64::from_ne_bytes(v[..8].try_into().unwrap()));
        if calls > 0 {
            called.push(function);
        }
    }
    sonde.stop();
    if called.is_empty() {
        bail!("no call counted: did the uprobes attach to the running sonde?");
    }
    let bytes: u64 = called.iter().map(|f| f.size).sum();
    let all: u64 = functions.iter().map(|f| f.size).sum();
    let mut text = String::from(
        "# The functions an idle sonde calls, in the binary's order: the linker\n\
         # lays them out first, side by side (build.rs, --symbol-ordering-file),\n\
         # so the pages an idle round touches are few and together.\n\
         # Made by `cargo bench --bench hot_text`; names the build no longer has\n\
         # are skipped, so an old list only lays out less.\n",
    );
    // Local functions of different units may share a name; once is enough.
    let mut listed = HashSet::new();
    for name in called.iter().flat_map(|f| &f.names) {
        if listed.insert(name) {
            text.push_str(name);
            text.push('\n');
        }
    }
    std::fs::write(output, text).with_context(|| format!("cannot write {output}"))?;
    println!(
        "{} of {} functions called, {} KiB of {} KiB of code: written to {output}",
        called.len(),
        functions.len(),
        bytes >> 10,
        all >> 10
    );
    Ok(())
}

/// Copies `from` to `to` a page at a time: the kernel makes page cache
/// folios the size of the writes, and a fault maps a whole folio, so the
/// pages resident in stage one say which 64 KiB windows the rounds touch,
/// not which of the larger folios a copy made whole would be held in.
fn copy_in_pages(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut file = std::fs::File::create(to)?;
    for page in bytes.chunks(4096) {
        file.write_all(page)?;
    }
    file.sync_all()?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// How many uprobes this process may hold (two files each), once its soft
/// limit on open files is raised to the hard one.
fn probes_at_once() -> anyhow::Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    // Room for the files the bench itself holds.
    Ok((limit.rlim_cur as usize / 2).saturating_sub(500))
}

/// Attaches `program` to every (cookie, offset) of `probes` in `binary`
/// run by `pid`, one uprobe each; returns how many the kernel refuses (an
/// instruction it cannot step over at their start).
fn attach(
    program: &libbpf_rs::ProgramMut,
    binary: &Path,
    pid: i32,
    probes: &[(u64, usize)],
    links: &mut Vec<libbpf_rs::Link>,
) -> usize {
    let mut refused = 0;
    for &(cookie, offset) in probes {
        let opts = UprobeOpts {
            cookie,
            ..Default::default()
        };
        match program.attach_uprobe_with_opts(pid, binary, offset, opts) {
            Ok(link) => links.push(link),
            Err(_) => refused += 1,
        }
    }
    refused
}

/// The page numbers (address / [`PAGE`]) of `binary`'s executable mapping
/// in process `pid` that are resident.
fn resident_pages(pid: i32, binary: &Path) -> anyhow::Result<HashSet<u64>> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap"))?;
    let path = binary.to_string_lossy();
    let mut resident = HashSet::new();
    for line in maps
        .lines()
        .filter(|l| l.ends_with(&*path) && l.contains(" r-xp "))
    {
        let (start, end) = line
            .split_once(' ')
            .and_then(|(range, _)| range.split_once('-'))
            .context("a line of /proc/PID/maps")?;
        let (start, end) = (
            u64::from_str_radix(start, 16)?,
            u64::from_str_radix(end, 16)?,
        );
        let mut entries = vec![0u8; ((end - start) / PAGE * 8) as usize];
        pagemap.read_exact_at(&mut entries, start / PAGE * 8)?;
        for (i, entry) in entries.chunks_exact(8).enumerate() {
            if u64::from_ne_bytes(entry.try_into().unwrap()) >> 63 == 1 {
                resident.insert(start / PAGE + i as u64);
            }
        }
    }
    Ok(resident)
}

/// The binary's functions, one per address with every name it has there.
fn functions(binary: &Path) -> Vec<Function> {
    let mut by_address: BTreeMap<u64, Function> = BTreeMap::new();
    for (address, size, name) in common::text_symbols(binary) {
        let function = by_address.entry(address).or_insert(Function {
            address,
            size,
            names: Vec::new(),
        });
        function.names.push(name);
    }
    by_address.into_values().collect()
}

/// Each function's offset in the file, as uprobes want it: the executable
/// load segment holding it says where its address lies in the file.
fn file_offsets(binary: &Path, functions: &[Function]) -> anyhow::Result<Vec<usize>> {
    let elf = std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        bail!("{} is not a 64-bit ELF file", binary.display());
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    // (virtual address, size in the file, offset in the file) of each
    // executable PT_LOAD segment.
    let segments: Vec<(u64, u64, u64)> = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| u32_at(ph) == 1 && u32_at(ph + 4) & 1 != 0)
        .map(|ph| (u64_at(ph + 0x10), u64_at(ph + 0x20), u64_at(ph + 8)))
        .collect();
    functions
        .iter()
        .map(|f| {
            let (vaddr, _, offset) = segments
                .iter()
                .find(|(vaddr, filesz, _)| (*vaddr..vaddr + filesz).contains(&f.address))
                .with_context(|| format!("{} is in no executable segment", f.names[0]))?;
            Ok((f.address - vaddr + offset) as usize)
        })
        .collect()
}
