//! HPACK (RFC 7541), HTTP/2's header compression, decoding only: what
//! [`super::h2`] needs to read a stream's method, path and status. One
//! [`Decoder`] per direction of a connection keeps that direction's
//! dynamic table; a malformed block is an error (the caller gives the
//! connection up), never a panic.
//!
//! Huffman-coded strings are decoded against the canonical code RFC 7541
//! defines: its codes follow from their lengths alone ([`CODE_LENGTHS`]),
//! so no code table is kept, and no table is built per string.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// A header block that cannot be decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct BadBlock;

/// RFC 7541, Appendix A: the static table (index 1 to 61).
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541, Appendix B: the length in bits of each symbol's code (0 to
/// 255, then EOS, 256).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];
const EOS: u16 = 256;
const LONGEST_CODE: usize = 30;

/// The canonical code's decoding tables: how many codes of each length,
/// and the symbols by (length, symbol).
struct Canonical {
    counts: [u32; LONGEST_CODE + 1],
    symbols: Vec<u16>,
}

fn canonical() -> &'static Canonical {
    static CODE: OnceLock<Canonical> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut counts = [0; LONGEST_CODE + 1];
        for &len in &CODE_LENGTHS {
            counts[usize::from(len)] += 1;
        }
        let mut symbols: Vec<u16> = (0..=EOS).collect();
        symbols.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        Canonical { counts, symbols }
    })
}

/// Decodes a Huffman-coded string (RFC 7541, 5.2) into `out`: a code is
/// found bit by bit, as the lengths in order give the codes' ranges. The
/// padding must be the start of EOS (all ones), shorter than a byte.
fn huffman(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), BadBlock> {
    let code = canonical();
    let (mut value, mut first, mut index, mut len) = (0u32, 0u32, 0usize, 0usize);
    for byte in bytes {
        for shift in (0..8).rev() {
            value |= u32::from(byte >> shift & 1);
            len += 1;
            let count = code.counts[len];
            if value < first + count {
                let symbol = code.symbols[index + (value - first) as usize];
                if symbol == EOS {
                    return Err(BadBlock);
                }
                out.push(symbol as u8);
                (value, first, index, len) = (0, 0, 0, 0);
                continue;
            }
            if len == LONGEST_CODE {
                return Err(BadBlock);
            }
            index += count as usize;
            first = (first + count) << 1;
            value <<= 1;
        }
    }
    // `value` was shifted once past the last bit read.
    let padding = value >> 1;
    if len >= 8 || padding != (1 << len) - 1 {
        return Err(BadBlock);
    }
    Ok(())
}

/// One direction's decoder and its dynamic table.
pub struct Decoder {
    /// Newest first: index 62 is its front.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// The table's size as RFC 7541 counts it (each entry 32 more than its
    /// name and value).
    size: usize,
    max_size: usize,
    /// The largest table a size update may ask for.
    allowed: usize,
}

/// Where a block is read.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, BadBlock> {
        let byte = *self.bytes.get(self.at).ok_or(BadBlock)?;
        self.at += 1;
        Ok(byte)
    }

    /// An integer with a `prefix`-bit prefix in the current byte (5.1).
    fn integer(&mut self, prefix: u32) -> Result<usize, BadBlock> {
        let mask = (1u32 << prefix) - 1;
        let mut value = u32::from(self.byte()?) & mask;
        if value < mask {
            return Ok(value as usize);
        }
        for shift in (0..28).step_by(7) {
            let byte = self.byte()?;
            value += u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value as usize);
            }
        }
        Err(BadBlock)
    }

    /// A string literal (5.2), into `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), BadBlock> {
        let huffman_coded = self.bytes.get(self.at).ok_or(BadBlock)? & 0x80 != 0;
        let len = self.integer(7)?;
        let bytes = self.bytes.get(self.at..self.at + len).ok_or(BadBlock)?;
        self.at += len;
        out.clear();
        if huffman_coded {
            huffman(bytes, out)
        } else {
            out.extend_from_slice(bytes);
            Ok(())
        }
    }
}

impl Decoder {
    /// A decoder with HTTP/2's initial table size (4,096 bytes) whose table
    /// may grow to `allowed` bytes.
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: 4096.min(allowed),
            allowed,
        }
    }

    /// Decodes one whole header block (HEADERS and its CONTINUATIONs),
    /// giving each field to `field` as (name, value).
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), BadBlock> {
        let mut reader = Reader {
            bytes: block,
            at: 0,
        };
        let (mut name, mut value) = (Vec::new(), Vec::new());
        while let Some(&first) = block.get(reader.at) {
            if first & 0x80 != 0 {
                let (name, value) = self.entry(reader.integer(7)?)?;
                field(name, value);
                continue;
            }
            if first & 0xe0 == 0x20 {
                let size = reader.integer(5)?;
                if size > self.allowed {
                    return Err(BadBlock);
                }
                self.max_size = size;
                self.evict(0);
                continue;
            }
            let indexed = first & 0xc0 == 0x40;
            let name_index = reader.integer(if indexed { 6 } else { 4 })?;
            if name_index == 0 {
                reader.string(&mut name)?;
            } else {
                name.clear();
                name.extend_from_slice(self.entry(name_index)?.0);
            }
            reader.string(&mut value)?;
            field(&name, &value);
            if indexed {
                self.insert(&name, &value);
            }
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), BadBlock> {
        if let Some((name, value)) = index.checked_sub(1).and_then(|i| STATIC.get(i)) {
            return Ok((name.as_bytes(), value.as_bytes()));
        }
        let (name, value) = self
            .table
            .get(index.checked_sub(STATIC.len() + 1).ok_or(BadBlock)?)
            .ok_or(BadBlock)?;
        Ok((name, value))
    }

    /// Adds an entry (4.4): older ones evicted to make room; one larger
    /// than the table empties it and is not kept.
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + 32;
        self.evict(size);
        if size <= self.max_size {
            self.table.push_front((name.to_vec(), value.to_vec()));
            self.size += size;
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some((name, value)) = self.table.pop_back() else {
                break;
            };
            self.size -= name.len() + value.len() + 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, BadBlock> {
        let mut out = Vec::new();
        decoder.decode(block, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(out)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// RFC 7541, C.4: three requests, Huffman-coded, one table.
    #[test]
    fn decodes_the_rfc_requests_with_huffman_coding() {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            fields(&mut decoder, &hex("828684418cf1e3c2e5f23a6ba0ab90f4ff")),
            Ok(pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]))
        );
        assert_eq!(
            fields(&mut decoder, &hex("828684be5886a8eb10649cbf")),
            Ok(pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]))
        );
        assert_eq!(
            fields(
                &mut decoder,
                &hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")
            ),
            Ok(pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]))
        );
        assert_eq!(decoder.size, 164, "the table's size after C.4.3");
    }

    /// Every symbol, Huffman-coded by the canonical code and decoded back.
    #[test]
    fn every_symbol_round_trips() {
        let symbols: Vec<u8> = (0..=255).collect();
        let mut order: Vec<u16> = (0..=EOS).collect();
        order.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        let mut codes = [0u32; 257];
        let (mut code, mut len) = (0u32, CODE_LENGTHS[usize::from(order[0])]);
        for (i, &s) in order.iter().enumerate() {
            let l = CODE_LENGTHS[usize::from(s)];
            if i > 0 {
                code = (code + 1) << (l - len);
            }
            len = l;
            codes[usize::from(s)] = code;
        }
        let (mut bits, mut acc, mut bytes) = (0u32, 0u64, Vec::new());
        for &s in &symbols {
            acc = acc << CODE_LENGTHS[usize::from(s)] | u64::from(codes[usize::from(s)]);
            bits += u32::from(CODE_LENGTHS[usize::from(s)]);
            while bits >= 8 {
                bytes.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            bytes.push(((acc << (8 - bits)) as u8) | ((1u8 << (8 - bits)) - 1));
        }
        let mut out = Vec::new();
        huffman(&bytes, &mut out).unwrap();
        assert_eq!(out, symbols);
    }

    #[test]
    fn evicts_oldest_entries_and_follows_size_updates() {
        let mut decoder = Decoder::new(8192);
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([(&b"x-one"[..], &[b'a'; 3000][..])]);
        fields(&mut decoder, &block).unwrap();
        let block = encoder.encode([(&b"x-two"[..], &[b'b'; 3000][..])]);
        fields(&mut decoder, &block).unwrap();
        assert_eq!(decoder.table.len(), 1, "the first entry evicted");
        // A size update to 0 empties the table; beyond `allowed` is refused.
        assert_eq!(fields(&mut decoder, &[0x20]), Ok(vec![]));
        assert!(decoder.table.is_empty());
        assert_eq!(fields(&mut decoder, &hex("3fe17f")), Err(BadBlock));
    }

    #[test]
    fn bad_blocks_are_errors_not_panics() {
        for block in [
            &hex("80")[..],           // index 0
            &hex("be")[..],           // index 62 in an empty table
            &hex("418cf1e3")[..],     // a string past the block's end
            &hex("4184ffffffff")[..], // EOS inside a string
            &hex("418106")[..],       // '0', then padding with a zero bit
            &hex("ff8080808080")[..], // an integer too long
            &hex("4082ffff81ff")[..], // padding of 8 bits or more
        ] {
            let mut decoder = Decoder::new(4096);
            assert_eq!(fields(&mut decoder, block), Err(BadBlock), "{block:02x?}");
        }
    }
}
