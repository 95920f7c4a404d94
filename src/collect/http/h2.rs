//! HTTP/2 streams from the bytes of an HTTP/2 connection, as the http
//! collector's program sends them (an event per read or write, or several
//! for one of many frames, [`Chunk`]: the pieces of its bytes that hold
//! frame headers and payloads other than DATA's): the frames of each
//! direction followed, their header blocks decoded (HPACK), each stream
//! timed from its request's HEADERS to its response's end (END_STREAM), a
//! gRPC call told by its content type and its status read from its
//! `grpc-status`.
//!
//! Invariants:
//! - A direction's bytes come in order (one process's reads, or writes, of
//!   one connection follow each other), each chunk with how many bytes
//!   moved and which pieces of them were copied: bytes not copied are a
//!   gap. The program walks the frames too and copies what this module
//!   needs, so a gap over a header is the program's loss (a chunk marked
//!   lost, or a piece that did not fit), and is taken as one.
//! - A gap inside a frame's payload that is no header block (DATA's,
//!   mostly) is stepped over: the frame's length says where the next one
//!   starts. A gap over a frame's header or inside a header block loses
//!   the framing or the HPACK table that every later block needs: the
//!   connection is given up ([`Connection::is_lost`]), its streams with
//!   it; nothing is guessed.
//! - Bounded per connection: [`MAX_STREAMS`] streams in flight (more are
//!   not followed), [`MAX_HEADER_BLOCK`] bytes of a header block,
//!   [`MAX_TABLE`] bytes of each HPACK table (a larger one loses the
//!   connection).

use std::collections::HashMap;

use super::{hpack, parse, Role};

/// The connection preface a client sends first (RFC 9113, 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Streams in flight followed on one connection.
pub const MAX_STREAMS: usize = 1024;
/// Most bytes of one header block (HEADERS or PUSH_PROMISE and its
/// CONTINUATIONs).
pub const MAX_HEADER_BLOCK: usize = 16 * 1024;
/// Largest HPACK table a direction may ask for (4 KiB is HTTP/2's default).
pub const MAX_TABLE: usize = 16 * 1024;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A stream whose response ended, at `end_ns`.
#[derive(Debug, PartialEq, Eq)]
pub struct Done {
    pub stream: Stream,
    pub end_ns: u64,
}

/// One HTTP/2 connection as one of its ends sees it.
pub struct Connection {
    role: Role,
    /// Toward the server (requests), toward the client (responses).
    ways: [Way; 2],
    streams: HashMap<u32, Stream>,
    lost: bool,
}

/// A stream whose request began.
#[derive(Debug, PartialEq, Eq)]
pub struct Stream {
    pub start_ns: u64,
    pub method: &'static str,
    pub path: String,
    /// `:status`; 0 while (or when) its response has none.
    pub status: u16,
    /// A gRPC call's status (`grpc-status`), None for plain HTTP/2; a gRPC
    /// call is UNKNOWN (2) until its status comes.
    pub grpc_status: Option<u16>,
    /// DATA bytes of the request and of the response.
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// One direction's framing and HPACK table.
struct Way {
    /// Bytes of the preface still to come (the request way's first).
    preface: usize,
    header: [u8; 9],
    header_len: usize,
    frame: Option<Frame>,
    /// The header block being gathered, its stream and whether it ends it.
    block: Vec<u8>,
    block_stream: u32,
    block_ends_stream: bool,
    block_promised: bool,
    hpack: hpack::Decoder,
}

/// The fields of a header block a stream's figures need.
#[derive(Default)]
struct Fields {
    method: Option<&'static str>,
    path: Option<String>,
    status: Option<u16>,
    grpc: bool,
    grpc_status: Option<u16>,
}

impl Fields {
    fn take(&mut self, name: &[u8], value: &[u8]) {
        match name {
            b":method" => self.method = Some(parse::method_label(value)),
            b":path" => self.path = parse::path(value),
            b":status" => self.status = Some(number(value)),
            b"content-type" => self.grpc = value.starts_with(b"application/grpc"),
            b"grpc-status" => self.grpc_status = Some(number(value)),
            _ => {}
        }
    }
}

#[derive(Clone, Copy)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    length: u32,
    /// Payload bytes still to come.
    left: u32,
}

/// What a frame's end tells the connection.
enum Finished {
    Nothing,
    /// Bytes of a DATA frame (whole, its padding included).
    Data {
        stream: u32,
        bytes: u64,
        end: bool,
    },
    Headers {
        stream: u32,
        fields: Fields,
        end: bool,
    },
    Reset {
        stream: u32,
    },
}

/// The framing or an HPACK table is lost: the connection is given up.
struct Lost;

/// One read or write, or a stretch of one, as the program sends it
/// (`struct http_chunk` in bpf/sonde.h): `len` bytes moved, `pieces` of
/// them copied, each a native-endian `u32` offset into those bytes, a
/// `u16` length and the bytes, in order; `lost` when the program could not
/// follow the frames through it.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    pub len: u64,
    pub pieces: &'a [u8],
    pub lost: bool,
}

impl<'a> Chunk<'a> {
    /// Its first piece (offset and bytes) and the pieces after it; None
    /// when no whole piece is left.
    fn first_piece(pieces: &'a [u8]) -> Option<(u64, &'a [u8], &'a [u8])> {
        let at = u32::from_ne_bytes(pieces.get(..4)?.try_into().ok()?);
        let len = u16::from_ne_bytes(pieces.get(4..6)?.try_into().ok()?);
        let bytes = pieces.get(6..6 + usize::from(len))?;
        Some((at.into(), bytes, &pieces[6 + usize::from(len)..]))
    }

    /// Feeds `way` its bytes: pieces and the gaps between them, in order.
    fn feed(&self, way: &mut Way, finished: &mut Vec<Finished>) -> Result<(), Lost> {
        if self.lost {
            return Err(Lost);
        }
        let (mut at, mut pieces) = (0, self.pieces);
        while !pieces.is_empty() {
            let (offset, bytes, rest) = Chunk::first_piece(pieces).ok_or(Lost)?;
            let end = offset + bytes.len() as u64;
            if offset < at || end > self.len {
                return Err(Lost);
            }
            way.gap(offset - at, finished)?;
            way.bytes(bytes, finished)?;
            (at, pieces) = (end, rest);
        }
        way.gap(self.len - at, finished)
    }
}

impl Way {
    fn new(preface: usize) -> Way {
        Way {
            preface,
            header: [0; 9],
            header_len: 0,
            frame: None,
            block: Vec::new(),
            block_stream: 0,
            block_ends_stream: false,
            block_promised: false,
            hpack: hpack::Decoder::new(MAX_TABLE),
        }
    }

    /// Takes in copied bytes; what the frames that ended say.
    fn bytes(&mut self, mut data: &[u8], finished: &mut Vec<Finished>) -> Result<(), Lost> {
        let skip = self.preface.min(data.len());
        if data[..skip] != PREFACE[PREFACE.len() - self.preface..][..skip] {
            return Err(Lost);
        }
        self.preface -= skip;
        data = &data[skip..];
        while !data.is_empty() {
            let Some(frame) = self.frame.as_mut() else {
                let take = (9 - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len == 9 {
                    self.start_frame(finished)?;
                }
                continue;
            };
            let take = (frame.left as usize).min(data.len());
            if matches!(frame.kind, HEADERS | PUSH_PROMISE | CONTINUATION) {
                if self.block.len() + take > MAX_HEADER_BLOCK {
                    return Err(Lost);
                }
                self.block.extend_from_slice(&data[..take]);
            }
            frame.left -= take as u32;
            data = &data[take..];
            if frame.left == 0 {
                self.end_frame(finished)?;
            }
        }
        Ok(())
    }

    /// Steps over `len` bytes that were not copied.
    fn gap(&mut self, mut len: u64, finished: &mut Vec<Finished>) -> Result<(), Lost> {
        while len > 0 {
            let Some(frame) = self.frame.as_mut() else {
                return Err(Lost);
            };
            if frame.kind != DATA {
                // Header blocks feed the HPACK table; other frames are
                // short and always copied: a gap there is a lost framing.
                return Err(Lost);
            }
            let take = u64::from(frame.left).min(len);
            frame.left -= take as u32;
            len -= take;
            if frame.left == 0 {
                self.end_frame(finished)?;
            }
        }
        Ok(())
    }

    fn start_frame(&mut self, finished: &mut Vec<Finished>) -> Result<(), Lost> {
        let h = self.header;
        self.header_len = 0;
        let length = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let frame = Frame {
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            length,
            left: length,
        };
        match frame.kind {
            HEADERS | PUSH_PROMISE => {
                if !self.block.is_empty() {
                    return Err(Lost); // a block left without its CONTINUATION
                }
                self.block_stream = frame.stream;
                self.block_ends_stream = frame.kind == HEADERS && frame.flags & END_STREAM != 0;
                self.block_promised = frame.kind == PUSH_PROMISE;
            }
            CONTINUATION if frame.stream != self.block_stream => return Err(Lost),
            _ => {}
        }
        self.frame = Some(frame);
        if length == 0 {
            self.end_frame(finished)?;
        }
        Ok(())
    }

    fn end_frame(&mut self, finished: &mut Vec<Finished>) -> Result<(), Lost> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        let event = match frame.kind {
            DATA => Finished::Data {
                stream: frame.stream,
                bytes: frame.length.into(),
                end: frame.flags & END_STREAM != 0,
            },
            RST_STREAM => Finished::Reset {
                stream: frame.stream,
            },
            HEADERS | PUSH_PROMISE | CONTINUATION => {
                if frame.kind != CONTINUATION {
                    // The block began with this frame: its payload.
                    let fragment = fragment(&self.block, &frame).ok_or(Lost)?;
                    self.block.truncate(fragment.end);
                    self.block.drain(..fragment.start);
                }
                if frame.flags & END_HEADERS == 0 {
                    return Ok(());
                }
                let block = std::mem::take(&mut self.block);
                let mut fields = Fields::default();
                self.hpack
                    .decode(&block, |name, value| fields.take(name, value))
                    .map_err(|_| Lost)?;
                // A promise's headers only keep the table: its stream was
                // not requested on this connection's request way.
                if self.block_promised {
                    Finished::Nothing
                } else {
                    Finished::Headers {
                        stream: self.block_stream,
                        fields,
                        end: self.block_ends_stream,
                    }
                }
            }
            _ => Finished::Nothing,
        };
        finished.push(event);
        Ok(())
    }
}

/// Where a HEADERS or PUSH_PROMISE frame's header block fragment is in its
/// payload: without padding, priority and promised stream id. None when
/// they do not fit.
fn fragment(payload: &[u8], frame: &Frame) -> Option<std::ops::Range<usize>> {
    let (mut start, mut end) = (0, payload.len());
    if frame.flags & PADDED != 0 {
        start = 1;
        end = end.checked_sub(usize::from(*payload.first()?))?;
    }
    start += match frame.kind {
        PUSH_PROMISE => 4,
        _ if frame.flags & PRIORITY != 0 => 5,
        _ => 0,
    };
    (start <= end).then_some(start..end)
}

impl Connection {
    /// A connection at its `role` end, from its preface on.
    pub fn new(role: Role) -> Connection {
        Connection {
            role,
            ways: [Way::new(PREFACE.len()), Way::new(0)],
            streams: HashMap::new(),
            lost: false,
        }
    }

    /// Whether it was given up (see the module's invariants).
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Takes in a read (`received`) or write at `ns`; streams whose
    /// responses ended go to `done`.
    pub fn bytes(&mut self, received: bool, ns: u64, chunk: Chunk, done: &mut Vec<Done>) {
        if self.lost {
            return;
        }
        let toward_server = received == (self.role == Role::Server);
        let way = &mut self.ways[usize::from(!toward_server)];
        let mut finished = Vec::new();
        let framed = chunk.feed(way, &mut finished);
        for event in finished {
            self.apply(toward_server, ns, event, done);
        }
        if framed.is_err() {
            // Nothing kept: the tables and streams go.
            *self = Connection {
                lost: true,
                ..Connection::new(self.role)
            };
        }
    }

    fn apply(&mut self, toward_server: bool, ns: u64, event: Finished, done: &mut Vec<Done>) {
        match event {
            Finished::Nothing => {}
            Finished::Reset { stream } => {
                self.streams.remove(&stream);
            }
            Finished::Data { stream, bytes, end } => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    return;
                };
                if toward_server {
                    s.request_bytes += bytes;
                } else {
                    s.response_bytes += bytes;
                    if end {
                        self.end(stream, ns, done);
                    }
                }
            }
            Finished::Headers {
                stream,
                fields,
                end,
            } => {
                if toward_server {
                    if !self.streams.contains_key(&stream) && self.streams.len() < MAX_STREAMS {
                        self.streams.insert(stream, Stream::new(ns, fields));
                    }
                    return;
                }
                let Some(s) = self.streams.get_mut(&stream) else {
                    return;
                };
                if s.status == 0 {
                    s.status = fields.status.unwrap_or(0);
                }
                if let (Some(call), Some(code)) = (s.grpc_status.as_mut(), fields.grpc_status) {
                    *call = code;
                }
                if end {
                    self.end(stream, ns, done);
                }
            }
        }
    }

    fn end(&mut self, stream: u32, ns: u64, done: &mut Vec<Done>) {
        if let Some(stream) = self.streams.remove(&stream) {
            done.push(Done { stream, end_ns: ns });
        }
    }
}

impl Stream {
    fn new(ns: u64, fields: Fields) -> Stream {
        Stream {
            start_ns: ns,
            method: fields.method.unwrap_or("_OTHER"),
            path: fields.path.unwrap_or_default(),
            status: 0,
            grpc_status: fields.grpc.then_some(2),
            request_bytes: 0,
            response_bytes: 0,
        }
    }
}

/// A decimal status; 0 when it is none.
fn number(value: &[u8]) -> u16 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The pieces of a chunk (`struct http_chunk`'s data) for tests: each
/// offset and its bytes.
#[cfg(test)]
pub(crate) fn pieces(list: &[(u32, &[u8])]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (at, bytes) in list {
        encoded.extend_from_slice(&at.to_ne_bytes());
        encoded.extend_from_slice(&(bytes.len() as u16).to_ne_bytes());
        encoded.extend_from_slice(bytes);
    }
    encoded
}

/// An HTTP/2 frame, for tests.
#[cfg(test)]
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut bytes = vec![len[1], len[2], len[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: u8 = 4;

    /// A read (`received`) or write of `len` bytes, its first ones `copied`
    /// (a piece at 0), the rest a gap.
    fn feed(
        conn: &mut Connection,
        received: bool,
        ns: u64,
        len: u64,
        copied: &[u8],
        done: &mut Vec<Done>,
    ) {
        let pieces = pieces(&[(0, copied)]);
        let chunk = Chunk {
            len,
            pieces: if copied.is_empty() { &[] } else { &pieces },
            lost: false,
        };
        conn.bytes(received, ns, chunk, done);
    }

    /// [`feed`] of `bytes`, all copied.
    fn feed_all(
        conn: &mut Connection,
        received: bool,
        ns: u64,
        bytes: &[u8],
        done: &mut Vec<Done>,
    ) {
        feed(conn, received, ns, bytes.len() as u64, bytes, done);
    }

    /// A client's and a server's encoders (their tables), as a real pair
    /// keeps them.
    struct Peers {
        client: loona_hpack::Encoder<'static>,
        server: loona_hpack::Encoder<'static>,
    }

    impl Peers {
        fn new() -> Peers {
            Peers {
                client: loona_hpack::Encoder::new(),
                server: loona_hpack::Encoder::new(),
            }
        }

        fn request(&mut self, stream: u32, method: &str, path: &str, grpc: bool) -> Vec<u8> {
            let mut headers: Vec<(&[u8], &[u8])> = vec![
                (b":method", method.as_bytes()),
                (b":scheme", b"http"),
                (b":path", path.as_bytes()),
                (b":authority", b"127.0.0.1"),
            ];
            if grpc {
                headers.push((b"content-type", b"application/grpc"));
            }
            let block = self.client.encode(headers);
            frame(HEADERS, END_HEADERS | u8::from(!grpc), stream, &block)
        }

        fn response(&mut self, stream: u32, status: &str, body: &[u8]) -> Vec<u8> {
            let block = self.server.encode([(&b":status"[..], status.as_bytes())]);
            let mut bytes = frame(HEADERS, END_HEADERS, stream, &block);
            bytes.extend(frame(DATA, END_STREAM, stream, body));
            bytes
        }
    }

    fn preface_and_settings() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        bytes
    }

    #[test]
    fn times_a_served_stream_from_its_request_to_its_end() {
        let mut peers = Peers::new();
        let mut conn = Connection::new(Role::Server);
        let mut done = Vec::new();
        let mut request = preface_and_settings();
        request.extend(peers.request(1, "GET", "/users/7?x=1", false));
        feed_all(&mut conn, true, 100, &request, &mut done);
        feed_all(
            &mut conn,
            false,
            150,
            &frame(SETTINGS, 1, 0, &[]),
            &mut done,
        );
        let response = peers.response(1, "404", b"nope");
        feed_all(&mut conn, false, 300, &response, &mut done);
        assert_eq!(
            done,
            [Done {
                stream: Stream {
                    start_ns: 100,
                    method: "GET",
                    path: "/users/7".into(),
                    status: 404,
                    grpc_status: None,
                    request_bytes: 0,
                    response_bytes: 4,
                },
                end_ns: 300,
            }]
        );
    }

    #[test]
    fn frames_cut_anywhere_and_tables_kept_across_streams() {
        let mut peers = Peers::new();
        let mut conn = Connection::new(Role::Server);
        let mut done = Vec::new();
        let mut reads = preface_and_settings();
        let mut writes = Vec::new();
        // The same headers again: indexed from the dynamic table.
        for stream in [1, 3, 5] {
            reads.extend(peers.request(stream, "POST", "/orders", false));
            reads.extend(frame(DATA, END_STREAM, stream, b"{}"));
            writes.extend(peers.response(stream, "201", b"created"));
        }
        for byte in reads {
            feed(&mut conn, true, 1, 1, &[byte], &mut done);
        }
        for pair in writes.chunks(2) {
            feed(&mut conn, false, 2, pair.len() as u64, pair, &mut done);
        }
        assert_eq!(done.len(), 3);
        for Done { stream, .. } in &done {
            assert_eq!(stream.method, "POST");
            assert_eq!(stream.path, "/orders");
            assert_eq!(stream.status, 201);
            assert_eq!((stream.request_bytes, stream.response_bytes), (2, 7));
        }
    }

    #[test]
    fn a_gap_in_a_body_is_stepped_over_one_over_a_frame_header_loses_the_connection() {
        let mut peers = Peers::new();
        let mut conn = Connection::new(Role::Server);
        let mut done = Vec::new();
        let mut request = preface_and_settings();
        request.extend(peers.request(1, "GET", "/big", false));
        feed_all(&mut conn, true, 1, &request, &mut done);
        let mut response = peers.response(1, "200", &[b'x'; 5000]);
        // Copied: the HEADERS and DATA's frame header and 10 bytes.
        let copied = response.len() - 4990;
        feed(
            &mut conn,
            false,
            2,
            response.len() as u64,
            &response[..copied],
            &mut done,
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].stream.response_bytes, 5000);
        assert!(!conn.is_lost());

        request = peers.request(3, "GET", "/next", false);
        feed_all(&mut conn, true, 3, &request, &mut done);
        response = peers.response(3, "200", b"ok");
        response.extend(peers.response(5, "200", b"ok"));
        // The gap covers a frame header: the framing is lost.
        feed(
            &mut conn,
            false,
            4,
            response.len() as u64,
            &response[..5],
            &mut done,
        );
        assert!(conn.is_lost());
        assert_eq!(done.len(), 1);
    }

    #[test]
    fn grpc_calls_take_their_status_from_the_trailers() {
        let mut peers = Peers::new();
        let mut conn = Connection::new(Role::Client);
        let mut done = Vec::new();
        let mut request = preface_and_settings();
        request.extend(peers.request(1, "POST", "/shop.Cart/Add", true));
        request.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 1, 7]));
        // A client writes its requests and reads the responses.
        feed_all(&mut conn, false, 10, &request, &mut done);
        let headers = peers.server.encode([
            (&b":status"[..], &b"200"[..]),
            (b"content-type", b"application/grpc"),
        ]);
        let trailers = peers.server.encode([(&b"grpc-status"[..], &b"5"[..])]);
        let mut response = frame(HEADERS, END_HEADERS, 1, &headers);
        response.extend(frame(DATA, 0, 1, &[0, 0, 0, 0, 0]));
        response.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers));
        feed_all(&mut conn, true, 40, &response, &mut done);
        assert_eq!(done.len(), 1);
        let call = &done[0].stream;
        assert_eq!(call.path, "/shop.Cart/Add");
        assert_eq!(call.grpc_status, Some(5));
        assert_eq!((call.start_ns, done[0].end_ns), (10, 40));
        assert_eq!((call.request_bytes, call.response_bytes), (6, 5));
    }

    #[test]
    fn padding_priority_continuation_and_resets() {
        let mut peers = Peers::new();
        let mut conn = Connection::new(Role::Server);
        let mut done = Vec::new();
        let block = peers
            .client
            .encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/padded")]);
        let (first, rest) = block.split_at(3);
        // PADDED | PRIORITY: pad length, 5 bytes of priority, the fragment,
        // the padding; the rest of the block in a CONTINUATION.
        let mut payload = vec![2, 0, 0, 0, 0, 16];
        payload.extend_from_slice(first);
        payload.extend_from_slice(&[0, 0]);
        let mut request = preface_and_settings();
        request.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 1, &payload));
        request.extend(frame(CONTINUATION, END_HEADERS, 1, rest));
        request.extend(peers.request(3, "GET", "/reset", false));
        request.extend(frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]));
        feed_all(&mut conn, true, 1, &request, &mut done);
        let mut response = peers.response(1, "200", b"");
        response.extend(peers.response(3, "200", b""));
        feed_all(&mut conn, false, 2, &response, &mut done);
        assert!(!conn.is_lost());
        let paths: Vec<&str> = done.iter().map(|d| d.stream.path.as_str()).collect();
        assert_eq!(paths, ["/padded"], "the reset stream is not counted");
    }

    /// As the program sends a read of many streams: frame headers and
    /// header blocks as pieces, DATA payloads left out.
    #[test]
    fn pieces_around_bodies_left_out() {
        let mut peers = Peers::new();
        let mut conn = Connection::new(Role::Server);
        let mut done = Vec::new();
        feed(&mut conn, true, 1, 24, PREFACE, &mut done);
        let (mut request, mut response, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for stream in [1, 3, 5] {
            let headers = peers.request(stream, "POST", "/up", true);
            kept.push((request.len(), headers.len() + 9));
            request.extend(headers);
            request.extend(frame(DATA, END_STREAM, stream, &[7; 3000]));
            response.extend(peers.response(stream, "200", b""));
        }
        let list: Vec<(u32, &[u8])> = kept
            .iter()
            .map(|&(at, len)| (at as u32, &request[at..at + len]))
            .collect();
        let encoded = pieces(&list);
        let len = request.len() as u64;
        conn.bytes(
            true,
            2,
            Chunk {
                len,
                pieces: &encoded,
                lost: false,
            },
            &mut done,
        );
        feed_all(&mut conn, false, 3, &response, &mut done);
        assert!(!conn.is_lost());
        assert_eq!(done.len(), 3);
        assert!(done
            .iter()
            .all(|d| d.stream.request_bytes == 3000 && d.stream.path == "/up"));

        // A SETTINGS frame in pieces: whole, out of order, past the bytes
        // moved, cut short; whole in a chunk the program could not follow.
        let settings = frame(SETTINGS, 0, 0, &[]);
        let whole = pieces(&[(0, &settings)]);
        let out_of_order = pieces(&[(0, &settings[..5]), (2, &settings[5..])]);
        for (len, encoded, lost, given_up) in [
            (9, &whole[..], false, false),
            (9, &out_of_order[..], false, true),
            (5, &whole[..], false, true),
            (9, &whole[..8], false, true),
            (9, &whole[..], true, true),
        ] {
            let mut conn = Connection::new(Role::Server);
            feed(&mut conn, true, 1, 24, PREFACE, &mut done);
            conn.bytes(
                true,
                2,
                Chunk {
                    len,
                    pieces: encoded,
                    lost,
                },
                &mut done,
            );
            assert_eq!(
                conn.is_lost(),
                given_up,
                "{encoded:?} of {len}, lost: {lost}"
            );
        }
    }

    #[test]
    fn bad_bytes_lose_the_connection_without_panicking() {
        for bytes in [
            b"PRI * HTTP/1.1\r\n".to_vec(),
            [
                PREFACE,
                &frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff]),
            ]
            .concat(),
            [PREFACE, &frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 1])].concat(),
            [PREFACE, &frame(CONTINUATION, END_HEADERS, 7, &[0x82])].concat(),
        ] {
            let mut conn = Connection::new(Role::Server);
            let mut done = Vec::new();
            feed_all(&mut conn, true, 1, &bytes, &mut done);
            assert!(conn.is_lost(), "{bytes:?}");
            assert!(done.is_empty());
        }
    }

    /// Random bytes after a valid preface, in random cuts and gaps: never a
    /// panic, whatever they frame.
    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let role = if next() % 2 == 0 {
                Role::Server
            } else {
                Role::Client
            };
            let mut conn = Connection::new(role);
            let mut done = Vec::new();
            feed(&mut conn, role == Role::Server, 0, 24, PREFACE, &mut done);
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
                let gap = if next() % 4 == 0 { next() % 100 } else { 0 };
                let len = bytes.len() as u64 + gap;
                feed(&mut conn, next() % 2 == 0, next(), len, &bytes, &mut done);
            }
        }
    }
}
