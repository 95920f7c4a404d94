//! Which service a request belongs to and on which port it came in: the
//! `service_name` (in Beyla's order: `OTEL_SERVICE_NAME` from the process's
//! environment, the systemd unit without `.service`, the container, the
//! executable), sonde's `unit`/`container` labels, and `server_port` from
//! the listening socket. Answers are kept per process until it is gone.

use std::collections::HashMap;

use super::Conn;
use crate::collect::cgroup::{self, Placement};

/// A request's service, as its labels say it.
pub struct Service {
    pub name: String,
    pub placement: Placement,
    pub port: Option<u16>,
}

impl Service {
    /// `server_port`: the number, or empty when it could not be read.
    pub fn port_label(&self) -> String {
        self.port.map(|p| p.to_string()).unwrap_or_default()
    }

    pub fn placement_labels(&self) -> Vec<(&'static str, String)> {
        self.placement
            .labels()
            .map(|(name, value)| (name, value.to_string()))
            .collect()
    }
}

/// Names and ports already read, per process.
#[derive(Default)]
pub struct Services {
    names: HashMap<u32, (String, Placement)>,
    /// The port of a listening fd of a process.
    ports: HashMap<(u32, i32), u16>,
}

impl Services {
    /// The service of a request on `conn`, accepted on `listen_fd` (-1 when
    /// sonde did not see the accept: the port is then read from the
    /// connection itself).
    pub fn of(&mut self, conn: Conn, cgroup: u64, comm: &[u8], listen_fd: i32) -> Service {
        let (name, placement) = self.process(conn.tgid, cgroup, comm);
        let port = if listen_fd >= 0 {
            match self.ports.get(&(conn.tgid, listen_fd)) {
                Some(port) => Some(*port),
                None => {
                    let port = local_port(conn.tgid, listen_fd);
                    if let Some(port) = port {
                        self.ports.insert((conn.tgid, listen_fd), port);
                    }
                    port
                }
            }
        } else {
            local_port(conn.tgid, conn.fd)
        };
        Service {
            name,
            placement,
            port,
        }
    }

    /// The service name and placement of process `tgid` (whose thread
    /// `comm` made the request, in `cgroup`).
    pub fn process(&mut self, tgid: u32, cgroup: u64, comm: &[u8]) -> (String, Placement) {
        self.names
            .entry(tgid)
            .or_insert_with(|| {
                let placement = cgroup::placement(cgroup);
                let environ = std::fs::read(format!("/proc/{tgid}/environ"));
                // The executable's file name, not the comm of the thread
                // that read (a worker thread's name, like tokio-rt-worker).
                let exe = std::fs::read_link(format!("/proc/{tgid}/exe"))
                    .ok()
                    .and_then(|exe| Some(exe.file_name()?.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| crate::collect::bpf::comm_label(comm));
                let name = service_name(environ.as_deref().unwrap_or_default(), &placement, &exe);
                (name, placement)
            })
            .clone()
    }

    pub fn retain(&mut self, alive: impl Fn(u32) -> bool) {
        self.names.retain(|tgid, _| alive(*tgid));
        self.ports.retain(|(tgid, _), _| alive(*tgid));
    }
}

/// The service name of a process with this environment (NUL-separated
/// `KEY=value`), placement and executable name.
pub fn service_name(environ: &[u8], placement: &Placement, exe: &str) -> String {
    let from_env = environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"OTEL_SERVICE_NAME="))
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned());
    if let Some(name) = from_env {
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

/// The local TCP port of socket `fd` of process `tgid`, from its inode in
/// the process's view of /proc/net/tcp and tcp6.
fn local_port(tgid: u32, fd: i32) -> Option<u16> {
    let link = std::fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
    let inode = link
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .to_string();
    ["tcp", "tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(format!("/proc/{tgid}/net/{table}")).ok()?;
        port_of_inode(&text, &inode)
    })
}

/// The local port of the socket with `inode` in a /proc/net/tcp table.
fn port_of_inode(table: &str, inode: &str) -> Option<u16> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9) != Some(&inode) {
            return None;
        }
        let (_, port) = fields.get(1)?.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
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
        let scope = Placement::of_path("/user.slice/user-0.slice/session-1.scope");
        assert_eq!(service_name(b"", &scope, "python3"), "python3");
    }

    #[test]
    fn finds_the_port_of_an_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(port_of_inode(table, "12345"), Some(8080));
        assert_eq!(port_of_inode(table, "1"), None);
        assert_eq!(port_of_inode("garbage", "1"), None);
    }
}
