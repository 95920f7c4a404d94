//! Which service instance a request belongs to and where it came in, as
//! Grafana Beyla's Prometheus exporter labels it, so its dashboards (which
//! join on `target_info`) work unchanged:
//!
//! - `service_name`, in Beyla's order: `OTEL_SERVICE_NAME` from the
//!   process's environment, `service.name` in its `OTEL_RESOURCE_ATTRIBUTES`,
//!   the systemd unit without `.service`, the container, the executable
//!   (an interpreter's script or jar, [`super::interpreter`]);
//! - `service_namespace`: `OTEL_SERVICE_NAMESPACE`, else `service.namespace`
//!   in `OTEL_RESOURCE_ATTRIBUTES`, else a Kubernetes container's namespace,
//!   else empty;
//! - `instance`: `HOST:PID` (Beyla's default instance id, one per process);
//!   `job`: `NAMESPACE/NAME`, or `NAME` without a namespace;
//! - `server_address`, `server_port`: the local address and port the
//!   connection came in on;
//! - sonde's `unit`/`container` attribution.
//!
//! [`Services::target_info`] is Beyla's `target_info` gauge, one series per
//! process that served a request; it goes with the process
//! ([`Services::retain`]).
//!
//! Whether a connection is measured at all (`[collect.http]`'s selectors,
//! [`super::select`]) is decided here too, once per service.
//!
//! Cost: the names are read once per process. The address is read once per
//! listening socket; only a socket listening on every address (`0.0.0.0`,
//! `::`) makes sonde read each connection's own address, cached by the
//! socket's inode, so a keep-alive connection costs one `readlink` per
//! request and a new connection one read of `/proc/PID/net/tcp`.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use super::select::{Selection, Target};
use super::Conn;
use crate::collect::cgroup::{self, Placement};
use crate::collect::FastMap;
use crate::model::Family;

/// Connection sockets whose address is kept; beyond it the cache starts over
/// (a socket's address is read again, nothing is lost).
const MAX_SOCKETS: usize = 65_536;

/// Services kept per process and server address; beyond it the cache
/// starts over (a client calling ever new peers), nothing is lost.
const MAX_SERVICES: usize = 65_536;

/// A request's service instance and where it came in: made once per
/// process and server address, shared by its requests.
#[derive(Debug)]
pub struct Service {
    /// Shared with its routes and request log entries.
    pub name: Arc<str>,
    /// Its labels, sorted by name (`service_name`, `instance`, `job`…).
    pub labels: Vec<(&'static str, String)>,
    /// Whether `[collect.http]` selects its connections.
    pub measured: bool,
    /// A hash of `labels`, made once: the RED state keys its series by the
    /// service for every request.
    hash: u64,
}

impl Service {
    fn new(name: Arc<str>, labels: Vec<(&'static str, String)>, measured: bool) -> Service {
        const LABELS_HASH: foldhash::fast::FixedState =
            foldhash::fast::FixedState::with_seed(0x5e41);
        Service {
            hash: LABELS_HASH.hash_one(&labels),
            name,
            labels,
            measured,
        }
    }
}

/// Two services are one when their labels are (a process gone and its pid
/// reused by one of the same name is the same series).
impl PartialEq for Service {
    fn eq(&self, other: &Service) -> bool {
        self.hash == other.hash && self.labels == other.labels
    }
}

impl Eq for Service {}

impl Hash for Service {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// What is read once per process.
struct Instance {
    name: Arc<str>,
    /// The labels every series of the process carries, made once.
    labels: Vec<(&'static str, String)>,
    /// What `[collect.http]`'s selectors look at, but the port.
    exe_path: String,
    placement: Placement,
    /// Whether any of its services is measured: only then is it in
    /// `target_info`.
    measured: bool,
}

impl Instance {
    fn new(tgid: u32, name: String, namespace: String, placement: Placement) -> Instance {
        let job = if namespace.is_empty() {
            name.clone()
        } else {
            format!("{namespace}/{name}")
        };
        let mut labels = vec![
            ("service_name", name.clone()),
            ("service_namespace", namespace),
            ("instance", format!("{}:{tgid}", host().name)),
            ("job", job),
        ];
        labels.extend(
            placement
                .labels()
                .map(|(label, value)| (label, value.to_string())),
        );
        Instance {
            name: name.into(),
            labels,
            exe_path: String::new(),
            placement,
            measured: false,
        }
    }
}

/// A socket's local address and port, and the inode it was read for.
#[derive(Clone)]
struct Local {
    inode: u64,
    address: IpAddr,
    port: u16,
}

/// Names and addresses already read, per process.
#[derive(Default)]
pub struct Services {
    selection: Selection,
    instances: FastMap<u32, Instance>,
    /// A listening fd of a process.
    listening: FastMap<(u32, i32), Local>,
    /// A connection's fd of a process, for listeners on every address.
    connections: FastMap<(u32, i32), Local>,
    /// A process's service per server address and port.
    services: FastMap<ServiceKey, Arc<Service>>,
}

/// A process and the server address and port its requests came in on (a
/// client's: the peer it called).
type ServiceKey = (u32, Option<(IpAddr, u16)>);

/// Who a connection's OPEN names: the process on it, its parent, its
/// cgroup and its comm.
#[derive(Clone, Copy, Debug)]
pub struct Opener<'a> {
    pub tgid: u32,
    pub parent: u32,
    pub cgroup: u64,
    pub comm: &'a [u8],
}

impl Services {
    pub fn new(selection: Selection) -> Services {
        Services {
            selection,
            ..Services::default()
        }
    }

    /// The service of a request on `conn`, accepted on `listen_fd` (-1 when
    /// sonde did not see the accept: the address is then read from the
    /// connection itself).
    pub fn of(&mut self, conn: Conn, opener: Opener, listen_fd: i32) -> Arc<Service> {
        let listening = (listen_fd >= 0)
            .then(|| self.listening(conn.tgid, listen_fd))
            .flatten();
        let local = match listening {
            Some(local) if !local.address.is_unspecified() => Some(local),
            _ => self.connection(conn),
        };
        self.serving(opener, local.map(|local| (local.address, local.port)))
    }

    /// The service of the opener on a connection whose server end is
    /// `server`: a server's own address, or the peer a client calls
    /// (Beyla's client labels, where the server is the peer).
    pub fn at(&mut self, opener: Opener, server: Option<SocketAddr>) -> Arc<Service> {
        self.serving(opener, server.map(|s| (s.ip(), s.port())))
    }

    /// The instance labels of the opener's owner ([`owner`]) with the
    /// server's address and port.
    fn serving(&mut self, opener: Opener, server: Option<(IpAddr, u16)>) -> Arc<Service> {
        let tgid = opener.tgid;
        if let Some(service) = self.services.get(&(tgid, server)) {
            return service.clone();
        }
        let owner = owner(tgid, opener.parent);
        let instance = self
            .instances
            .entry(owner)
            .or_insert_with(|| instance_of(owner, opener.cgroup, opener.comm));
        let measured = self.selection.measures(&Target {
            exe_path: &instance.exe_path,
            unit: instance.placement.unit.as_deref(),
            container: instance.placement.container.as_deref(),
            port: server.map(|(_, port)| port),
        });
        instance.measured |= measured;
        let mut labels = instance.labels.clone();
        labels.extend([
            (
                "server_address",
                server
                    .map(|(address, _)| address.to_string())
                    .unwrap_or_default(),
            ),
            (
                "server_port",
                server.map(|(_, port)| port.to_string()).unwrap_or_default(),
            ),
        ]);
        labels.sort();
        let service = Arc::new(Service::new(instance.name.clone(), labels, measured));
        if self.services.len() >= MAX_SERVICES {
            self.services.clear();
        }
        self.services.insert((tgid, server), service.clone());
        service
    }

    fn listening(&mut self, tgid: u32, fd: i32) -> Option<Local> {
        if let Some(local) = self.listening.get(&(tgid, fd)) {
            return Some(local.clone());
        }
        let local = local_of(tgid, socket_inode(tgid, fd)?)?;
        self.listening.insert((tgid, fd), local.clone());
        Some(local)
    }

    /// The connection's own address: one `readlink` to tell whether the fd
    /// still holds the socket cached. A connection closed before its events
    /// were read (the reader drains every few tens of ms, a client may
    /// close right after its response) has no fd left to read: then what
    /// was read of it while it was open, else the process's one listener
    /// on a given address, else nothing.
    fn connection(&mut self, conn: Conn) -> Option<Local> {
        let key = (conn.tgid, conn.fd);
        let Some(inode) = socket_inode(conn.tgid, conn.fd) else {
            return self
                .connections
                .get(&key)
                .cloned()
                .or_else(|| self.only_listener(conn.tgid));
        };
        if let Some(local) = self.connections.get(&key).filter(|l| l.inode == inode) {
            return Some(local.clone());
        }
        let local = local_of(conn.tgid, inode)?;
        if self.connections.len() >= MAX_SOCKETS {
            self.connections.clear();
        }
        self.connections.insert(key, local.clone());
        Some(local)
    }

    /// The address of process `tgid`'s listener, when it has exactly one
    /// known and it listens on one address (not `0.0.0.0` or `::`).
    fn only_listener(&self, tgid: u32) -> Option<Local> {
        let mut listeners = self.listening.iter().filter(|((of, _), _)| *of == tgid);
        let (_, only) = listeners.next()?;
        (listeners.next().is_none() && !only.address.is_unspecified()).then(|| only.clone())
    }

    pub fn retain(&mut self, alive: impl Fn(u32) -> bool) {
        self.instances.retain(|tgid, _| alive(*tgid));
        self.listening.retain(|(tgid, _), _| alive(*tgid));
        self.connections.retain(|(tgid, _), _| alive(*tgid));
        self.services.retain(|(tgid, _), _| alive(*tgid));
    }

    /// Beyla's `target_info`: 1 per process that served a request, with the
    /// labels its series join on.
    pub fn target_info(&self) -> Family {
        let mut family = Family::gauge(
            "target_info",
            "Target metadata: one series per instrumented service instance (process).",
        );
        let host = host();
        for instance in self.instances.values().filter(|i| i.measured) {
            let mut labels = instance.labels.clone();
            labels.extend([
                ("host_name", host.name.clone()),
                ("host_id", host.id.clone()),
                ("os_type", "linux".to_string()),
                ("telemetry_sdk_name", "sonde".to_string()),
                (
                    "telemetry_sdk_version",
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
            ]);
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            family.push(&labels, 1.0);
        }
        family
    }
}

/// The process whose instance a connection's requests count under: the
/// process on it, or its parent when it is a fork of the parent (the same
/// executable: a pre-fork server's worker, a child forked per connection)
/// or already gone (a child forked per connection lives a request, and
/// names itself only while it lives). So a server's forks are one
/// instance, not a set of series per child.
fn owner(tgid: u32, parent: u32) -> u32 {
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    if parent <= 1 {
        return tgid;
    }
    match exe(tgid) {
        None => parent,
        Some(own) if exe(parent).as_ref() == Some(&own) => parent,
        Some(_) => tgid,
    }
}

/// Names a process: its environment, cgroup and executable (or the
/// program an interpreter runs).
fn instance_of(tgid: u32, cgroup: u64, comm: &[u8]) -> Instance {
    let placement = cgroup::placement(cgroup);
    let environ = std::fs::read(format!("/proc/{tgid}/environ")).unwrap_or_default();
    let exe_path = std::fs::read_link(format!("/proc/{tgid}/exe"))
        .map(|exe| exe.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The executable's file name, not the comm of the thread that read (a
    // worker thread's name, like tokio-rt-worker).
    let exe = match exe_path.rsplit('/').next() {
        Some(name) if !name.is_empty() => {
            let cmdline = std::fs::read(format!("/proc/{tgid}/cmdline")).unwrap_or_default();
            super::interpreter::program(name, &cmdline).unwrap_or_else(|| name.to_string())
        }
        _ => crate::collect::bpf::comm_label(comm),
    };
    let name = service_name(&environ, &placement, &exe);
    let namespace = service_namespace(&environ).unwrap_or_else(|| kube_namespace(cgroup));
    Instance {
        exe_path,
        ..Instance::new(tgid, name, namespace, placement)
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`) and id
/// (`/etc/machine-id`), read once.
struct Host {
    name: String,
    id: String,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Host {
            name: read("/proc/sys/kernel/hostname"),
            id: read("/etc/machine-id"),
        }
    })
}

/// The value of `key` in a NUL-separated `KEY=value` environment, when set
/// and not empty.
fn env_var<'a>(environ: &'a [u8], key: &str) -> Option<&'a [u8]> {
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(key.as_bytes())?.strip_prefix(b"="))
        .filter(|value| !value.is_empty())
}

/// The value of `key` in `OTEL_RESOURCE_ATTRIBUTES` (`k1=v1,k2=v2`, values
/// percent-encoded as the OpenTelemetry spec says).
fn resource_attribute(environ: &[u8], key: &str) -> Option<String> {
    let attributes = String::from_utf8_lossy(env_var(environ, "OTEL_RESOURCE_ATTRIBUTES")?);
    attributes.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        let value: String = form_urlencoded::parse(format!("v={}", v.trim()).as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()?;
        (k.trim() == key && !value.is_empty()).then_some(value)
    })
}

/// The service name of a process with this environment (NUL-separated
/// `KEY=value`), placement and executable name.
pub fn service_name(environ: &[u8], placement: &Placement, exe: &str) -> String {
    if let Some(name) = env_var(environ, "OTEL_SERVICE_NAME") {
        return String::from_utf8_lossy(name).into_owned();
    }
    if let Some(name) = resource_attribute(environ, "service.name") {
        return name;
    }
    if let Some(unit) = placement.unit.as_deref() {
        if let Some(service) = unit.strip_suffix(".service") {
            return service.to_string();
        }
    }
    if let Some(container) = placement.container.as_deref() {
        return container.to_string();
    }
    exe.to_string()
}

/// The namespace a process's environment gives its service, if any.
fn service_namespace(environ: &[u8]) -> Option<String> {
    env_var(environ, "OTEL_SERVICE_NAMESPACE")
        .map(|ns| String::from_utf8_lossy(ns).into_owned())
        .or_else(|| resource_attribute(environ, "service.namespace"))
}

/// The Kubernetes namespace of the container cgroup `id` belongs to, or empty.
fn kube_namespace(id: u64) -> String {
    let path = cgroup::shared().lock().ok().and_then(|mut c| c.path(id));
    path.as_deref()
        .and_then(|path| path.split('/').find_map(cgroup::container_id))
        .and_then(|container| crate::collect::containers::runtime::lookup(container).namespace)
        .unwrap_or_default()
}

/// The inode of socket `fd` of process `tgid`.
fn socket_inode(tgid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Which end of a socket's line in /proc/net/tcp: the column of its address.
#[derive(Clone, Copy)]
enum End {
    Local = 1,
    Remote = 2,
}

/// The local address of the TCP socket with `inode`, from the process's
/// view of /proc/net/tcp and tcp6.
fn local_of(tgid: u32, inode: u64) -> Option<Local> {
    let (address, port) = end_of(tgid, inode, End::Local)?;
    Some(Local {
        inode,
        address,
        port,
    })
}

/// The peer of client connection `conn`, read from the connection itself
/// (Go's TLS calls: the program knows their fd, not their peer).
pub fn peer_of(conn: Conn) -> Option<SocketAddr> {
    let inode = socket_inode(conn.tgid, conn.fd)?;
    let (address, port) = end_of(conn.tgid, inode, End::Remote)?;
    Some(SocketAddr::new(address, port))
}

/// One end of the TCP socket with `inode`, from the process's view of
/// /proc/net/tcp and tcp6.
fn end_of(tgid: u32, inode: u64, end: End) -> Option<(IpAddr, u16)> {
    ["tcp", "tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(format!("/proc/{tgid}/net/{table}")).ok()?;
        end_of_inode(&text, inode, end)
    })
}

/// An end's address and port of the socket with `inode` in a /proc/net/tcp
/// or tcp6 table. Addresses are written as 32-bit words in the host's byte
/// order; an IPv4-mapped IPv6 address is given as the IPv4 one.
fn end_of_inode(table: &str, inode: u64, end: End) -> Option<(IpAddr, u16)> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        let (address, port) = fields.get(end as usize)?.rsplit_once(':')?;
        let words = (0..address.len() / 8)
            .map(|i| u32::from_str_radix(address.get(i * 8..i * 8 + 8)?, 16).ok())
            .collect::<Option<Vec<u32>>>()?;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let address = match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?).to_canonical(),
            _ => return None,
        };
        Some((address, u16::from_str_radix(port, 16).ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_beyla_order() {
        let unit = Placement::of_path("/system.slice/nginx.service");
        let none = Placement::default();
        let env = b"PATH=/bin\0OTEL_SERVICE_NAME=shop\0";
        assert_eq!(service_name(env, &unit, "nginx"), "shop");
        assert_eq!(service_name(b"PATH=/bin\0", &unit, "nginx"), "nginx");
        assert_eq!(
            service_name(b"OTEL_SERVICE_NAME=\0", &none, "python3"),
            "python3"
        );
        let attributes =
            b"OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop, service.name=cart%20api\0";
        assert_eq!(service_name(attributes, &unit, "nginx"), "cart api");
        let scope = Placement::of_path("/user.slice/user-0.slice/session-1.scope");
        assert_eq!(service_name(b"", &scope, "python3"), "python3");
    }

    #[test]
    fn namespaces_and_jobs() {
        assert_eq!(
            service_namespace(b"OTEL_SERVICE_NAMESPACE=shop\0").as_deref(),
            Some("shop")
        );
        let attributes = b"OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop,x=y\0";
        assert_eq!(service_namespace(attributes).as_deref(), Some("shop"));
        // The variable wins over the attribute, as Beyla's Kubernetes rules have it.
        let both = b"OTEL_RESOURCE_ATTRIBUTES=service.namespace=a\0OTEL_SERVICE_NAMESPACE=b\0";
        assert_eq!(service_namespace(both).as_deref(), Some("b"));
        assert_eq!(service_namespace(b"OTEL_SERVICE_NAMESPACE_X=1\0"), None);
        let label = |instance: &Instance, name| {
            let (_, value) = instance.labels.iter().find(|(k, _)| *k == name).unwrap();
            value.clone()
        };
        let unit = Placement::of_path("/system.slice/cart.service");
        let alone = Instance::new(42, "cart".into(), String::new(), unit.clone());
        assert_eq!(label(&alone, "job"), "cart");
        assert_eq!(label(&alone, "unit"), "cart.service");
        let shop = Instance::new(42, "cart".into(), "shop".into(), unit);
        assert_eq!(label(&shop, "job"), "shop/cart");
        assert_eq!(label(&shop, "instance"), format!("{}:42", host().name));
        assert_eq!(label(&shop, "service_namespace"), "shop");
    }

    #[test]
    fn finds_the_address_of_an_inode() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(end_of_inode(v4, 12345, End::Local), Some((localhost, 8080)));
        assert_eq!(end_of_inode(v4, 1, End::Local), None);
        let nowhere = IpAddr::from([0, 0, 0, 0]);
        assert_eq!(end_of_inode(v4, 12345, End::Remote), Some((nowhere, 0)));
        assert_eq!(end_of_inode("garbage", 1, End::Local), None);
        // ::ffff:127.0.0.1 and :: as tcp6 writes them on a little-endian host.
        let v6 = "  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0\n   1: 00000000000000000000000000000000:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 8 1 0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(end_of_inode(v6, 7, End::Local), Some((localhost, 80)));
            let (any, port) = end_of_inode(v6, 8, End::Local).unwrap();
            assert!(any.is_unspecified() && port == 81);
        }
    }
}
