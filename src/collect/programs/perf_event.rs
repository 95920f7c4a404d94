//! Programs in `perf_event/type=T,config=C,frequency=F` sections, which
//! libbpf does not know: ebpf_exporter's way of sampling a perf event (a
//! CPU clock, cache misses). The program is loaded as a perf event program
//! and attached, on every online CPU, to an event opened with that type,
//! config and sampling frequency. Each link owns its event's descriptor.

use anyhow::{anyhow, bail, Context};
use libbpf_rs::{libbpf_sys, Link};

/// perf_event_open's flag for a close-on-exec descriptor
/// (include/uapi/linux/perf_event.h).
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// The section prefix this module handles.
pub const PREFIX: &str = "perf_event/";

/// What a `perf_event/...` section asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    pub kind: u32,
    pub config: u64,
    pub frequency: u64,
}

/// Parses the part of the section after [`PREFIX`].
pub fn parse(section: &str) -> anyhow::Result<Spec> {
    let mut spec = Spec {
        kind: 0,
        config: 0,
        frequency: 0,
    };
    for item in section.split(',') {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("{item:?}: expected key=value"))?;
        let value: u64 = value
            .parse()
            .map_err(|_| anyhow!("{item:?}: expected an integer"))?;
        match key {
            "type" => spec.kind = u32::try_from(value)?,
            "config" => spec.config = value,
            "frequency" => spec.frequency = value,
            _ => bail!("{item:?}: expected type, config or frequency"),
        }
    }
    if spec.frequency == 0 {
        bail!("no frequency: expected frequency=N samples a second");
    }
    Ok(spec)
}

/// The online CPUs, from /sys/devices/system/cpu/online ("0-3,5").
fn online_cpus() -> anyhow::Result<Vec<i32>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .context("reading /sys/devices/system/cpu/online")?;
    crate::collect::node::parse_cpu_list(&text)?
        .into_iter()
        .map(|cpu| i32::try_from(cpu).context("a CPU number beyond i32"))
        .collect()
}

/// Opens the event on every online CPU and attaches `program` to each.
pub fn attach(program: &libbpf_rs::ProgramMut<'_>, spec: &Spec) -> anyhow::Result<Vec<Link>> {
    let mut attr = libbpf_sys::perf_event_attr {
        type_: spec.kind,
        size: u32::try_from(std::mem::size_of::<libbpf_sys::perf_event_attr>())?,
        config: spec.config,
        ..Default::default()
    };
    attr.__bindgen_anon_1.sample_freq = spec.frequency;
    attr.set_freq(1);
    online_cpus()?
        .into_iter()
        .map(|cpu| {
            // SAFETY: perf_event_open reads one perf_event_attr of `size`
            // bytes; a system-wide event on `cpu`, no group.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const libbpf_sys::perf_event_attr,
                    -1,
                    cpu,
                    -1,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                bail!(
                    "perf_event_open on CPU {cpu}: {}",
                    std::io::Error::last_os_error()
                );
            }
            let fd = i32::try_from(fd)?;
            program.attach_perf_event(fd).map_err(|err| {
                // SAFETY: the descriptor is ours and no link took it.
                unsafe { libc::close(fd) };
                anyhow!("attaching to the event on CPU {cpu}: {err}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections() {
        assert_eq!(
            parse("type=1,config=0,frequency=99").unwrap(),
            Spec {
                kind: 1,
                config: 0,
                frequency: 99
            }
        );
        assert!(parse("type=1,config=0")
            .unwrap_err()
            .to_string()
            .contains("frequency"));
        assert!(parse("type=x,frequency=1").is_err());
        assert!(parse("cpu=1,frequency=1")
            .unwrap_err()
            .to_string()
            .contains("expected type"));
    }
}
