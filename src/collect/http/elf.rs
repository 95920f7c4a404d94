//! The ELF files the TLS uprobes go on (libssl files, Go executables):
//! their loaded segments and sections, read with positioned reads, so a
//! Go executable of tens of MiB is read only where the probes need it;
//! where an address is in the file (a uprobe's offset); and a shared
//! object's exported functions.
//!
//! Only ELF64 little-endian x86_64 files are read (the programs' register
//! use is x86_64's); any other file is "not ELF" (None), and a header that
//! points outside the file is an error, found before any allocation.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{anyhow, ensure, Context};

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A section's header.
struct Section {
    name: Vec<u8>,
    kind: u32,
    offset: u64,
    size: u64,
    /// The index of its string table (a symbol table's).
    link: u32,
}

pub struct Elf {
    file: File,
    size: u64,
    /// (address, file offset, size in the file) of each PT_LOAD.
    segments: Vec<(u64, u64, u64)>,
    sections: Vec<Section>,
}

impl Elf {
    /// None when the file is not an ELF64 little-endian x86_64 object.
    pub fn open(path: &Path) -> anyhow::Result<Option<Elf>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        let mut header = [0u8; 64];
        if file.read_exact_at(&mut header, 0).is_err()
            || header[..6] != *b"\x7fELF\x02\x01"
            || u16_at(&header, 0x12) != Some(0x3e)
        {
            return Ok(None);
        }
        let mut elf = Elf {
            file,
            size,
            segments: Vec::new(),
            sections: Vec::new(),
        };
        let word = |at| u64_at(&header, at).unwrap_or(0);
        let half = |at| u16_at(&header, at).unwrap_or(0) as usize;
        let (phoff, shoff) = (word(0x20), word(0x28));
        let (phentsize, phnum, shentsize, shnum, shstrndx) =
            (half(0x36), half(0x38), half(0x3a), half(0x3c), half(0x3e));
        let bad = || anyhow!("{}: malformed ELF headers", path.display());
        let programs = elf.read(phoff, phentsize * phnum)?;
        const PT_LOAD: u32 = 1;
        elf.segments = (0..phnum)
            .map(|i| i * phentsize)
            .filter(|&at| u32_at(&programs, at) == Some(PT_LOAD))
            .map(|at| {
                Some((
                    u64_at(&programs, at + 16)?,
                    u64_at(&programs, at + 8)?,
                    u64_at(&programs, at + 32)?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let headers = elf.read(shoff, shentsize * shnum)?;
        let section = |i: usize| {
            let at = i * shentsize;
            Some(Section {
                name: Vec::new(),
                kind: u32_at(&headers, at + 4)?,
                offset: u64_at(&headers, at + 24)?,
                size: u64_at(&headers, at + 32)?,
                link: u32_at(&headers, at + 40)?,
            })
            .zip(u32_at(&headers, at))
        };
        let (names, _) = section(shstrndx).ok_or_else(bad)?;
        let names = elf.read(names.offset, names.size as usize)?;
        elf.sections = (0..shnum)
            .map(|i| {
                let (mut section, name) = section(i)?;
                let name = names.get(name as usize..)?;
                section.name = name[..name.iter().position(|&b| b == 0)?].to_vec();
                Some(section)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(Some(elf))
    }

    /// `len` bytes at `offset`; an error past the file's end.
    pub fn read(&self, offset: u64, len: usize) -> anyhow::Result<Vec<u8>> {
        ensure!(
            offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.size),
            "an ELF header points past the file's end"
        );
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The bytes of the section `name`; None when the file has none.
    pub fn section(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.sections
            .iter()
            .find(|section| section.name == name.as_bytes())
            .map(|section| self.read(section.offset, section.size as usize))
            .transpose()
    }

    /// Where address `addr` is in the file.
    pub fn file_offset(&self, addr: u64) -> anyhow::Result<usize> {
        self.segments
            .iter()
            .find(|&&(vaddr, _, size)| addr >= vaddr && addr - vaddr < size)
            .map(|&(vaddr, offset, _)| (addr - vaddr + offset) as usize)
            .with_context(|| format!("address {addr:#x} is in no loaded segment"))
    }

    /// The bytes of the file from address `start` to `end`.
    pub fn code(&self, start: u64, end: u64) -> anyhow::Result<Vec<u8>> {
        self.read(self.file_offset(start)? as u64, (end - start) as usize)
    }

    /// The file offset of the function `name` the shared object exports
    /// (its dynamic symbol table), where a uprobe goes; None when it does
    /// not export it.
    pub fn exported_function(&self, name: &str) -> anyhow::Result<Option<usize>> {
        const SHT_DYNSYM: u32 = 11;
        const STT_FUNC: u8 = 2;
        const SYM_SIZE: usize = 24;
        let Some(dynsym) = self.sections.iter().find(|s| s.kind == SHT_DYNSYM) else {
            return Ok(None);
        };
        let strings = self
            .sections
            .get(dynsym.link as usize)
            .context("a dynamic symbol table without its strings")?;
        let symbols = self.read(dynsym.offset, dynsym.size as usize)?;
        let strings = self.read(strings.offset, strings.size as usize)?;
        let value = (0..symbols.len() / SYM_SIZE).find_map(|i| {
            let sym = i * SYM_SIZE;
            if symbols[sym + 4] & 0xf != STT_FUNC || u16_at(&symbols, sym + 6)? == 0 {
                return None;
            }
            let start = strings.get(u32_at(&symbols, sym)? as usize..)?;
            let end = start.iter().position(|&b| b == 0)?;
            (&start[..end] == name.as_bytes()).then(|| u64_at(&symbols, sym + 8))?
        });
        value.map(|addr| self.file_offset(addr)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `bytes` in the temporary directory, named for this test.
    fn temporary(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("sonde-elf-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn finds_exported_functions() {
        let own = Elf::open(Path::new("/proc/self/exe")).unwrap().unwrap();
        assert_eq!(
            own.exported_function("no_such_function_here").unwrap(),
            None
        );
        let text = temporary("text", b"not an elf, and shorter than its header");
        assert!(Elf::open(&text).unwrap().is_none());
        std::fs::remove_file(text).unwrap();
        assert!(Elf::open(Path::new("/no/such/file")).is_err());
        let libssl = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
        if let Some(libssl) = Elf::open(libssl).ok().flatten() {
            let read = libssl
                .exported_function("SSL_read")
                .unwrap()
                .expect("SSL_read");
            let write = libssl.exported_function("SSL_write_ex").unwrap();
            assert_ne!(Some(read), write);
        }
    }

    #[test]
    fn refuses_headers_past_the_end() {
        let image = std::fs::read("/proc/self/exe").unwrap();
        let path = temporary("cut", &image[..4096]);
        let err = Elf::open(&path)
            .err()
            .expect("section headers past the end");
        std::fs::remove_file(path).unwrap();
        assert!(
            format!("{err:#}").contains("past the file's end"),
            "{err:#}"
        );
    }
}
