//! The http collector (`bpf/http.bpf.c`): loads the program, reads its ring
//! buffer on a thread of its own (events must not wait for a round: the
//! buffer holds a few thousand requests), and hands each event to
//! [`crate::collect::http::Red`], which the rounds export.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};
use libbpf_rs::skel::SkelBuilder;
use libbpf_rs::{MapCore, MapHandle, RingBufferBuilder};

use super::{attach, object_storage, AttachKind, Attached, Loaded, Variant};
use crate::collect::http::{Conn, Event, Red};
use crate::collect::Collector;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/http.skel.rs"));
}
use skel::{HttpSkel, HttpSkelBuilder};

pub const NAME: &str = "http";

/// tp_btf first (the registers read directly), then raw_tp.
const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::TpBtf,
        programs: &["btf_sys_exit"],
    },
    Variant {
        kind: AttachKind::RawTp,
        programs: &["raw_sys_exit"],
    },
];

/// The bounded maps, in the order of `enum http_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["http_conns", "http_servers", "http_events"];

/// How long the reader waits for events before it checks whether to stop.
const POLL: Duration = Duration::from_millis(50);

/// `forget_after`: how long a series outlives its last request.
pub fn load(forget_after: Duration) -> anyhow::Result<Loaded> {
    let attached = attach(NAME, VARIANTS, || {
        let mut open = HttpSkelBuilder::default().open(object_storage())?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| anyhow!("the http object has no read-only data"))?;
        rodata.self_tgid = std::process::id();
        Ok(open)
    })?;
    let events = MapHandle::try_from(&attached.skel.maps.http_events)?;
    Ok(Loaded {
        kind: attached.kind,
        programs: attached.program_handles()?,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Http {
            attached,
            red: Arc::new(Mutex::new(Red::new(forget_after))),
            stop: Arc::new(AtomicBool::new(false)),
            reader: Reader::Waiting(events),
        }),
    })
}

/// The thread that reads the ring buffer. It starts at the first round, not
/// at load: `sonde run` drops the capabilities loading needs between the
/// two, and a thread keeps the set it was started with (`crate::privilege`).
enum Reader {
    Waiting(MapHandle),
    Running(JoinHandle<anyhow::Result<()>>),
    Stopped,
}

/// The reader thread: polls the ring buffer until `stop`.
fn read_events(events: &MapHandle, red: &Mutex<Red>, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut builder = RingBufferBuilder::new();
    builder.add(events, |bytes: &[u8]| {
        if let (Some(event), Ok(mut red)) = (decode(bytes), red.lock()) {
            red.observe(event);
        }
        0
    })?;
    let ring = builder.build()?;
    while !stop.load(Ordering::Relaxed) {
        ring.poll(POLL)?;
    }
    Ok(())
}

/// Offsets in `struct http_event` (bpf/sonde.h).
const KIND: usize = 0;
const TGID: usize = 4;
const FD: usize = 8;
const LISTEN_FD: usize = 12;
const NS: usize = 16;
const CGROUP: usize = 24;
const COMM: usize = 32;
const START_NS: usize = 48;
const END_NS: usize = 56;
const REQ_BYTES: usize = 64;
const RESP_BYTES: usize = 72;
const LEN: usize = 80;
const DATA: usize = 88;

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// One `struct http_event`; None when it is too short or of no known kind.
fn decode(bytes: &[u8]) -> Option<Event<'_>> {
    let conn = Conn {
        tgid: u32_at(bytes, TGID)?,
        fd: u32_at(bytes, FD)? as i32,
    };
    let head = || {
        let len = u32_at(bytes, LEN)? as usize;
        bytes.get(DATA..DATA + len)
    };
    match u32_at(bytes, KIND)? {
        0 => Some(Event::Request {
            conn,
            cgroup: u64_at(bytes, CGROUP)?,
            comm: bytes.get(COMM..COMM + 16)?,
            listen_fd: u32_at(bytes, LISTEN_FD)? as i32,
            head: head()?,
        }),
        1 => Some(Event::Response {
            conn,
            ns: u64_at(bytes, NS)?,
            before: u64_at(bytes, RESP_BYTES)?,
            head: head()?,
        }),
        3 => Some(Event::More {
            conn,
            head: head()?,
        }),
        2 => Some(Event::Done {
            conn,
            start_ns: u64_at(bytes, START_NS)?,
            end_ns: u64_at(bytes, END_NS)?,
            request_bytes: u64_at(bytes, REQ_BYTES)?,
            response_bytes: u64_at(bytes, RESP_BYTES)?,
        }),
        _ => None,
    }
}

struct Http {
    attached: Attached<HttpSkel<'static>>,
    red: Arc<Mutex<Red>>,
    stop: Arc<AtomicBool>,
    reader: Reader,
}

fn alive(tgid: u32) -> bool {
    Path::new(&format!("/proc/{tgid}")).exists()
}

/// Deletes the entries of processes that are gone from a map whose keys
/// start (u64 keys: end) with a tgid: a process that exits does not close
/// its fds through the syscall the program sees.
fn forget_gone(map: &impl MapCore, tgid_of: impl Fn(&[u8]) -> Option<u32>) {
    let gone: Vec<Vec<u8>> = map
        .keys()
        .filter(|key| tgid_of(key).is_some_and(|tgid| !alive(tgid)))
        .collect();
    for key in gone {
        // Already deleted by a close in between: nothing to do.
        let _ = map.delete(&key);
    }
}

impl Collector for Http {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        self.reader = match std::mem::replace(&mut self.reader, Reader::Stopped) {
            Reader::Waiting(events) => {
                let (red, stop) = (Arc::clone(&self.red), Arc::clone(&self.stop));
                let reader = std::thread::Builder::new()
                    .name("sonde-http".into())
                    .spawn(move || read_events(&events, &red, &stop))?;
                Reader::Running(reader)
            }
            other => other,
        };
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        if matches!(&self.reader, Reader::Running(r) if r.is_finished()) {
            if let Reader::Running(reader) = std::mem::replace(&mut self.reader, Reader::Stopped) {
                let result = reader.join().map_err(|_| anyhow!("panicked"));
                result
                    .and_then(|r| r)
                    .context("the http event reader stopped")?;
            }
        }
        let maps = &self.attached.skel.maps;
        forget_gone(&maps.conns, |key| Some((u64_at(key, 0)? >> 32) as u32));
        forget_gone(&maps.servers, |key| u32_at(key, 0));
        let mut red = self
            .red
            .lock()
            .map_err(|_| anyhow!("http state poisoned"))?;
        red.retain(alive);
        out.extend(red.families());
        Ok(())
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Reader::Running(reader) = std::mem::replace(&mut self.reader, Reader::Stopped) {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_and_refuses_short_ones() {
        let mut bytes = vec![0u8; DATA + 512];
        bytes[TGID..TGID + 4].copy_from_slice(&42u32.to_ne_bytes());
        bytes[FD..FD + 4].copy_from_slice(&7i32.to_ne_bytes());
        bytes[LEN..LEN + 4].copy_from_slice(&3u32.to_ne_bytes());
        bytes[DATA..DATA + 3].copy_from_slice(b"GET");
        match decode(&bytes) {
            Some(Event::Request { conn, head, .. }) => {
                assert_eq!(conn, Conn { tgid: 42, fd: 7 });
                assert_eq!(head, b"GET");
            }
            other => panic!("{other:?}"),
        }
        bytes[LEN..LEN + 4].copy_from_slice(&100_000u32.to_ne_bytes());
        assert!(decode(&bytes).is_none());
        bytes[KIND] = 2;
        bytes[START_NS..START_NS + 8].copy_from_slice(&10u64.to_ne_bytes());
        bytes[END_NS..END_NS + 8].copy_from_slice(&25u64.to_ne_bytes());
        assert!(matches!(
            decode(&bytes),
            Some(Event::Done {
                start_ns: 10,
                end_ns: 25,
                ..
            })
        ));
        bytes[KIND] = 9;
        assert!(decode(&bytes).is_none());
        assert!(decode(&bytes[..10]).is_none());
    }
}
