//! Compiles every `bpf/*.bpf.c` into a BPF object and a Rust skeleton in
//! OUT_DIR (`<name>.skel.rs`, included by `src/collect/bpf/`). The kernel's
//! types come from the committed `bpf/vmlinux.h`, so building needs clang but
//! never bpftool or the build machine's kernel.
//!
//! And hands the linker (LLD, Rust's default since 1.90) the list of the
//! functions an idle sonde calls, `link/hot-text.txt`, to lay out first and
//! side by side: the code an idle round touches then fills a few pages
//! instead of being spread over the whole binary (`benches/hot_text.rs`
//! makes the list).

use std::path::{Path, PathBuf};

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpf_dir = Path::new("bpf");
    let hot_text = Path::new("link/hot-text.txt");
    println!("cargo:rerun-if-changed={}", hot_text.display());
    if hot_text.exists() {
        let hot_text = hot_text
            .canonicalize()
            .expect("link/hot-text.txt is readable");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            hot_text.display()
        );
        // A function renamed since the list was made is only not moved.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    println!("cargo:rerun-if-changed=bpf");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(bpf_dir)
        .expect("cannot list bpf/")
        .map(|entry| entry.expect("cannot list bpf/").path())
        .filter(|path| path.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for source in sources {
        let file = source.file_name().unwrap().to_string_lossy();
        let name = file.trim_end_matches(".bpf.c");
        println!("cargo:rerun-if-changed={}", source.display());
        SkeletonBuilder::new()
            .source(&source)
            .obj(out_dir.join(format!("{name}.bpf.o")))
            .clang_args(["-I", "bpf", "-Wall", "-Werror", "-mcpu=v3"])
            .build_and_generate(out_dir.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|err| panic!("cannot build {}: {err:#}", source.display()));
    }
}
