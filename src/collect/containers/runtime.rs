//! Container names and images, read from the runtimes' own state on disk,
//! so no daemon socket (and no permission to one) is needed:
//! - Docker: `<docker root>/containers/<id>/config.v2.json` (`Name`,
//!   `Config.Image`, `Config.Labels`);
//! - Podman and CRI-O (containers/storage): `<storage>/<driver>-containers/
//!   containers.json` (`names`, `image`, `metadata.image-name`) and
//!   `<driver>-images/images.json` for an image id's name;
//! - containerd (and nerdctl, Kubernetes through CRI): the OCI bundle of a
//!   running task, `/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/
//!   config.json`, whose annotations carry the CRI names.
//!
//! Kubernetes containers get `namespace`, `pod` and `container` from the CRI
//! annotations or from the `k8s_<container>_<pod>_<namespace>_<uid>_<n>`
//! names dockershim and CRI-O give them.
//!
//! Answers are cached per id: a found one for good (a container's name and
//! image do not change), a miss for [`RETRY_MISS_AFTER`], since a runtime may
//! write its state just after it created the cgroup. containers.json is
//! re-read only when its modification time changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

/// How long an id no runtime knew stays unknown before it is looked up again.
pub const RETRY_MISS_AFTER: Duration = Duration::from_secs(5);
/// Most ids remembered; beyond, the cache starts over (ids do not recur).
const MAX_CACHED: usize = 10_000;

/// What the runtimes say of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub name: Option<String>,
    pub image: Option<String>,
    /// Kubernetes: the pod's namespace, the pod, the container in the pod.
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub kube_container: Option<String>,
}

/// Where the runtimes keep their state.
#[derive(Clone, Debug)]
pub struct Roots {
    pub docker: PathBuf,
    pub storage: Vec<PathBuf>,
    pub containerd_tasks: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            docker: "/var/lib/docker".into(),
            storage: vec!["/var/lib/containers/storage".into()],
            containerd_tasks: "/run/containerd/io.containerd.runtime.v2.task".into(),
        }
    }
}

/// The containers/storage records of one storage root, as last read.
#[derive(Default)]
struct StorageRecords {
    modified: Option<SystemTime>,
    containers: HashMap<String, Metadata>,
}

/// Looks containers up by their 64-hex id (see the module doc).
pub struct Runtimes {
    roots: Roots,
    found: HashMap<String, (Metadata, Option<Instant>)>,
    storage: Vec<StorageRecords>,
}

impl Runtimes {
    pub fn new(roots: Roots) -> Runtimes {
        let storage = roots
            .storage
            .iter()
            .map(|_| StorageRecords::default())
            .collect();
        Runtimes {
            roots,
            found: HashMap::new(),
            storage,
        }
    }

    /// What the runtimes know of container `id` (empty when none does).
    pub fn lookup(&mut self, id: &str) -> Metadata {
        let now = Instant::now();
        if let Some((meta, missed_at)) = self.found.get(id) {
            if missed_at.is_none_or(|at| now.duration_since(at) < RETRY_MISS_AFTER) {
                return meta.clone();
            }
        }
        let meta = self
            .docker(id)
            .or_else(|| self.containers_storage(id))
            .or_else(|| self.containerd(id));
        if self.found.len() >= MAX_CACHED {
            self.found.clear();
        }
        let missed_at = meta.is_none().then_some(now);
        let meta = meta.unwrap_or_default();
        self.found.insert(id.to_string(), (meta.clone(), missed_at));
        meta
    }

    fn docker(&self, id: &str) -> Option<Metadata> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Config {
            name: Option<String>,
            config: Option<Inner>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Inner {
            image: Option<String>,
            labels: Option<HashMap<String, String>>,
        }
        let path = self
            .roots
            .docker
            .join("containers")
            .join(id)
            .join("config.v2.json");
        let config: Config = read_json(&path)?;
        let name = config.name.map(|n| n.trim_start_matches('/').to_string());
        let inner = config.config;
        let labels = inner
            .as_ref()
            .and_then(|i| i.labels.clone())
            .unwrap_or_default();
        let mut meta = Metadata {
            image: inner.and_then(|i| i.image),
            ..Metadata::default()
        };
        meta.namespace = labels.get("io.kubernetes.pod.namespace").cloned();
        meta.pod = labels.get("io.kubernetes.pod.name").cloned();
        meta.kube_container = labels.get("io.kubernetes.container.name").cloned();
        meta.set_name(name);
        Some(meta)
    }

    fn containers_storage(&mut self, id: &str) -> Option<Metadata> {
        for (root, records) in self.roots.storage.iter().zip(&mut self.storage) {
            records.refresh(root);
            if let Some(meta) = records.containers.get(id) {
                return Some(meta.clone());
            }
        }
        None
    }

    fn containerd(&self, id: &str) -> Option<Metadata> {
        #[derive(Deserialize)]
        struct Bundle {
            annotations: Option<HashMap<String, String>>,
        }
        let namespaces = std::fs::read_dir(&self.roots.containerd_tasks).ok()?;
        for namespace in namespaces.flatten() {
            let path = namespace.path().join(id).join("config.json");
            let Some(bundle) = read_json::<Bundle>(&path) else {
                continue;
            };
            let a = bundle.annotations.unwrap_or_default();
            let get = |key: &str| a.get(key).filter(|v| !v.is_empty()).cloned();
            let mut meta = Metadata {
                image: get("io.kubernetes.cri.image-name"),
                namespace: get("io.kubernetes.cri.sandbox-namespace"),
                pod: get("io.kubernetes.cri.sandbox-name"),
                kube_container: get("io.kubernetes.cri.container-name"),
                ..Metadata::default()
            };
            meta.set_name(get("nerdctl/name").or_else(|| meta.kube_container.clone()));
            return Some(meta);
        }
        None
    }
}

impl Metadata {
    /// Sets the name, and the Kubernetes names from a `k8s_...` one.
    fn set_name(&mut self, name: Option<String>) {
        if let Some(parts) = name.as_deref().and_then(kube_name) {
            let [container, pod, namespace] = parts.map(str::to_string);
            self.kube_container.get_or_insert(container);
            self.pod.get_or_insert(pod);
            self.namespace.get_or_insert(namespace);
        }
        self.name = name.filter(|n| !n.is_empty());
    }
}

impl StorageRecords {
    /// Re-reads `<root>/*-containers/containers.json` if it changed.
    fn refresh(&mut self, root: &Path) {
        #[derive(Deserialize)]
        struct Container {
            id: String,
            #[serde(default)]
            names: Vec<String>,
            image: Option<String>,
            metadata: Option<String>,
        }
        #[derive(Deserialize)]
        struct ContainerMetadata {
            #[serde(rename = "image-name")]
            image_name: Option<String>,
        }
        #[derive(Deserialize)]
        struct Image {
            id: String,
            #[serde(default)]
            names: Vec<String>,
        }
        let Some((containers_json, modified)) = find_store_file(root, "containers") else {
            return;
        };
        if Some(modified) == self.modified {
            return;
        }
        let Some(containers) = read_json::<Vec<Container>>(&containers_json) else {
            return;
        };
        let images: HashMap<String, String> = find_store_file(root, "images")
            .and_then(|(path, _)| read_json::<Vec<Image>>(&path))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| Some((i.id, i.names.into_iter().next()?)))
            .collect();
        self.modified = Some(modified);
        self.containers = containers
            .into_iter()
            .map(|c| {
                let from_metadata = c
                    .metadata
                    .and_then(|m| serde_json::from_str::<ContainerMetadata>(&m).ok())
                    .and_then(|m| m.image_name);
                let from_images = c.image.as_ref().and_then(|i| images.get(i).cloned());
                let mut meta = Metadata {
                    image: from_metadata.or(from_images).or(c.image),
                    ..Metadata::default()
                };
                meta.set_name(c.names.into_iter().next());
                (c.id, meta)
            })
            .collect();
    }
}

/// `<root>/<driver>-<kind>/<kind>.json` (the driver is overlay, vfs, btrfs...)
/// and its modification time.
fn find_store_file(root: &Path, kind: &str) -> Option<(PathBuf, SystemTime)> {
    std::fs::read_dir(root).ok()?.flatten().find_map(|entry| {
        let dir = entry.file_name();
        if !dir.to_string_lossy().ends_with(&format!("-{kind}")) {
            return None;
        }
        let path = entry.path().join(format!("{kind}.json"));
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        Some((path, modified))
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::debug!("{}: not the runtime state expected: {err}", path.display());
            None
        }
    }
}

/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` to (container, pod,
/// namespace).
fn kube_name(name: &str) -> Option<[&str; 3]> {
    let parts: Vec<&str> = name.strip_prefix("k8s_")?.split('_').collect();
    match parts[..] {
        [container, pod, namespace, _uid, _attempt] => Some([container, pod, namespace]),
        _ => None,
    }
}

/// The process-wide lookup, shared by the containers collector and the
/// attribution of eBPF metrics.
pub fn shared() -> &'static Mutex<Runtimes> {
    static SHARED: OnceLock<Mutex<Runtimes>> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Runtimes::new(Roots::default())))
}

/// [`Runtimes::lookup`] on the [`shared`] instance.
pub fn lookup(id: &str) -> Metadata {
    shared()
        .lock()
        .map(|mut r| r.lookup(id))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";

    fn roots(dir: &Path) -> Roots {
        Roots {
            docker: dir.join("docker"),
            storage: vec![dir.join("storage")],
            containerd_tasks: dir.join("tasks"),
        }
    }

    fn write(path: PathBuf, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sonde-runtime-{name}-{}", std::process::id()))
    }

    #[test]
    fn docker_config() {
        let dir = scratch("docker");
        write(
            dir.join(format!("docker/containers/{ID}/config.v2.json")),
            r#"{"Name":"/k8s_web_shop-7d9_prod_0b1c_0","Config":{"Image":"nginx:1.25","Labels":{"io.kubernetes.pod.name":"shop-7d9"}}}"#,
        );
        let meta = Runtimes::new(roots(&dir)).lookup(ID);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            meta,
            Metadata {
                name: Some("k8s_web_shop-7d9_prod_0b1c_0".into()),
                image: Some("nginx:1.25".into()),
                namespace: Some("prod".into()),
                pod: Some("shop-7d9".into()),
                kube_container: Some("web".into()),
            }
        );
    }

    #[test]
    fn containers_storage_reread_when_changed() {
        let dir = scratch("storage");
        let containers = dir.join("storage/overlay-containers/containers.json");
        write(
            dir.join("storage/overlay-images/images.json"),
            r#"[{"id":"img1","names":["localhost/app:1"]}]"#,
        );
        write(containers.clone(), "[]");
        let mut runtimes = Runtimes::new(roots(&dir));
        assert_eq!(runtimes.lookup(ID), Metadata::default());
        std::thread::sleep(Duration::from_millis(20));
        write(
            containers,
            &format!(r#"[{{"id":"{ID}","names":["app"],"image":"img1","metadata":"{{}}"}}]"#),
        );
        // A miss is retried only after a while.
        assert_eq!(runtimes.lookup(ID), Metadata::default());
        runtimes.found.clear();
        let meta = runtimes.lookup(ID);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(meta.name.as_deref(), Some("app"));
        assert_eq!(meta.image.as_deref(), Some("localhost/app:1"));
    }

    #[test]
    fn containerd_cri_annotations() {
        let dir = scratch("containerd");
        write(
            dir.join(format!("tasks/k8s.io/{ID}/config.json")),
            r#"{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.container-name":"api","io.kubernetes.cri.sandbox-name":"api-5f","io.kubernetes.cri.sandbox-namespace":"default","io.kubernetes.cri.image-name":"ghcr.io/x/api:2"}}"#,
        );
        let meta = Runtimes::new(roots(&dir)).lookup(ID);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(meta.name.as_deref(), Some("api"));
        assert_eq!(meta.pod.as_deref(), Some("api-5f"));
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert_eq!(meta.image.as_deref(), Some("ghcr.io/x/api:2"));
    }

    #[test]
    fn unknown_and_malformed_state_is_no_answer() {
        let dir = scratch("bad");
        write(
            dir.join(format!("docker/containers/{ID}/config.v2.json")),
            "{not json",
        );
        let meta = Runtimes::new(roots(&dir)).lookup(ID);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(meta, Metadata::default());
        assert_eq!(kube_name("k8s_a_b"), None);
    }
}
