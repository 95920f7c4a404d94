//! node_exporter's uname collector: `node_uname_info`, constant 1, labeled
//! with the fields of uname(2). Asked every round: the host name can change.

use crate::collect::Collector;
use crate::model::Family;

pub struct Uname;

impl Collector for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // SAFETY: utsname is plain bytes, valid when zeroed, and uname(2)
        // only writes into the struct it is given.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut uts) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let field = |chars: &[libc::c_char]| {
            let bytes: Vec<u8> = chars
                .iter()
                .map(|&c| c as u8)
                .take_while(|&b| b != 0)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let mut family = Family::gauge(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
        );
        family.push(
            &[
                ("sysname", &field(&uts.sysname)),
                ("release", &field(&uts.release)),
                ("version", &field(&uts.version)),
                ("machine", &field(&uts.machine)),
                ("nodename", &field(&uts.nodename)),
                ("domainname", &field(&uts.domainname)),
            ],
            1.0,
        );
        out.push(family);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_labels_match_the_kernel() {
        let mut out = Vec::new();
        Uname.collect(&mut out).unwrap();
        let labels = &out[0].series[0].labels;
        assert_eq!(labels.get("sysname"), Some("Linux"));
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(labels.get("release"), Some(release.trim()));
    }
}
