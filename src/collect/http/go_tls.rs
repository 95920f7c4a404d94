//! Go's crypto/tls: where the http collector's uprobes go in a Go
//! executable (`bpf/http.bpf.c` explains what they do with the plaintext).
//!
//! Go links crypto/tls into each executable, and most are stripped of their
//! ELF symbols, but every Go executable keeps its pclntab (the runtime's
//! own table of functions, for stack traces): the entries of
//! `crypto/tls.(*Conn).Read`, `Write` and `Close` are read there. Read's
//! return cannot be a uretprobe (it rewrites the return address on the
//! goroutine's stack, which Go moves as it grows), so each of its RET
//! instructions gets a probe of its own. They are found without a disassembler:
//! the pclntab's stack-pointer table (pcsp) gives the frame's size at each
//! instruction, and a RET is the first instruction of a stretch after the
//! entry where the frame is gone (the epilogue popped it), checked to be
//! the byte 0xC3.
//!
//! Covered: Go 1.18 and later on x86_64 (the pclntab layout of 1.18, and
//! the register ABI the programs read arguments from). Earlier Go
//! executables are reported as not covered, not probed.

use std::path::Path;

use anyhow::{bail, ensure, Context};

use super::elf::{u32_at, u64_at, Elf};

/// The attach cookies: GO_OP_* in bpf/http.bpf.c.
const READ_OP: u64 = 0;
const WRITE: u64 = 1;
const CLOSE: u64 = 2;
const RETURN: u64 = 4;

/// The functions probed at their entry, with their cookies; Read at its
/// returns too.
const FUNCTIONS: [(&str, u64); 3] = [
    ("crypto/tls.(*Conn).Read", READ_OP),
    ("crypto/tls.(*Conn).Write", WRITE),
    ("crypto/tls.(*Conn).Close", CLOSE),
];

/// pclntab's magic numbers: Go 1.18-1.19, and 1.20 onwards; before 1.18.
const MAGIC_1_18: u32 = 0xffff_fff0;
const MAGIC_1_20: u32 = 0xffff_fff1;
const MAGIC_OLDER: [u32; 2] = [0xffff_fffa, 0xffff_fffb];

/// A probe point: its file offset and cookie.
pub type Point = (usize, u64);

/// The probe points of a Go executable that links crypto/tls; None for any
/// other file (not ELF, not Go, or Go without crypto/tls); an error for a
/// Go executable sonde cannot probe, saying why.
pub fn probe_points(path: &Path) -> anyhow::Result<Option<Vec<Point>>> {
    let Some(elf) = Elf::open(path)? else {
        return Ok(None);
    };
    let Some(pclntab) = pclntab(&elf)? else {
        return Ok(None);
    };
    let table = Pclntab::parse(&pclntab)?;
    let mut wanted = FUNCTIONS.map(|_| None);
    for index in 0..table.functions {
        let Some(name) = table.name(index) else {
            continue;
        };
        if let Some(slot) = FUNCTIONS
            .iter()
            .position(|(want, _)| name == want.as_bytes())
        {
            wanted[slot] = Some(index);
        }
    }
    let [Some(read), Some(write), close] = wanted else {
        return Ok(None); // no crypto/tls connections in this program
    };
    let probed = [(read, FUNCTIONS[0]), (write, FUNCTIONS[1])]
        .into_iter()
        .chain(close.map(|close| (close, FUNCTIONS[2])));
    let mut points = Vec::new();
    for (index, (name, op)) in probed {
        let (entry, end) = table.span(index).context("a function out of pclntab")?;
        points.push((elf.file_offset(entry)?, op));
        if op != READ_OP {
            continue; // taken at their entry (bpf/http.bpf.c, go_tls)
        }
        let code = elf.code(entry, end)?;
        let rets: Vec<u64> = table
            .frameless_stretches(index, entry, end)?
            .into_iter()
            .filter(|&at| code.get((at - entry) as usize) == Some(&0xc3))
            .collect();
        ensure!(!rets.is_empty(), "no RET found in {name}");
        for at in rets {
            points.push((elf.file_offset(at)?, op | RETURN));
        }
    }
    Ok(Some(points))
}

/// The pclntab's bytes: its own section, or (position-independent
/// executables) inside .data.rel.ro, found by its header; None when the
/// file has neither: not Go.
fn pclntab(elf: &Elf) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(pclntab) = elf.section(".gopclntab")? {
        return Ok(Some(pclntab));
    }
    let Some(data) = elf.section(".data.rel.ro")? else {
        return Ok(None);
    };
    // magic, two zero bytes, instruction size 1, pointer size 8.
    let start = (0..data.len().saturating_sub(8)).step_by(8).find(|&at| {
        let magic = u32_at(&data, at).unwrap_or(0);
        (magic == MAGIC_1_18 || magic == MAGIC_1_20) && data[at + 4..at + 8] == [0, 0, 1, 8]
    });
    Ok(start.map(|start| data[start..].to_vec()))
}

/// A Go 1.18+ pclntab (runtime/symtab.go's pcHeader, functab and _func).
struct Pclntab<'a> {
    bytes: &'a [u8],
    functions: usize,
    text_start: u64,
    names: usize,
    pc_tables: usize,
    function_table: usize,
}

impl<'a> Pclntab<'a> {
    fn parse(bytes: &'a [u8]) -> anyhow::Result<Pclntab<'a>> {
        let magic = u32_at(bytes, 0).context("an empty pclntab")?;
        if MAGIC_OLDER.contains(&magic) {
            bail!("built by Go before 1.18: its TLS is not covered");
        }
        ensure!(
            magic == MAGIC_1_18 || magic == MAGIC_1_20,
            "an unknown pclntab (magic {magic:#x})"
        );
        ensure!(bytes.get(7) == Some(&8), "not a 64-bit Go executable");
        let word = |at| {
            u64_at(bytes, at)
                .map(|v| v as usize)
                .context("a truncated pclntab")
        };
        Ok(Pclntab {
            bytes,
            functions: word(8)?,
            text_start: word(24)? as u64,
            names: word(32)?,
            pc_tables: word(56)?,
            function_table: word(64)?,
        })
    }

    /// The offset of function `index`'s _func.
    fn func(&self, index: usize) -> Option<usize> {
        let offset = u32_at(self.bytes, self.function_table + index * 8 + 4)?;
        Some(self.function_table + offset as usize)
    }

    fn name(&self, index: usize) -> Option<&'a [u8]> {
        let name_offset = u32_at(self.bytes, self.func(index)? + 4)?;
        let name = self.bytes.get(self.names + name_offset as usize..)?;
        Some(&name[..name.iter().position(|&b| b == 0)?])
    }

    /// Function `index`'s first address and the next function's.
    fn span(&self, index: usize) -> Option<(u64, u64)> {
        let entry = |i: usize| {
            u32_at(self.bytes, self.function_table + i * 8).map(|o| self.text_start + o as u64)
        };
        Some((entry(index)?, entry(index + 1)?))
    }

    /// The first address of each stretch of function `index` (from `entry`
    /// to `end`), past its entry, where the stack pointer is back where it
    /// was at the entry: the frame popped, so a RET, or the stack-growth
    /// call at the end, whose first byte is no RET.
    fn frameless_stretches(&self, index: usize, entry: u64, end: u64) -> anyhow::Result<Vec<u64>> {
        let truncated = || anyhow::anyhow!("a truncated pcsp table");
        let pcsp = u32_at(self.bytes, self.func(index).ok_or_else(truncated)? + 16)
            .ok_or_else(truncated)?;
        let mut at = self.pc_tables + pcsp as usize;
        let mut varint = || -> anyhow::Result<u32> {
            let mut value = 0u32;
            for shift in (0..35).step_by(7) {
                let byte = *self.bytes.get(at).ok_or_else(truncated)?;
                at += 1;
                value |= u32::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return Ok(value);
                }
            }
            bail!("a malformed pcsp table")
        };
        // runtime.step: a zigzag value delta, then a pc delta (x86: one byte
        // a unit); a zero value delta after the first pair ends the table.
        let (mut pc, mut value, mut found) = (entry, -1i64, Vec::new());
        let mut first = true;
        loop {
            let value_delta = varint()?;
            if value_delta == 0 && !first {
                break;
            }
            first = false;
            value += i64::from((value_delta >> 1) as i32 ^ -((value_delta & 1) as i32));
            let start = pc;
            pc += u64::from(varint()?);
            if value == 0 && start > entry && start < end {
                found.push(start);
            }
            if pc >= end {
                break;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's prometheus: a stripped Go executable with crypto/tls.
    const GO_PROGRAM: &str = "/usr/bin/prometheus";

    #[test]
    fn finds_the_probe_points_of_a_stripped_go_executable() {
        if !Path::new(GO_PROGRAM).exists() {
            eprintln!("skipped: no {GO_PROGRAM} (make test-deps installs it)");
            return;
        }
        let points = probe_points(Path::new(GO_PROGRAM))
            .unwrap()
            .expect("prometheus links crypto/tls");
        let entries: Vec<u64> = points
            .iter()
            .map(|&(_, op)| op)
            .filter(|op| op & RETURN == 0)
            .collect();
        assert_eq!(entries, [0, WRITE, CLOSE]);
        let image = std::fs::read(GO_PROGRAM).unwrap();
        for (offset, op) in &points {
            if op & RETURN != 0 {
                assert_eq!(image[*offset], 0xc3, "a RET at {offset:#x}");
            }
        }
        assert!(points.iter().any(|&(_, op)| op == READ_OP | RETURN));
        assert!(points
            .iter()
            .all(|&(_, op)| op & RETURN == 0 || op == READ_OP | RETURN));
    }

    #[test]
    fn leaves_other_files_alone() {
        // sonde itself: Rust, no pclntab.
        assert!(probe_points(Path::new("/proc/self/exe")).unwrap().is_none());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert!(probe_points(&manifest).unwrap().is_none());
        assert!(probe_points(Path::new("/no/such/file")).is_err());
    }
}
