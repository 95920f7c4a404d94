//! Attribution: where a process lives, from the cgroup id a BPF program saw
//! (`bpf_get_current_cgroup_id`: the inode number of the process's cgroup v2
//! directory). Every per-process metric carries the answer as labels:
//! `unit` for a systemd unit or slice, `container` for a container or a
//! Kubernetes pod, both for a unit inside a system container, neither for
//! the root cgroup or a cgroup of no known shape.
//!
//! Resolution happens in user space, once per cgroup: [`Cgroups`] walks the
//! cgroup v2 hierarchy to map inode numbers to paths and keeps what it found.
//! Its invariants:
//! - Cgroup ids are 64-bit kernfs ids that the kernel does not reuse, so a
//!   resolved id never goes stale; only its cgroup may disappear.
//! - Every live cgroup found by the last walk stays known (bounded by the
//!   kernel's own cgroup count); a removed one is kept while it is still
//!   asked for (a process's totals outlive it by `[collect] forget_after`)
//!   and forgotten [`FORGET_AFTER`] after it was last asked for, at the next
//!   walk, so memory stays bounded.
//! - A walk runs only for an id not yet known, and reads at most
//!   [`MAX_WALK_DIRS`] directories. At most once per [`MIN_WALK_INTERVAL`],
//!   but for an id above every id the last walk found: ids only grow, so that
//!   cgroup was made after the walk, and waiting would leave the processes
//!   of units or containers started moments apart (a boot, a deploy) without
//!   labels where the answer is kept (an HTTP service's name). Each such id
//!   walks once: an id a walk started after the question did not find
//!   belongs to a removed cgroup and is remembered as such (no labels), so
//!   it never walks again.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Shortest time between two walks of the hierarchy.
pub const MIN_WALK_INTERVAL: Duration = Duration::from_millis(250);
/// How long a removed cgroup's answer is kept after it was last asked for.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Most directories one walk reads; a larger hierarchy is resolved partly.
pub const MAX_WALK_DIRS: usize = 100_000;

/// Where a process lives: the labels attribution adds to its series.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Placement {
    /// The systemd unit or slice (`nginx.service`, `user-1000.slice`).
    pub unit: Option<Arc<str>>,
    /// A container's name where its runtime's state names it, else its
    /// 12-hex short id; `pod<uid>` for a Kubernetes pod's own cgroup.
    pub container: Option<Arc<str>>,
}

impl Placement {
    /// The label pairs to add to a series: none, `unit`, `container`, or
    /// both.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let unit = self.unit.as_deref().map(|u| ("unit", u));
        let container = self.container.as_deref().map(|c| ("container", c));
        unit.into_iter().chain(container)
    }

    /// [`Placement::of_path`], with a container named as its runtime names
    /// it (`containers::runtime`) where one does; the id stays resolvable
    /// through `sonde_container_info`.
    pub fn named(path: &str) -> Placement {
        let mut placement = Placement::of_path(path);
        if let Some(id) = path.split('/').find_map(container_id) {
            let name = crate::collect::containers::runtime::lookup(id).name;
            placement.container = name.map(Arc::from).or(placement.container);
        }
        placement
    }

    /// Where a process in the cgroup at `path` (relative to the cgroup v2
    /// root, e.g. `/system.slice/nginx.service`) lives.
    ///
    /// The outermost container wins (a container's own sub-cgroups belong to
    /// it). Inside a container, the innermost systemd unit or slice below it
    /// is also its processes' `unit`: a system container (systemd as its
    /// PID 1, as `podman --systemd=always` runs it) has units of its
    /// own, `/libpod_parent/libpod-<id>/system.slice/nginx.service` as the
    /// host sees it. Outside containers the innermost unit or slice names
    /// the place; a Kubernetes pod's own cgroup has none.
    pub fn of_path(path: &str) -> Placement {
        let mut unit = None;
        let mut pod = None;
        let mut container = None;
        for component in path.split('/').filter(|c| !c.is_empty()) {
            if container.is_none() {
                if let Some(id) = container_id(component) {
                    container = Some(Arc::from(&id[..12]));
                    // Only the units inside the container are its own.
                    unit = None;
                    continue;
                }
                if let Some(uid) = pod_uid(component) {
                    pod = Some(format!("pod{uid}"));
                }
            }
            if is_systemd_unit(component) {
                unit = Some(component);
            }
        }
        match (container, pod) {
            (Some(container), _) => Placement {
                unit: unit.map(Arc::from),
                container: Some(container),
            },
            (None, Some(pod)) => Placement {
                unit: None,
                container: Some(pod.into()),
            },
            (None, None) => Placement {
                unit: unit.map(Arc::from),
                container: None,
            },
        }
    }
}

/// The 64-hex container id a cgroup directory is named after, in the shapes
/// the runtimes use: `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope`, `nerdctl-<id>.scope` (systemd
/// driver) or a bare `<id>` (cgroupfs driver: `/docker/<id>`,
/// `/kubepods/burstable/pod<uid>/<id>`). Conmon, the monitor Podman and
/// CRI-O run beside a container (`libpod-conmon-<id>.scope`), is not the
/// container.
pub(crate) fn container_id(component: &str) -> Option<&str> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    let id = name.rsplit('-').next().unwrap_or(name);
    let hex64 = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (hex64 && !name.contains("conmon")).then_some(id)
}

/// A Kubernetes pod's uid from its cgroup directory: `pod<uid>` (cgroupfs
/// driver) or `kubepods[-<qos>]-pod<uid with _ for ->.slice` (systemd driver).
pub(crate) fn pod_uid(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let (prefix, uid) = name.rsplit_once("pod")?;
    let shaped = prefix.is_empty() || prefix.starts_with("kubepods") && prefix.ends_with('-');
    let uid = uid.replace('_', "-");
    let uid_like = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (shaped && uid_like).then_some(uid)
}

/// Whether a cgroup directory is a systemd unit's: the unit types that own
/// cgroups.
pub(crate) fn is_systemd_unit(component: &str) -> bool {
    [".service", ".scope", ".slice", ".socket", ".mount", ".swap"]
        .iter()
        .any(|suffix| component.len() > suffix.len() && component.ends_with(suffix))
}

/// The cgroup v2 hierarchy's mount point, from /proc/self/mountinfo: the
/// `cgroup2` mount of the whole hierarchy (`/sys/fs/cgroup` on a unified
/// system, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn v2_root() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <dev> <root> <mount point> <options> ... - <fstype> ..."
        let (fields, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = fields.split(' ').collect();
        let is_cgroup2 = after.split(' ').next() == Some("cgroup2");
        if is_cgroup2 && fields.get(3) == Some(&"/") {
            unescape_mount(fields.get(4)?)
        } else {
            None
        }
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
pub(crate) fn unescape_mount(field: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok()?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

struct Entry {
    placement: Placement,
    /// Relative to the root (`/system.slice/nginx.service`); None for a
    /// removed cgroup.
    path: Option<Arc<str>>,
    /// The walk that last found this cgroup alive.
    walk: u64,
    /// When a collector last asked for it (walks do not count).
    asked: Option<Instant>,
}

/// Resolves cgroup ids to [`Placement`]s, remembering answers (see the
/// module's invariants).
pub struct Cgroups {
    root: Option<PathBuf>,
    entries: HashMap<u64, Entry>,
    walks: u64,
    last_walk: Option<Instant>,
    /// The largest id the walks found.
    newest: u64,
}

impl Cgroups {
    /// A resolver of the hierarchy mounted at `root`; with `None` (no cgroup
    /// v2 on this machine) every id resolves to no labels.
    pub fn new(root: Option<PathBuf>) -> Cgroups {
        Cgroups {
            root,
            entries: HashMap::new(),
            walks: 0,
            last_walk: None,
            newest: 0,
        }
    }

    /// Where processes of cgroup `id` live.
    pub fn placement(&mut self, id: u64) -> Placement {
        self.lookup(id)
            .map(|entry| entry.placement.clone())
            .unwrap_or_default()
    }

    /// The path of cgroup `id` relative to the root, while it exists.
    pub fn path(&mut self, id: u64) -> Option<Arc<str>> {
        self.lookup(id).and_then(|entry| entry.path.clone())
    }

    fn lookup(&mut self, id: u64) -> Option<&mut Entry> {
        let now = Instant::now();
        if !self.entries.contains_key(&id) && self.may_walk_for(id, now) {
            self.walk(now);
            // Not found by a walk that started after the question: the cgroup
            // is gone. Remember that, or every round would walk again.
            self.entries.entry(id).or_insert(Entry {
                placement: Placement::default(),
                path: None,
                walk: 0,
                asked: None,
            });
        }
        let entry = self.entries.get_mut(&id)?;
        entry.asked = Some(now);
        Some(entry)
    }

    /// Every live cgroup, by id, with its path relative to the root, as the
    /// last walk found them (walking again when one is allowed).
    pub fn live(&mut self) -> Vec<(u64, Arc<str>)> {
        let now = Instant::now();
        if self.may_walk(now) {
            self.walk(now);
        }
        let last = self.walks;
        self.entries
            .iter()
            .filter(|(_, entry)| entry.walk == last)
            .filter_map(|(id, entry)| Some((*id, entry.path.clone()?)))
            .collect()
    }

    /// How many cgroups are remembered, live or removed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a walk may run for the unknown `id` (see the module's
    /// invariants).
    fn may_walk_for(&self, id: u64, now: Instant) -> bool {
        self.may_walk(now) || (self.root.is_some() && id > self.newest)
    }

    fn may_walk(&self, now: Instant) -> bool {
        self.root.is_some()
            && self
                .last_walk
                .is_none_or(|last| now.duration_since(last) >= MIN_WALK_INTERVAL)
    }

    /// Reads the whole hierarchy, refreshes what is alive and forgets removed
    /// cgroups nobody asked for lately.
    fn walk(&mut self, now: Instant) {
        let Some(root) = self.root.clone() else {
            return;
        };
        self.walks += 1;
        self.last_walk = Some(now);
        let walk = self.walks;
        let mut pending = vec![root.clone()];
        let mut read = 0;
        while let Some(dir) = pending.pop() {
            read += 1;
            if read > MAX_WALK_DIRS {
                tracing::warn!(
                    "cgroup hierarchy at {} has more than {MAX_WALK_DIRS} directories; \
                     processes in the rest get no unit or container label",
                    root.display()
                );
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue; // removed while walking
            };
            let relative = Path::new("/").join(dir.strip_prefix(&root).unwrap_or(Path::new("")));
            self.newest = self.newest.max(meta.ino());
            let entry = self.entries.entry(meta.ino()).or_insert_with(|| Entry {
                placement: Placement::named(&relative.to_string_lossy()),
                path: Some(relative.to_string_lossy().into()),
                walk,
                asked: None,
            });
            entry.walk = walk;
            if let Ok(children) = std::fs::read_dir(&dir) {
                pending.extend(
                    children
                        .flatten()
                        .filter(|c| c.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|c| c.path()),
                );
            }
        }
        self.entries.retain(|_, e| {
            e.walk == walk
                || e.asked
                    .is_some_and(|at| now.duration_since(at) < FORGET_AFTER)
        });
    }
}

/// The process-wide resolver every collector asks, so the hierarchy is walked
/// once for all of them.
pub fn shared() -> &'static Mutex<Cgroups> {
    static SHARED: OnceLock<Mutex<Cgroups>> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Cgroups::new(v2_root())))
}

/// Where processes of cgroup `id` live, from the [`shared`] resolver.
pub fn placement(id: u64) -> Placement {
    shared()
        .lock()
        .map(|mut c| c.placement(id))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";

    fn shown(path: &str) -> Vec<(&'static str, String)> {
        Placement::of_path(path)
            .labels()
            .map(|(n, v)| (n, v.to_string()))
            .collect()
    }

    fn container() -> Vec<(&'static str, String)> {
        vec![("container", ID[..12].to_string())]
    }

    #[test]
    fn root_and_unknown_cgroups_get_no_labels() {
        assert!(shown("/").is_empty());
        assert!(shown("").is_empty());
        assert!(shown("/mygroup/worker").is_empty());
    }

    #[test]
    fn systemd_units_and_slices() {
        assert_eq!(
            shown("/system.slice/nginx.service"),
            [("unit", "nginx.service".into())]
        );
        assert_eq!(shown("/init.scope"), [("unit", "init.scope".into())]);
        assert_eq!(
            shown("/user.slice/user-1000.slice/session-3.scope"),
            [("unit", "session-3.scope".into())]
        );
        // A unit's delegated sub-cgroups belong to the unit.
        assert_eq!(
            shown("/system.slice/postgresql.service/workers"),
            [("unit", "postgresql.service".into())]
        );
        assert_eq!(
            shown("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"),
            [("unit", "foo.service".into())]
        );
        assert_eq!(shown("/system.slice"), [("unit", "system.slice".into())]);
    }

    #[test]
    fn docker_systemd_and_cgroupfs_drivers() {
        assert_eq!(
            shown(&format!("/system.slice/docker-{ID}.scope")),
            container()
        );
        assert_eq!(shown(&format!("/docker/{ID}")), container());
        // A container's own sub-cgroups stay the container; a system
        // container's units (systemd inside it) are also its units.
        assert_eq!(
            shown(&format!("/system.slice/docker-{ID}.scope/payload")),
            container()
        );
        let in_system_container = |unit: &str| {
            let mut labels = vec![("unit", unit.to_string())];
            labels.extend(container());
            labels
        };
        assert_eq!(
            shown(&format!("/system.slice/docker-{ID}.scope/init.scope")),
            in_system_container("init.scope")
        );
        assert_eq!(
            shown(&format!(
                "/libpod_parent/libpod-{ID}/system.slice/nginx.service/workers"
            )),
            in_system_container("nginx.service")
        );
    }

    #[test]
    fn containerd_podman_and_crio() {
        assert_eq!(
            shown(&format!("/system.slice/cri-containerd-{ID}.scope")),
            container()
        );
        assert_eq!(shown(&format!("/k8s.io/{ID}")), container());
        assert_eq!(
            shown(&format!("/system.slice/nerdctl-{ID}.scope")),
            container()
        );
        assert_eq!(
            shown(&format!("/machine.slice/libpod-{ID}.scope")),
            container()
        );
        assert_eq!(
            shown(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
            )),
            container()
        );
        assert_eq!(shown(&format!("/libpod_parent/libpod-{ID}")), container());
        // Conmon is the runtime's monitor, not the container.
        assert_eq!(
            shown(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            [("unit", format!("libpod-conmon-{ID}.scope"))]
        );
    }

    #[test]
    fn kubernetes_pods_and_their_containers() {
        let uid = "8d1e4c2a-5b6f-4a3e-9c8d-7e6f5a4b3c2d";
        let systemd_pod = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        );
        assert_eq!(
            shown(&format!("{systemd_pod}/crio-{ID}.scope")),
            container()
        );
        assert_eq!(
            shown(&format!("{systemd_pod}/cri-containerd-{ID}.scope")),
            container()
        );
        assert_eq!(shown(&systemd_pod), [("container", format!("pod{uid}"))]);
        assert_eq!(
            shown(&format!("/kubepods/burstable/pod{uid}/{ID}")),
            container()
        );
        assert_eq!(
            shown(&format!("/kubepods/pod{uid}")),
            [("container", format!("pod{uid}"))]
        );
        assert_eq!(
            shown("/kubepods.slice/kubepods-besteffort.slice"),
            [("unit", "kubepods-besteffort.slice".into())]
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(
            unescape_mount(r"/sys/fs/cgroup\040v2").unwrap(),
            PathBuf::from("/sys/fs/cgroup v2")
        );
    }

    #[test]
    fn resolves_by_inode_and_remembers_removed_cgroups() {
        let root = std::env::temp_dir().join(format!("sonde-cgroup-test-{}", std::process::id()));
        let service = root.join("system.slice/sonde-test.service");
        std::fs::create_dir_all(&service).unwrap();
        let id = std::fs::metadata(&service).unwrap().ino();
        let root_id = std::fs::metadata(&root).unwrap().ino();
        let mut cgroups = Cgroups::new(Some(root.clone()));
        assert_eq!(
            cgroups.placement(id).unit.as_deref(),
            Some("sonde-test.service")
        );
        assert_eq!(cgroups.placement(root_id), Placement::default());
        std::fs::remove_dir_all(&root).unwrap();
        // Still known after removal: its counters in BPF maps keep their labels.
        std::thread::sleep(MIN_WALK_INTERVAL);
        assert_eq!(cgroups.placement(u64::MAX), Placement::default());
        assert_eq!(
            cgroups.placement(id).unit.as_deref(),
            Some("sonde-test.service")
        );
        // The unknown id is remembered: asking again does not walk.
        let walks = cgroups.walks;
        cgroups.placement(u64::MAX);
        assert_eq!(cgroups.walks, walks);
    }

    #[test]
    fn an_id_newer_than_the_last_walk_walks_at_once_and_only_once() {
        let root = std::env::temp_dir().join(format!("sonde-cgroup-new-{}", std::process::id()));
        std::fs::create_dir_all(root.join("system.slice")).unwrap();
        let mut cgroups = Cgroups::new(Some(root.clone()));
        cgroups.placement(std::fs::metadata(&root).unwrap().ino());
        let walks = cgroups.walks;
        // Within MIN_WALK_INTERVAL of that walk: an older unknown id waits,
        // a newer one walks, once.
        cgroups.placement(1);
        assert_eq!(cgroups.walks, walks);
        let newer = cgroups.newest + 1;
        cgroups.placement(newer);
        assert_eq!(cgroups.walks, walks + 1);
        cgroups.placement(newer);
        assert_eq!(cgroups.walks, walks + 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn without_cgroup_v2_nothing_is_labelled() {
        let mut cgroups = Cgroups::new(None);
        assert_eq!(cgroups.placement(1), Placement::default());
        assert!(cgroups.is_empty());
    }
}
