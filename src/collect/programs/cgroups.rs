//! `cgroup_id_map`: a map of the object that user space keeps filled with
//! the cgroups whose path (under the cgroup v2 mount, e.g.
//! `/sys/fs/cgroup/system.slice/nginx.service`) matches one of the config's
//! regexps, so the program can count only those (`bpf_map_lookup_elem` on
//! `bpf_get_current_cgroup_id()`), as ebpf_exporter keeps it.
//!
//! It is brought up to date at the start of every round from sonde's shared
//! cgroup resolver ([`crate::collect::cgroup`]): a `hash` map (the u64 id,
//! valued 1) gains the matching cgroups that appeared and loses those that
//! went; a `cgrp_storage` map gets a value on each matching cgroup (the
//! kernel drops it with the cgroup). So a cgroup created between two rounds
//! is counted from the next round on.

use std::collections::HashSet;
use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context};
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use regex::Regex;

use super::config::CgroupIdMap as Config;

pub struct CgroupIdMap {
    handle: MapHandle,
    storage: bool,
    regexps: Vec<Regex>,
    /// The ids the map holds (a `hash` map), or was given (`cgrp_storage`).
    present: HashSet<u64>,
}

impl CgroupIdMap {
    /// The map `config` names (its sizes checked by [`super::load`]).
    pub fn new(map: &libbpf_rs::Map<'_>, config: &Config) -> anyhow::Result<CgroupIdMap> {
        let storage = config.kind == "cgrp_storage";
        let regexps = config
            .regexps
            .iter()
            .map(|expr| {
                Regex::new(expr).with_context(|| format!("cgroup_id_map.regexps: {expr:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(CgroupIdMap {
            handle: MapHandle::try_from(map)?,
            storage,
            regexps,
            present: HashSet::new(),
        })
    }

    /// Brings the map up to date with the live cgroups.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        let live = crate::collect::cgroup::shared()
            .lock()
            .map_err(|_| anyhow!("lock poisoned"))?
            .live();
        let one = 1u64.to_ne_bytes();
        let mut matching = HashSet::new();
        for (id, path) in live {
            let Some(full) = super::decode::full_cgroup_path(&path) else {
                continue;
            };
            if !self.regexps.iter().any(|re| re.is_match(&full)) {
                continue;
            }
            matching.insert(id);
            if self.present.contains(&id) {
                continue;
            }
            if self.storage {
                let Ok(dir) = std::fs::File::open(&*full) else {
                    continue; // removed since the walk
                };
                let fd = dir.as_raw_fd().to_ne_bytes();
                self.handle.update(&fd, &one, MapFlags::ANY)?;
            } else {
                self.handle.update(&id.to_ne_bytes(), &one, MapFlags::ANY)?;
            }
        }
        if !self.storage {
            for gone in self.present.difference(&matching) {
                let _ = self.handle.delete(&gone.to_ne_bytes());
            }
        }
        self.present = matching;
        Ok(())
    }
}
