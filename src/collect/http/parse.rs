//! Reading the first bytes of an HTTP/1.x request or response as the http
//! collector copies them (at most `HTTP_HEAD - 1` bytes, maybe cut short):
//! method, path, status, where the header ends, and the route a path
//! belongs to. Any bytes are accepted; what cannot be read is `None`.

/// Methods that keep their name as a label; any other is `_OTHER`, as
/// OpenTelemetry's semantic conventions say.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// What the first bytes of a request say.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// A known method, or `_OTHER`.
    pub method: &'static str,
    /// The target without its query string (cut short with the copy).
    pub path: String,
    /// Bytes up to and including the blank line, when the copy holds it.
    pub header_len: Option<u64>,
    pub content_length: Option<u64>,
}

/// What the first bytes of a response say.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub header_len: Option<u64>,
    pub content_length: Option<u64>,
}

/// The request line and header of `head`; None when it is no request line.
/// Read as bytes, with `memchr`: this runs for every request.
pub fn request(head: &[u8]) -> Option<RequestHead> {
    let line = &head[..memchr::memchr2(b'\r', b'\n', head).unwrap_or(head.len())];
    let method_end = memchr::memchr(b' ', line)?;
    let (method, rest) = (&line[..method_end], &line[method_end + 1..]);
    let target = &rest[..memchr::memchr(b' ', rest).unwrap_or(rest.len())];
    if method.is_empty() || target.first() != Some(&b'/') {
        return None;
    }
    let (header_len, content_length) = header(head);
    Some(RequestHead {
        method: method_label(method),
        path: path(target)?,
        header_len,
        content_length,
    })
}

/// A method as its label says it: a known one, or `_OTHER`.
pub fn method_label(method: &[u8]) -> &'static str {
    METHODS
        .iter()
        .find(|known| known.as_bytes() == method)
        .copied()
        .unwrap_or("_OTHER")
}

/// A request target without its query string or fragment; None when it is
/// not UTF-8.
pub fn path(target: &[u8]) -> Option<String> {
    let path = &target[..memchr::memchr2(b'?', b'#', target).unwrap_or(target.len())];
    Some(std::str::from_utf8(path).ok()?.to_string())
}

/// The requests of `head` one after the other (pipelined ones follow the
/// first's header and body), as far as the copy shows them; at most
/// [`MAX_REQUESTS`].
pub fn requests(head: &[u8]) -> Vec<RequestHead> {
    let mut found = Vec::new();
    let mut at = 0;
    while found.len() < MAX_REQUESTS {
        let Some(request) = head.get(at..).and_then(request) else {
            break;
        };
        let next = request
            .header_len
            .map(|len| len + request.content_length.unwrap_or(0));
        found.push(request);
        match next {
            Some(len) => at += len as usize,
            None => break,
        }
    }
    found
}

/// Most pipelined requests read from one copy.
pub const MAX_REQUESTS: usize = 64;

/// The status line and header of `head`; None when it is no HTTP/1.x
/// status line.
pub fn response(head: &[u8]) -> Option<ResponseHead> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let digits = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let (header_len, content_length) = header(head);
    Some(ResponseHead {
        status,
        header_len,
        content_length,
    })
}

/// Of a message's first bytes: the bytes up to and including the first
/// blank line, if they hold it, and the Content-Length header's value, if
/// they hold it whole. No copy, lines found with `memchr`: this runs for
/// every request and response the collector sees.
fn header(head: &[u8]) -> (Option<u64>, Option<u64>) {
    static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    const NAME: &[u8] = b"content-length";
    let end = BLANK_LINE.find(head).map(|at| at + 4);
    let header = &head[..end.unwrap_or(head.len())];
    let content_length = memchr::memchr_iter(b'\n', header).find_map(|newline| {
        let line = &header[newline + 1..];
        if !line.get(..NAME.len())?.eq_ignore_ascii_case(NAME) {
            return None;
        }
        let value = line[NAME.len()..].trim_ascii_start().strip_prefix(b":")?;
        // A value the copy cut short is not taken: its digits may be fewer.
        let value = &value[..memchr::memchr(b'\n', value)?];
        std::str::from_utf8(value.trim_ascii()).ok()?.parse().ok()
    });
    (end.map(|end| end as u64), content_length)
}

/// Body bytes of a message of `total` bytes: all but its header when the
/// copy showed where the header ends, else its Content-Length, else 0.
pub fn body_bytes(total: u64, header_len: Option<u64>, content_length: Option<u64>) -> u64 {
    match header_len {
        Some(header) => total.saturating_sub(header),
        None => content_length.unwrap_or(0),
    }
}

/// The route of a path: segments that look like ids (numbers, UUIDs, hex,
/// long random tokens) become `*`, so `/users/123` and `/users/456` are one
/// route `/users/*`.
pub fn route(path: &str) -> String {
    if !path.split('/').skip(1).any(looks_like_id) {
        return path.to_string();
    }
    let segments: Vec<&str> = path
        .split('/')
        .skip(1)
        .map(|segment| if looks_like_id(segment) { "*" } else { segment })
        .collect();
    format!("/{}", segments.join("/"))
}

fn looks_like_id(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    let hex = bytes.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-');
    // Numbers; UUIDs and hashes (hex of 8 or more with a digit in it);
    // tokens (16 or more characters mixing letters and at least a few
    // digits, as random ids do and words do not).
    digits == bytes.len()
        || (hex && bytes.len() >= 8 && digits > 0)
        || (bytes.len() >= 16
            && digits >= 3
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request_line_and_its_header() {
        let head = b"GET /users/123?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let request = request(head).unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/users/123");
        assert_eq!(request.header_len, Some(head.len() as u64 - 5));
        assert_eq!(request.content_length, Some(5));
        assert_eq!(request.method, "GET");
        assert_eq!(
            self::request(b"BREW /pot HTTP/1.1\r\n").unwrap().method,
            "_OTHER"
        );
        assert_eq!(self::request(b"\x16\x03\x01 binary"), None);
        assert_eq!(self::request(b""), None);
        // Cut short: no header end, the path as far as it goes.
        let cut = self::request(b"POST /upload HTTP/1.1\r\nHost").unwrap();
        assert_eq!((cut.header_len, cut.content_length), (None, None));
    }

    #[test]
    fn reads_pipelined_requests() {
        let heads =
            b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HT";
        let paths: Vec<String> = requests(heads).into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
        assert!(requests(b"").is_empty());
        // A Content-Length past the end stops the walk.
        let huge = b"POST /a HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n";
        assert_eq!(requests(huge).len(), 1);
    }

    #[test]
    fn reads_a_status_line() {
        let head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!";
        let response = response(head).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.header_len, Some(head.len() as u64 - 3));
        assert_eq!(response.content_length, Some(3));
        assert_eq!(self::response(b"HTTP/1.0 2"), None);
        assert_eq!(self::response(b"HTTP/2 200"), None);
        assert_eq!(self::response(b"HTTP/1.1 2x0 OK"), None);
    }

    #[test]
    fn finds_content_length_whatever_its_case_and_only_whole() {
        let length = |head: &[u8]| header(head).1;
        assert_eq!(
            length(b"HTTP/1.1 200 OK\r\ncontent-LENGTH:  42 \r\n\r\n"),
            Some(42)
        );
        assert_eq!(
            length(b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 7\r\n"),
            Some(7)
        );
        // Cut after its digits began: they may be fewer than sent.
        assert_eq!(length(b"HTTP/1.1 200 OK\r\nContent-Length: 12"), None);
        assert_eq!(
            length(b"HTTP/1.1 200 OK\r\nContent-Length-X: 5\r\n\r\n"),
            None
        );
        assert_eq!(
            length(b"HTTP/1.1 200 OK\r\nX-Content-Length: 5\r\n\r\n"),
            None
        );
        // Only the header's: a body that says so does not count.
        assert_eq!(
            length(b"POST / HTTP/1.1\r\n\r\nContent-Length: 9\r\n"),
            None
        );
        // Not on the first line.
        assert_eq!(length(b"Content-Length: 3\r\n\r\n"), None);
    }

    #[test]
    fn body_is_total_less_header() {
        assert_eq!(body_bytes(100, Some(40), Some(7)), 60);
        assert_eq!(body_bytes(100, None, Some(7)), 7);
        assert_eq!(body_bytes(10, Some(40), None), 0);
        assert_eq!(body_bytes(10, None, None), 0);
    }

    #[test]
    fn ids_become_stars() {
        assert_eq!(route("/users/123"), "/users/*");
        assert_eq!(route("/users/456/posts"), "/users/*/posts");
        assert_eq!(route("/o/550e8400-e29b-41d4-a716-446655440000"), "/o/*");
        assert_eq!(route("/c/deadbeef42"), "/c/*");
        assert_eq!(route("/t/aZ3kL9pQ2xV7mN4bR8"), "/t/*");
        assert_eq!(route("/static/index.html"), "/static/index.html");
        assert_eq!(route("/api/v2/accounts"), "/api/v2/accounts");
        assert_eq!(route("/cafe/decade"), "/cafe/decade");
        assert_eq!(route("/"), "/");
        assert_eq!(route("/a//b/"), "/a//b/");
    }
}
