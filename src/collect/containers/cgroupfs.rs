//! Reading one cgroup's resource counters from the cgroup file systems, in
//! any of the three layouts: cgroup v2 alone, cgroup v1 alone, and the
//! hybrid (v1 controllers plus v2 mounted at `unified`).
//!
//! A cgroup is named by its path relative to a hierarchy's root, which the
//! runtimes keep the same in every hierarchy (`/system.slice/nginx.service`,
//! `/libpod_parent/libpod-<id>`). Each counter is read from v2 when v2 has
//! it and from the v1 controller's files otherwise: on a hybrid machine v2
//! carries the CPU usage every cgroup has (`cpu.stat` needs no controller),
//! while memory, quota and throttling live in v1.
//!
//! Units follow cAdvisor: CPU in nanoseconds (v2's microseconds and v1's
//! USER_HZ ticks converted), memory in bytes; a limit above 2^62 is no limit
//! and reads as 0; a quota of `max` or -1 is none (0).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where each cgroup hierarchy is mounted.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// The v2 hierarchy (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub v2: Option<PathBuf>,
    /// v1 controllers (`cpu`, `cpuacct`, `memory`, `blkio`, `pids`,
    /// `name=systemd`) to their mount points; co-mounted ones share one.
    pub v1: HashMap<String, PathBuf>,
}

/// A limit above this is "no limit" (cAdvisor's bound).
const NO_LIMIT_ABOVE: u64 = 1 << 62;

/// USER_HZ, the unit of v1's `cpuacct.stat`: 100 on every Linux ABI.
const USER_HZ: u64 = 100;

impl Layout {
    /// This machine's layout, from /proc/self/mountinfo.
    pub fn discover() -> Layout {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| Layout::from_mountinfo(&text))
            .unwrap_or_default()
    }

    /// Parses mountinfo: whole-hierarchy (`/` root) `cgroup2` and `cgroup`
    /// mounts; a v1 mount's controllers are in its super options.
    pub fn from_mountinfo(text: &str) -> Layout {
        let mut layout = Layout::default();
        for line in text.lines() {
            // "<id> <parent> <dev> <root> <mount point> <options> ... - <fstype> <source> <super options>"
            let Some((fields, after)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = fields.split(' ').collect();
            if fields.get(3) != Some(&"/") {
                continue;
            }
            let Some(mount) = fields
                .get(4)
                .and_then(|f| crate::collect::cgroup::unescape_mount(f))
            else {
                continue;
            };
            let mut after = after.split(' ');
            match after.next() {
                Some("cgroup2") => layout.v2 = layout.v2.or(Some(mount)),
                Some("cgroup") => {
                    let options = after.nth(1).unwrap_or("");
                    for controller in options.split(',') {
                        let known = ["cpu", "cpuacct", "memory", "blkio", "pids", "name=systemd"];
                        if known.contains(&controller) {
                            layout
                                .v1
                                .entry(controller.to_string())
                                .or_insert(mount.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        layout
    }

    /// The hierarchy whose directories name every cgroup: v2 when mounted
    /// (systemd and runc create their cgroups there too on hybrid machines),
    /// else a v1 one.
    pub fn tree(&self) -> Option<&Path> {
        self.v2.as_deref().or_else(|| {
            ["cpuacct", "cpu", "memory", "pids", "name=systemd"]
                .iter()
                .find_map(|c| self.v1.get(*c))
                .map(PathBuf::as_path)
        })
    }

    fn v2_file(&self, cgroup: &str, file: &str) -> Option<String> {
        read(self.v2.as_deref()?, cgroup, file)
    }

    fn v1_file(&self, controller: &str, cgroup: &str, file: &str) -> Option<String> {
        read(self.v1.get(controller)?, cgroup, file)
    }

    /// The counters of the cgroup at `cgroup` (relative path).
    pub fn stats(&self, cgroup: &str) -> Stats {
        let mut stats = Stats::default();
        self.read_cpu(cgroup, &mut stats);
        self.read_memory(cgroup, &mut stats);
        self.read_io(cgroup, &mut stats);
        stats
    }

    fn read_cpu(&self, cgroup: &str, stats: &mut Stats) {
        if let Some(text) = self.v2_file(cgroup, "cpu.stat") {
            let fields = key_values(&text);
            let usec = |key: &str| fields.get(key).map(|v| v * 1000);
            stats.cpu = usec("usage_usec").map(|total| Cpu {
                total_ns: total,
                user_ns: usec("user_usec").unwrap_or(0),
                system_ns: usec("system_usec").unwrap_or(0),
            });
            stats.throttled_ns = usec("throttled_usec");
        }
        if stats.cpu.is_none() {
            let total = self.v1_file("cpuacct", cgroup, "cpuacct.usage");
            let ticks = self.v1_file("cpuacct", cgroup, "cpuacct.stat");
            if let Some(total) = total.and_then(|t| t.trim().parse().ok()) {
                let ticks = ticks.map(|t| key_values(&t)).unwrap_or_default();
                let ns = |key: &str| ticks.get(key).map_or(0, |t| t * (1_000_000_000 / USER_HZ));
                stats.cpu = Some(Cpu {
                    total_ns: total,
                    user_ns: ns("user"),
                    system_ns: ns("system"),
                });
            }
        }
        if let Some(max) = self.v2_file(cgroup, "cpu.max") {
            // "max 100000" or "<quota> <period>", microseconds.
            let mut parts = max.split_whitespace();
            stats.cpu_quota_us = parts.next().and_then(|q| q.parse().ok());
        } else if let Some(quota) = self.v1_file("cpu", cgroup, "cpu.cfs_quota_us") {
            stats.cpu_quota_us = quota
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|q| u64::try_from(q).ok());
        }
        if stats.throttled_ns.is_none() {
            let v1 = self.v1_file("cpu", cgroup, "cpu.stat");
            stats.throttled_ns = v1.and_then(|t| key_values(&t).get("throttled_time").copied());
        }
    }

    fn read_memory(&self, cgroup: &str, stats: &mut Stats) {
        if let Some(current) = self.v2_file(cgroup, "memory.current") {
            let stat = self
                .v2_file(cgroup, "memory.stat")
                .map(|t| key_values(&t))
                .unwrap_or_default();
            let events = self
                .v2_file(cgroup, "memory.events")
                .map(|t| key_values(&t))
                .unwrap_or_default();
            let limit = self.v2_file(cgroup, "memory.max");
            stats.memory = current.trim().parse().ok().map(|usage| Memory {
                usage,
                rss: stat.get("anon").copied().unwrap_or(0),
                cache: stat.get("file").copied().unwrap_or(0),
                inactive_file: stat.get("inactive_file").copied().unwrap_or(0),
                limit: limit
                    .and_then(|l| l.trim().parse().ok())
                    .filter(|l| *l <= NO_LIMIT_ABOVE)
                    .unwrap_or(0),
                oom_kills: events.get("oom_kill").copied().unwrap_or(0),
            });
            return;
        }
        let Some(usage) = self.v1_file("memory", cgroup, "memory.usage_in_bytes") else {
            return;
        };
        let stat = self
            .v1_file("memory", cgroup, "memory.stat")
            .map(|t| key_values(&t))
            .unwrap_or_default();
        let oom = self
            .v1_file("memory", cgroup, "memory.oom_control")
            .map(|t| key_values(&t))
            .unwrap_or_default();
        let limit = self.v1_file("memory", cgroup, "memory.limit_in_bytes");
        stats.memory = usage.trim().parse().ok().map(|usage| Memory {
            usage,
            rss: stat.get("total_rss").copied().unwrap_or(0),
            cache: stat.get("total_cache").copied().unwrap_or(0),
            inactive_file: stat.get("total_inactive_file").copied().unwrap_or(0),
            limit: limit
                .and_then(|l| l.trim().parse().ok())
                .filter(|l| *l <= NO_LIMIT_ABOVE)
                .unwrap_or(0),
            oom_kills: oom.get("oom_kill").copied().unwrap_or(0),
        });
    }

    /// Bytes read and written per device, from v2's `io.stat` or v1's
    /// `blkio.throttle.io_service_bytes`; empty where the kernel keeps none
    /// (v1 blkio on a kernel whose block layer no longer feeds it).
    fn read_io(&self, cgroup: &str, stats: &mut Stats) {
        if let Some(text) = self.v2_file(cgroup, "io.stat") {
            for line in text.lines() {
                let mut fields = line.split_whitespace();
                let Some(dev) = fields.next().and_then(parse_dev) else {
                    continue;
                };
                let counts = key_values_of(fields);
                stats.io.push(DeviceIo {
                    dev,
                    read_bytes: counts.get("rbytes").copied().unwrap_or(0),
                    write_bytes: counts.get("wbytes").copied().unwrap_or(0),
                });
            }
        } else if let Some(text) = self.v1_file("blkio", cgroup, "blkio.throttle.io_service_bytes")
        {
            let mut by_dev: HashMap<u32, DeviceIo> = HashMap::new();
            for line in text.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [dev, op, bytes] = fields[..] else {
                    continue; // "Total N"
                };
                let (Some(dev), Ok(bytes)) = (parse_dev(dev), bytes.parse::<u64>()) else {
                    continue;
                };
                let entry = by_dev.entry(dev).or_insert(DeviceIo {
                    dev,
                    read_bytes: 0,
                    write_bytes: 0,
                });
                match op {
                    "Read" => entry.read_bytes = bytes,
                    "Write" => entry.write_bytes = bytes,
                    _ => {}
                }
            }
            stats.io.extend(by_dev.into_values());
        }
        stats.io.retain(|d| d.read_bytes > 0 || d.write_bytes > 0);
    }
}

/// One cgroup's counters; `None` where no hierarchy has them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub cpu: Option<Cpu>,
    pub throttled_ns: Option<u64>,
    /// CFS quota in microseconds per period; None: no quota.
    pub cpu_quota_us: Option<u64>,
    pub memory: Option<Memory>,
    pub io: Vec<DeviceIo>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cpu {
    pub total_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Memory {
    pub usage: u64,
    pub rss: u64,
    pub cache: u64,
    pub inactive_file: u64,
    /// 0: no limit.
    pub limit: u64,
    pub oom_kills: u64,
}

impl Memory {
    /// Usage less the inactive file cache the kernel reclaims first:
    /// cAdvisor's working set, what the OOM killer looks at.
    pub fn working_set(&self) -> u64 {
        self.usage.saturating_sub(self.inactive_file)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceIo {
    /// The kernel's dev_t packing: major << 20 | minor.
    pub dev: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

fn join(root: &Path, cgroup: &str) -> PathBuf {
    root.join(cgroup.trim_start_matches('/'))
}

fn read(root: &Path, cgroup: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(join(root, cgroup).join(file)).ok()
}

/// `key value` lines (cpu.stat, memory.stat...) to a map.
fn key_values(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `key=value` fields (io.stat) to a map.
fn key_values_of<'a>(fields: impl Iterator<Item = &'a str>) -> HashMap<&'a str, u64> {
    fields
        .filter_map(|f| {
            let (key, value) = f.split_once('=')?;
            Some((key, value.parse().ok()?))
        })
        .collect()
}

/// `MAJ:MIN` to the kernel's dev_t packing.
fn parse_dev(text: &str) -> Option<u32> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse::<u32>().ok()? << 20) | minor.parse::<u32>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, cgroup: &str, file: &str, text: &str) {
        let dir = join(root, cgroup);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn hybrid_mountinfo() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
34 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 25 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 25 0:32 /sub /mnt/elsewhere rw - cgroup cgroup rw,blkio
";
        let layout = Layout::from_mountinfo(text);
        assert_eq!(
            layout.v2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(layout.v1["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            layout.v1["cpuacct"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            layout.v1["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd")
        );
        // A mount of part of a hierarchy does not name its cgroups.
        assert!(!layout.v1.contains_key("blkio"));
        assert_eq!(layout.tree(), Some(Path::new("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn v2_counters() {
        let root = std::env::temp_dir().join(format!("sonde-cgroupfs-v2-{}", std::process::id()));
        let c = "/system.slice/nginx.service";
        write(
            &root,
            c,
            "cpu.stat",
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_throttled 1\nthrottled_usec 30\n",
        );
        write(&root, c, "cpu.max", "50000 100000\n");
        write(&root, c, "memory.current", "1000\n");
        write(
            &root,
            c,
            "memory.stat",
            "anon 600\nfile 300\ninactive_file 100\n",
        );
        write(&root, c, "memory.max", "max\n");
        write(&root, c, "memory.events", "low 0\noom 2\noom_kill 1\n");
        write(
            &root,
            c,
            "io.stat",
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n7:1 rbytes=0 wbytes=0\n",
        );
        let layout = Layout {
            v2: Some(root.clone()),
            v1: HashMap::new(),
        };
        let stats = layout.stats(c);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            stats.cpu,
            Some(Cpu {
                total_ns: 2_500_000,
                user_ns: 2_000_000,
                system_ns: 500_000
            })
        );
        assert_eq!(stats.throttled_ns, Some(30_000));
        assert_eq!(stats.cpu_quota_us, Some(50_000));
        let memory = stats.memory.unwrap();
        assert_eq!(
            (
                memory.usage,
                memory.rss,
                memory.cache,
                memory.limit,
                memory.oom_kills
            ),
            (1000, 600, 300, 0, 1)
        );
        assert_eq!(memory.working_set(), 900);
        assert_eq!(
            stats.io,
            [DeviceIo {
                dev: 8 << 20,
                read_bytes: 4096,
                write_bytes: 8192
            }]
        );
    }

    #[test]
    fn v1_counters_beside_a_v2_cpu_stat() {
        let root = std::env::temp_dir().join(format!("sonde-cgroupfs-v1-{}", std::process::id()));
        let (v2, cpu, memory, blkio) = (
            root.join("unified"),
            root.join("cpu"),
            root.join("memory"),
            root.join("blkio"),
        );
        let c = "/libpod_parent/libpod-abc";
        write(
            &v2,
            c,
            "cpu.stat",
            "usage_usec 10\nuser_usec 7\nsystem_usec 3\n",
        );
        write(&cpu, c, "cpu.cfs_quota_us", "-1\n");
        write(
            &cpu,
            c,
            "cpu.stat",
            "nr_periods 0\nnr_throttled 0\nthrottled_time 42\n",
        );
        write(&memory, c, "memory.usage_in_bytes", "5000\n");
        write(
            &memory,
            c,
            "memory.stat",
            "cache 1\nrss 2\ntotal_cache 100\ntotal_rss 200\ntotal_inactive_file 50\n",
        );
        write(&memory, c, "memory.limit_in_bytes", "9223372036854771712\n");
        write(
            &memory,
            c,
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        );
        write(
            &blkio,
            c,
            "blkio.throttle.io_service_bytes",
            "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n",
        );
        let layout = Layout {
            v2: Some(v2),
            v1: [("cpu", cpu), ("memory", memory), ("blkio", blkio)]
                .into_iter()
                .map(|(c, p)| (c.to_string(), p))
                .collect(),
        };
        let stats = layout.stats(c);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            stats.cpu,
            Some(Cpu {
                total_ns: 10_000,
                user_ns: 7_000,
                system_ns: 3_000
            })
        );
        assert_eq!(stats.cpu_quota_us, None);
        assert_eq!(stats.throttled_ns, Some(42));
        let memory = stats.memory.unwrap();
        assert_eq!(
            (
                memory.usage,
                memory.rss,
                memory.cache,
                memory.limit,
                memory.oom_kills
            ),
            (5000, 200, 100, 0, 3)
        );
        assert_eq!(
            stats.io,
            [DeviceIo {
                dev: 8 << 20,
                read_bytes: 10,
                write_bytes: 20
            }]
        );
    }

    #[test]
    fn v1_cpuacct_alone() {
        let root = std::env::temp_dir().join(format!("sonde-cgroupfs-acct-{}", std::process::id()));
        let c = "/docker/x";
        write(&root, c, "cpuacct.usage", "3000000000\n");
        write(&root, c, "cpuacct.stat", "user 200\nsystem 100\n");
        write(&root, c, "blkio.throttle.io_service_bytes", "Total 0\n");
        let v1: HashMap<_, _> = [("cpuacct", root.clone()), ("blkio", root.clone())]
            .into_iter()
            .map(|(c, p)| (c.to_string(), p))
            .collect();
        let layout = Layout { v2: None, v1 };
        let stats = layout.stats(c);
        assert_eq!(layout.tree(), Some(root.as_path()));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            stats.cpu,
            Some(Cpu {
                total_ns: 3_000_000_000,
                user_ns: 2_000_000_000,
                system_ns: 1_000_000_000
            })
        );
        assert!(stats.memory.is_none());
        assert!(stats.io.is_empty());
    }
}
