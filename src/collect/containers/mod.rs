//! Containers and systemd units: what each uses of CPU, memory, disk and
//! network, from their cgroups, under cAdvisor's metric names and labels so
//! dashboards built on cAdvisor work unchanged.
//!
//! Every round walks the cgroup hierarchy ([`cgroupfs::Layout::tree`]) and
//! reports:
//! - the root cgroup (`id="/"`, the whole machine);
//! - every container (Docker, containerd, Podman, CRI-O, by the cgroup
//!   shapes [`crate::collect::cgroup`] knows), its outermost cgroup only,
//!   with `name` and `image` from the runtimes' state ([`runtime`]) and,
//!   for Kubernetes, `namespace`, `pod` and `container`;
//! - every Kubernetes pod cgroup and every systemd unit and slice outside a
//!   container (`id="/system.slice/nginx.service"`).
//!
//! Counters are the kernel's hierarchical ones, so a slice includes its
//! units, as in cAdvisor. Where a counter comes from:
//! - CPU, memory, quota, throttling, OOM kills: the cgroup's own files
//!   ([`cgroupfs`]), v2 or v1;
//! - disk: the cgroup's I/O counters, or, where the kernel keeps none (v1
//!   blkio on recent kernels; v2 without the io controller), the bytes the
//!   block collector's BPF programs charged to the cgroup and the cgroups
//!   below it ([`charged_io`]);
//! - network: the interfaces of the container's own network namespace, read
//!   through its first process (`/proc/<pid>/net/dev`), or the machine's for
//!   the root; units share the machine's namespace and get none. Interfaces
//!   cAdvisor ignores (`lo`, `veth*`, `docker*`, `nerdctl*`) are left out.
//!
//! `sonde_container_info{container, container_id, id, image}` ties the
//! `container` label of the eBPF metrics (the name where the runtime gives
//! one) to the container's id and cgroup.
//!
//! Where sonde differs from cAdvisor:
//! - `container_processes` counts the processes of the cgroup and every
//!   cgroup below it (cAdvisor: the cgroup's own `cgroup.procs`, so 0 for a
//!   slice or a container whose processes sit in sub-cgroups).
//! - `container_start_time_seconds` is when the cgroup directory was made.
//! - At most `[collect.containers] max_cgroups` cgroups are reported: the
//!   root, then containers and pods, then units, shallowest (slices) first.
//!   The others are counted in `sonde_containers_cgroups_omitted`.

pub mod cgroupfs;
pub mod charged_io;
pub mod runtime;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::collect::bpf::block::Devices;
use crate::collect::cgroup;
use crate::collect::Collector;
use crate::model::Family;

use cgroupfs::{DeviceIo, Layout, Stats};

pub const NAME: &str = "containers";

/// Default of `[collect.containers] max_cgroups`.
pub const DEFAULT_MAX_CGROUPS: usize = 1000;

/// Most directories one walk reads (as attribution's walk).
const MAX_WALK_DIRS: usize = cgroup::MAX_WALK_DIRS;

/// Interfaces cAdvisor leaves out of a container's network.
const IGNORED_INTERFACES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// What a reported cgroup is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Root,
    Unit,
    Pod,
    /// A container, by its 64-hex id.
    Container(String),
}

/// A cgroup to report, as the walk found it.
struct Found {
    path: String,
    kind: Kind,
    depth: usize,
    /// ctime of the directory, seconds since the epoch.
    created: i64,
    processes: usize,
    first_pid: Option<u32>,
}

/// The cgroups of one walk: those to report, and for every cgroup id (inode)
/// the reported ones it counts towards (itself and its reported ancestors).
#[derive(Default)]
struct Walk {
    found: Vec<Found>,
    counted_in: HashMap<u64, Vec<usize>>,
    dirs: usize,
}

pub struct Containers {
    layout: Layout,
    max_cgroups: usize,
    devices: Devices,
    warned_over_budget: bool,
}

impl Containers {
    pub fn new(max_cgroups: usize) -> Containers {
        charged_io::enable();
        Containers {
            layout: Layout::discover(),
            max_cgroups,
            devices: Devices::default(),
            warned_over_budget: false,
        }
    }

    fn walk(&self, tree: &Path) -> Walk {
        let mut walk = Walk::default();
        // (directory, its path relative to the tree, reported ancestors, inside a container)
        let mut pending = vec![(
            tree.to_path_buf(),
            String::from("/"),
            Vec::<usize>::new(),
            false,
        )];
        while let Some((dir, path, mut ancestors, in_container)) = pending.pop() {
            walk.dirs += 1;
            if walk.dirs > MAX_WALK_DIRS {
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue; // removed while walking
            };
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<u32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            let last = path.rsplit('/').next().unwrap_or("");
            let kind = if path == "/" {
                Some(Kind::Root)
            } else if in_container {
                None
            } else if let Some(id) = cgroup::container_id(last) {
                Some(Kind::Container(id.to_string()))
            } else if cgroup::pod_uid(last).is_some() {
                Some(Kind::Pod)
            } else if cgroup::is_systemd_unit(last) {
                Some(Kind::Unit)
            } else {
                None
            };
            let is_container = matches!(kind, Some(Kind::Container(_)));
            if let Some(kind) = kind {
                ancestors.push(walk.found.len());
                walk.found.push(Found {
                    depth: path.matches('/').count(),
                    path: path.clone(),
                    kind,
                    created: meta.ctime(),
                    processes: 0,
                    first_pid: None,
                });
            }
            for &i in &ancestors {
                let found = &mut walk.found[i];
                found.processes += pids.len();
                found.first_pid = found.first_pid.or(pids.first().copied());
            }
            walk.counted_in.insert(meta.ino(), ancestors.clone());
            let Ok(children) = std::fs::read_dir(&dir) else {
                continue;
            };
            for child in children.flatten() {
                if !child.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = child.file_name().to_string_lossy().into_owned();
                let child_path = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                pending.push((
                    child.path(),
                    child_path,
                    ancestors.clone(),
                    in_container || is_container,
                ));
            }
        }
        walk
    }

    /// Keeps at most `max_cgroups` of `found` (module doc); returns how many
    /// were left out.
    fn apply_budget(&mut self, walk: &mut Walk) -> usize {
        if walk.found.len() <= self.max_cgroups {
            return 0;
        }
        let rank = |f: &Found| match f.kind {
            Kind::Root => (0, 0),
            Kind::Container(_) | Kind::Pod => (1, f.depth),
            Kind::Unit => (2, f.depth),
        };
        let mut order: Vec<usize> = (0..walk.found.len()).collect();
        order.sort_by_key(|&i| rank(&walk.found[i]));
        let kept: HashSet<usize> = order.into_iter().take(self.max_cgroups).collect();
        let omitted = walk.found.len() - kept.len();
        if !self.warned_over_budget {
            tracing::warn!(
                "{} cgroups of containers and units, more than [collect.containers] max_cgroups = {}; \
                 {omitted} deepest units are not reported (sonde_containers_cgroups_omitted)",
                walk.found.len(),
                self.max_cgroups
            );
            self.warned_over_budget = true;
        }
        // Renumber: old index -> new index.
        let mut renumbered = HashMap::new();
        let mut kept_found = Vec::with_capacity(kept.len());
        for (old, found) in std::mem::take(&mut walk.found).into_iter().enumerate() {
            if kept.contains(&old) {
                renumbered.insert(old, kept_found.len());
                kept_found.push(found);
            }
        }
        walk.found = kept_found;
        for counted in walk.counted_in.values_mut() {
            *counted = counted
                .iter()
                .filter_map(|i| renumbered.get(i).copied())
                .collect();
        }
        omitted
    }
}

/// The families this collector exports, in one place so each is made once
/// per round.
struct Families {
    cpu_usage: Family,
    cpu_user: Family,
    cpu_system: Family,
    cpu_throttled: Family,
    cpu_quota: Family,
    memory_usage: Family,
    memory_working_set: Family,
    memory_rss: Family,
    memory_cache: Family,
    memory_limit: Family,
    oom_events: Family,
    network_receive: Family,
    network_transmit: Family,
    fs_reads: Family,
    fs_writes: Family,
    processes: Family,
    start_time: Family,
    last_seen: Family,
    info: Family,
}

impl Families {
    fn new() -> Families {
        let counter = Family::counter;
        let gauge = Family::gauge;
        Families {
            cpu_usage: counter("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds."),
            cpu_user: counter("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds."),
            cpu_system: counter("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds."),
            cpu_throttled: counter(
                "container_cpu_cfs_throttled_seconds_total",
                "Total time duration the container has been throttled.",
            ),
            cpu_quota: gauge("container_spec_cpu_quota", "CPU quota of the container."),
            memory_usage: gauge(
                "container_memory_usage_bytes",
                "Current memory usage in bytes, including all memory regardless of when it was accessed",
            ),
            memory_working_set: gauge("container_memory_working_set_bytes", "Current working set in bytes."),
            memory_rss: gauge("container_memory_rss", "Size of RSS in bytes."),
            memory_cache: gauge("container_memory_cache", "Number of bytes of page cache memory."),
            memory_limit: gauge("container_spec_memory_limit_bytes", "Memory limit for the container."),
            oom_events: counter(
                "container_oom_events_total",
                "Count of out of memory events observed for the container",
            ),
            network_receive: counter("container_network_receive_bytes_total", "Cumulative count of bytes received"),
            network_transmit: counter(
                "container_network_transmit_bytes_total",
                "Cumulative count of bytes transmitted",
            ),
            fs_reads: counter("container_fs_reads_bytes_total", "Cumulative count of bytes read"),
            fs_writes: counter("container_fs_writes_bytes_total", "Cumulative count of bytes written"),
            processes: gauge("container_processes", "Number of processes running inside the container."),
            start_time: gauge(
                "container_start_time_seconds",
                "Start time of the container since unix epoch in seconds.",
            ),
            last_seen: gauge("container_last_seen", "Last time a container was seen by the exporter"),
            info: gauge(
                "sonde_container_info",
                "1 per container: its name as the container label of eBPF metrics shows it, its short id, cgroup and image.",
            ),
        }
    }

    fn into_vec(self) -> Vec<Family> {
        vec![
            self.cpu_usage,
            self.cpu_user,
            self.cpu_system,
            self.cpu_throttled,
            self.cpu_quota,
            self.memory_usage,
            self.memory_working_set,
            self.memory_rss,
            self.memory_cache,
            self.memory_limit,
            self.oom_events,
            self.network_receive,
            self.network_transmit,
            self.fs_reads,
            self.fs_writes,
            self.processes,
            self.start_time,
            self.last_seen,
            self.info,
        ]
    }

    /// Adds one cgroup's series; `labels` identify it.
    fn push(
        &mut self,
        labels: &[(&str, &str)],
        stats: &Stats,
        io: &[DeviceIo],
        devices: &mut Devices,
    ) {
        if let Some(cpu) = stats.cpu {
            self.cpu_usage
                .push(&with(labels, ("cpu", "total")), seconds(cpu.total_ns));
            self.cpu_user.push(labels, seconds(cpu.user_ns));
            self.cpu_system.push(labels, seconds(cpu.system_ns));
        }
        if let Some(quota) = stats.cpu_quota_us.filter(|q| *q > 0) {
            self.cpu_quota.push(labels, quota as f64);
            if let Some(throttled) = stats.throttled_ns {
                self.cpu_throttled.push(labels, seconds(throttled));
            }
        }
        if let Some(memory) = stats.memory {
            self.memory_usage.push(labels, memory.usage as f64);
            self.memory_working_set
                .push(labels, memory.working_set() as f64);
            self.memory_rss.push(labels, memory.rss as f64);
            self.memory_cache.push(labels, memory.cache as f64);
            self.memory_limit.push(labels, memory.limit as f64);
            self.oom_events.push(labels, memory.oom_kills as f64);
        }
        for d in io {
            let device = format!("/dev/{}", devices.name(d.dev));
            self.fs_reads
                .push(&with(labels, ("device", &device)), d.read_bytes as f64);
            self.fs_writes
                .push(&with(labels, ("device", &device)), d.write_bytes as f64);
        }
    }

    fn push_network(&mut self, labels: &[(&str, &str)], net_dev: &str) {
        for (interface, received, transmitted) in interfaces(net_dev) {
            let labels = with(labels, ("interface", interface));
            self.network_receive.push(&labels, received as f64);
            self.network_transmit.push(&labels, transmitted as f64);
        }
    }
}

/// `labels` and one more.
fn with<'a>(labels: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut all = labels.to_vec();
    all.push(extra);
    all
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `/proc/<pid>/net/dev` to (interface, bytes received, bytes transmitted),
/// without the interfaces cAdvisor ignores.
fn interfaces(text: &str) -> impl Iterator<Item = (&str, u64, u64)> {
    text.lines().skip(2).filter_map(|line| {
        let (name, counts) = line.split_once(':')?;
        let name = name.trim();
        if IGNORED_INTERFACES.iter().any(|p| name.starts_with(p)) {
            return None;
        }
        let counts: Vec<u64> = counts
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        Some((name, *counts.first()?, *counts.get(8)?))
    })
}

impl Collector for Containers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let Some(tree) = self.layout.tree().map(Path::to_path_buf) else {
            anyhow::bail!("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo)");
        };
        let mut walk = self.walk(&tree);
        let omitted = self.apply_budget(&mut walk);
        charged_io::retain(|id| walk.counted_in.contains_key(&id));

        // Charged bytes of each reported cgroup: its own and its descendants'.
        let mut charged: Vec<HashMap<u32, [u64; 2]>> = vec![HashMap::new(); walk.found.len()];
        for ((cgroup, dev), bytes) in charged_io::snapshot() {
            for &i in walk.counted_in.get(&cgroup).into_iter().flatten() {
                let sum = charged[i].entry(dev).or_default();
                sum[0] += bytes[0];
                sum[1] += bytes[1];
            }
        }

        let now = crate::collect::since_epoch().as_secs_f64();
        let host_net = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
        let mut families = Families::new();
        for (found, charged) in walk.found.iter().zip(charged) {
            let meta = match &found.kind {
                Kind::Container(id) => runtime::lookup(id),
                _ => runtime::Metadata::default(),
            };
            let mut labels = vec![("id", found.path.as_str())];
            let optional = [
                ("name", &meta.name),
                ("image", &meta.image),
                ("namespace", &meta.namespace),
                ("pod", &meta.pod),
                ("container", &meta.kube_container),
            ];
            labels.extend(
                optional
                    .iter()
                    .filter_map(|(n, v)| Some((*n, v.as_deref()?))),
            );

            let stats = self.layout.stats(&found.path);
            let io: Vec<DeviceIo> = if stats.io.is_empty() {
                charged
                    .into_iter()
                    .map(|(dev, [read_bytes, write_bytes])| DeviceIo {
                        dev,
                        read_bytes,
                        write_bytes,
                    })
                    .collect()
            } else {
                stats.io.clone()
            };
            families.push(&labels, &stats, &io, &mut self.devices);
            match (&found.kind, found.first_pid) {
                (Kind::Root, _) => families.push_network(&labels, &host_net),
                (Kind::Container(_), Some(pid)) => {
                    if let Ok(net_dev) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
                        families.push_network(&labels, &net_dev);
                    }
                }
                _ => {}
            }
            if let Kind::Container(container_id) = &found.kind {
                let short_id = &container_id[..12];
                let mut info = vec![
                    ("container", meta.name.as_deref().unwrap_or(short_id)),
                    ("container_id", short_id),
                    ("id", found.path.as_str()),
                ];
                info.extend(meta.image.as_deref().map(|image| ("image", image)));
                families.info.push(&info, 1.0);
            }
            families.processes.push(&labels, found.processes as f64);
            families.start_time.push(&labels, found.created as f64);
            families.last_seen.push(&labels, now.trunc());
        }
        out.extend(families.into_vec());
        let mut omitted_family = Family::gauge(
            "sonde_containers_cgroups_omitted",
            "Cgroups of containers and units not reported in the last round: more than [collect.containers] max_cgroups.",
        );
        omitted_family.push(&[], omitted as f64);
        out.push(omitted_family);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_interfaces_as_cadvisor_keeps_them() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       5       1    0    0    0     0          0         0        5       1    0    0    0     0       0          0
  eth0:    1220      14    0    0    0     0          0         0      472       6    0    0    0     0       0          0
vethab12:    10       1    0    0    0     0          0         0       10       1    0    0    0     0       0          0
";
        assert_eq!(interfaces(text).collect::<Vec<_>>(), [("eth0", 1220, 472)]);
    }

    #[test]
    fn walk_reports_root_units_and_outermost_containers() {
        let id = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
        let root =
            std::env::temp_dir().join(format!("sonde-containers-walk-{}", std::process::id()));
        let dirs = [
            "system.slice/nginx.service".to_string(),
            format!("system.slice/docker-{id}.scope/init.scope"),
            "mygroup/worker".to_string(),
        ];
        for dir in &dirs {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(
            root.join("system.slice/nginx.service/cgroup.procs"),
            "10\n11\n",
        )
        .unwrap();
        std::fs::write(
            root.join(format!(
                "system.slice/docker-{id}.scope/init.scope/cgroup.procs"
            )),
            "20\n",
        )
        .unwrap();
        let mut collector = Containers {
            layout: Layout {
                v2: Some(root.clone()),
                v1: HashMap::new(),
            },
            max_cgroups: 10,
            devices: Devices::default(),
            warned_over_budget: false,
        };
        let mut walk = collector.walk(&root);
        let init_scope =
            std::fs::metadata(root.join(format!("system.slice/docker-{id}.scope/init.scope")))
                .unwrap()
                .ino();
        std::fs::remove_dir_all(&root).unwrap();
        let mut shown: Vec<(&str, usize, Option<u32>)> = walk
            .found
            .iter()
            .map(|f| (f.path.as_str(), f.processes, f.first_pid))
            .collect();
        shown.sort();
        let container = format!("/system.slice/docker-{id}.scope");
        assert_eq!(
            shown,
            [
                ("/", 3, shown[0].2),
                ("/system.slice", 3, shown[1].2),
                (container.as_str(), 1, Some(20)),
                ("/system.slice/nginx.service", 2, Some(10)),
            ]
        );
        // A container's sub-cgroup counts in the container, the slice and the root.
        assert_eq!(walk.counted_in[&init_scope].len(), 3);

        collector.max_cgroups = 2;
        assert_eq!(collector.apply_budget(&mut walk), 2);
        let kept: HashSet<&str> = walk.found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(kept, HashSet::from(["/", container.as_str()]));
        let counted: HashSet<&str> = walk.counted_in[&init_scope]
            .iter()
            .map(|&i| walk.found[i].path.as_str())
            .collect();
        assert_eq!(counted, kept);
    }
}
