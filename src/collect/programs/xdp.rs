//! Programs in `xdp/IFNAME` sections, which libbpf does not know (it has
//! `xdp`, `xdp/cpumap` and `xdp/devmap`): ebpf_exporter's way of watching
//! the packets that arrive on one interface. Such a program is loaded as an
//! XDP program and attached, as ebpf_exporter attaches it, with a BPF link
//! on the interface the section names: native XDP where the driver has it,
//! generic XDP (lo, veth without a peer program) otherwise.
//!
//! Loading one needs CAP_NET_ADMIN besides CAP_BPF; without it the program
//! is refused at load, left out, and its refusal says so ([`LOAD_HINT`]).
//!
//! The link is the attachment: dropping it (a reload that changes or
//! removes the config, sonde stopping or dying) takes the program off the
//! interface, so nothing sonde attached outlives it.

use anyhow::{anyhow, bail};
use libbpf_rs::Link;

const PREFIX: &str = "xdp/";

/// Said after an XDP program's refusal: the kernel loads networking
/// programs only with CAP_NET_ADMIN, which the packaged unit does not grant
/// (an EPERM without it).
pub const LOAD_HINT: &str =
    " (XDP programs load only with CAP_NET_ADMIN besides CAP_BPF: run as root or grant it)";

/// What libbpf itself attaches under [`PREFIX`]: not interface names.
const LIBBPF_SECTIONS: [&str; 2] = ["cpumap", "devmap"];

/// The interface an `xdp/IFNAME` section names; None for any other
/// section, libbpf's own `xdp/...` ones included.
pub fn interface(section: &str) -> Option<&str> {
    section
        .strip_prefix(PREFIX)
        .filter(|name| !name.is_empty() && !LIBBPF_SECTIONS.contains(name))
}

/// Attaches `program` to interface `name` with a link.
pub fn attach(program: &libbpf_rs::ProgramMut<'_>, name: &str) -> anyhow::Result<Link> {
    let c_name =
        std::ffi::CString::new(name).map_err(|_| anyhow!("interface {name:?}: contains NUL"))?;
    // SAFETY: if_nametoindex reads one NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        bail!("no interface {name:?} here");
    }
    program
        .attach_xdp(i32::try_from(index)?)
        .map_err(|err| anyhow!("attaching XDP to {name} (index {index}): {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_interface_of_its_own_sections_only() {
        assert_eq!(interface("xdp/lo"), Some("lo"));
        assert_eq!(interface("xdp/eth0.100"), Some("eth0.100"));
        assert_eq!(interface("xdp/cpumap"), None);
        assert_eq!(interface("xdp"), None);
        assert_eq!(interface("xdp/"), None);
        assert_eq!(interface("tracepoint/xdp/xdp_exception"), None);
    }
}
