//! The XOR chunk: Gorilla-style compression of one series' samples, byte for
//! byte the format of Prometheus's `chunkenc` XOR encoding, so chunks can be
//! served to Prometheus (remote-read STREAMED_XOR_CHUNKS) as they are stored.
//!
//! Layout of a chunk:
//!
//! ```text
//! ┌──────────────────┬───────────────────────────────────────────────────┐
//! │ count: u16 (BE)  │ bit stream, most significant bit first            │
//! └──────────────────┴───────────────────────────────────────────────────┘
//! sample 0: timestamp as signed varint, value as 64 raw bits
//! sample 1: timestamp delta as unsigned varint, value XOR-encoded
//! sample n: delta-of-delta of the timestamp, value XOR-encoded
//!
//! delta-of-delta d:  d == 0                '0'
//!                    d in [-8191, 8192]    '10'   + 14 bits
//!                    d in [-65535, 65536]  '110'  + 17 bits
//!                    d in [-524287,524288] '1110' + 20 bits
//!                    otherwise             '1111' + 64 bits
//! value x = bits(v) ^ bits(previous v):
//!                    x == 0                '0'
//!                    fits the previous window (leading zeros >= previous,
//!                    trailing zeros >= previous)
//!                                          '10' + the window's bits
//!                    otherwise             '11' + leading zeros (5 bits, at
//!                                          most 31) + significant bit count
//!                                          (6 bits, 64 written as 0) + bits
//! ```
//!
//! Invariants:
//! - The count in the header always equals the samples in the stream; it is
//!   rewritten on every append, so the bytes are a valid chunk at any moment
//!   (the head persists them as they are).
//! - Unused low bits of the last byte are zero, as Prometheus leaves them, so
//!   equal sample sequences give equal bytes.
//! - An appender never sees a timestamp at or before its last one: the head
//!   enforces the out-of-order rule before calling [`XorAppender::append`].
//!   (The format itself could carry a negative delta; nothing else may rely
//!   on that.)
//! - [`XorAppender::resume`] rebuilds exactly the state an appender had after
//!   writing a chunk's samples, so appending after a restart produces the same
//!   bytes as if sonde had never stopped.

use std::fmt;

/// Samples after which the head closes a chunk, as Prometheus does: a chunk
/// of ~120 samples amortizes its first, uncompressed sample well, and stays
/// small enough that a read seldom decodes much outside its range.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// A chunk that cannot be decoded: truncated or not XOR-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptChunk(pub(crate) &'static str);

impl fmt::Display for CorruptChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt XOR chunk: {}", self.0)
    }
}

impl std::error::Error for CorruptChunk {}

/// Writes bits most significant first at the end of a byte vector: a view
/// of an appender's bytes and free bits, which the appender keeps among
/// its own fields (a struct of their own would pad the one-byte count of
/// free bits to eight, in every series of the head).
struct BitWriter<'a> {
    bytes: &'a mut Vec<u8>,
    /// Bits still free in the last byte (0 means start a new byte).
    free: &'a mut u8,
}

impl BitWriter<'_> {
    /// Starts the next byte. The bytes grow by an eighth (16 bytes at
    /// least), not by doubling: a head series' open chunk is held for up to
    /// 20 minutes while it fills, and doubling would leave it a quarter
    /// unused on average, in every series. A growth costs a reallocation
    /// every 16 bytes or so of a small chunk (a chunk of 120 samples is
    /// rarely above 300 bytes), still linear in a large one.
    fn start_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact((self.bytes.len() / 8).max(16));
        }
        self.bytes.push(0);
        *self.free = 8;
    }

    fn write_bit(&mut self, bit: bool) {
        if *self.free == 0 {
            self.start_byte();
        }
        *self.free -= 1;
        if bit {
            *self.bytes.last_mut().expect("pushed above") |= 1 << *self.free;
        }
    }

    /// Writes the low `count` bits of `value`.
    fn write_bits(&mut self, value: u64, mut count: u8) {
        while count > 0 {
            if *self.free == 0 {
                self.start_byte();
            }
            let take = count.min(*self.free);
            let chunk = (value >> (count - take)) & ((1u64 << take) - 1);
            *self.bytes.last_mut().expect("pushed above") |= (chunk as u8) << (*self.free - take);
            *self.free -= take;
            count -= take;
        }
    }

    fn write_uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.write_bits((value as u8 | 0x80) as u64, 8);
            value >>= 7;
        }
        self.write_bits(value, 8);
    }

    fn write_varint(&mut self, value: i64) {
        self.write_uvarint(((value << 1) ^ (value >> 63)) as u64);
    }
}

/// Reads bits most significant first.
#[derive(Clone, Debug)]
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn read_bit(&mut self) -> Result<bool, CorruptChunk> {
        let byte = *self
            .bytes
            .get(self.pos / 8)
            .ok_or(CorruptChunk("truncated"))?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Ok(bit)
    }

    fn read_bits(&mut self, count: u8) -> Result<u64, CorruptChunk> {
        if self.pos + count as usize > self.bytes.len() * 8 {
            return Err(CorruptChunk("truncated"));
        }
        let mut value = 0u64;
        let mut left = count;
        while left > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u8;
            let avail = 8 - offset;
            let take = left.min(avail);
            let bits = (byte >> (avail - take)) & ((1u16 << take) - 1) as u8;
            value = (value << take) | bits as u64;
            self.pos += take as usize;
            left -= take;
        }
        Ok(value)
    }

    fn read_uvarint(&mut self) -> Result<u64, CorruptChunk> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.read_bits(8)?;
            value |= (byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(CorruptChunk("varint overflows 64 bits"))
    }

    fn read_varint(&mut self) -> Result<i64, CorruptChunk> {
        let raw = self.read_uvarint()?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }
}

/// Whether `value` fits a `bits`-wide delta-of-delta bucket. The range is
/// the one Prometheus checks: one more on the positive side than on the
/// negative side.
fn fits(value: i64, bits: u8) -> bool {
    let half = 1i64 << (bits - 1);
    -half < value && value <= half
}

/// The value-compression state shared by encoder and decoder.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ValueWindow {
    /// Leading zero bits of the current window; 0xff before the first XOR.
    leading: u8,
    trailing: u8,
}

const NO_WINDOW: ValueWindow = ValueWindow {
    leading: 0xff,
    trailing: 0,
};

/// Builds one XOR chunk sample by sample.
#[derive(Clone, Debug)]
pub struct XorAppender {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 means start a new byte).
    free: u8,
    count: u16,
    t: i64,
    t_delta: u64,
    v: f64,
    window: ValueWindow,
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl XorAppender {
    /// An empty chunk.
    pub fn new() -> XorAppender {
        XorAppender {
            bytes: vec![0, 0],
            free: 0,
            count: 0,
            t: 0,
            t_delta: 0,
            v: 0.0,
            window: NO_WINDOW,
        }
    }

    /// Continues a chunk written earlier: decodes it to recover the state.
    pub fn resume(chunk: &[u8]) -> Result<XorAppender, CorruptChunk> {
        let mut iter = XorIter::new(chunk)?;
        while iter.next_sample()?.is_some() {}
        // Everything after the last sample must be the zero padding of one
        // byte: anything longer is not a chunk this encoder wrote.
        let used_bits = iter.reader.pos;
        if 2 + used_bits.div_ceil(8) != chunk.len() {
            return Err(CorruptChunk("bytes after the last sample"));
        }
        let free = ((8 - used_bits % 8) % 8) as u8;
        Ok(XorAppender {
            bytes: chunk.to_vec(),
            free,
            count: iter.total,
            t: iter.t,
            t_delta: iter.t_delta,
            v: iter.v,
            window: iter.window,
        })
    }

    /// Samples in the chunk.
    pub fn len(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Timestamp of the last sample (meaningless while empty).
    pub fn last_timestamp(&self) -> i64 {
        self.t
    }

    /// Value of the last sample (meaningless while empty).
    pub fn last_value(&self) -> f64 {
        self.v
    }

    /// The chunk as it stands: a complete, decodable chunk.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn stream(&mut self) -> BitWriter<'_> {
        BitWriter {
            bytes: &mut self.bytes,
            free: &mut self.free,
        }
    }

    /// Appends a sample. The caller guarantees `t` is after the last
    /// timestamp (see the module invariants) and that the chunk is not full
    /// (65535 samples at most, though the head closes it at
    /// [`SAMPLES_PER_CHUNK`]).
    pub fn append(&mut self, t: i64, v: f64) {
        debug_assert!(self.count < u16::MAX);
        match self.count {
            0 => {
                self.stream().write_varint(t);
                self.stream().write_bits(v.to_bits(), 64);
            }
            1 => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                self.stream().write_uvarint(t_delta);
                self.write_value(v);
                self.t_delta = t_delta;
            }
            _ => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.stream().write_bit(false);
                } else if fits(dod, 14) {
                    self.stream().write_bits(0b10, 2);
                    self.stream().write_bits(dod as u64, 14);
                } else if fits(dod, 17) {
                    self.stream().write_bits(0b110, 3);
                    self.stream().write_bits(dod as u64, 17);
                } else if fits(dod, 20) {
                    self.stream().write_bits(0b1110, 4);
                    self.stream().write_bits(dod as u64, 20);
                } else {
                    self.stream().write_bits(0b1111, 4);
                    self.stream().write_bits(dod as u64, 64);
                }
                self.write_value(v);
                self.t_delta = t_delta;
            }
        }
        self.t = t;
        self.v = v;
        self.count += 1;
        self.bytes[..2].copy_from_slice(&self.count.to_be_bytes());
    }

    fn write_value(&mut self, v: f64) {
        let xor = v.to_bits() ^ self.v.to_bits();
        if xor == 0 {
            self.stream().write_bit(false);
            return;
        }
        self.stream().write_bit(true);
        // 5 bits hold the leading-zero count, so it is capped at 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        let w = self.window;
        if w.leading != 0xff && leading >= w.leading && trailing >= w.trailing {
            self.stream().write_bit(false);
            let significant = 64 - w.leading - w.trailing;
            self.stream().write_bits(xor >> w.trailing, significant);
        } else {
            self.stream().write_bit(true);
            let significant = 64 - leading - trailing;
            self.stream().write_bits(leading as u64, 5);
            // 64 significant bits are written as 0: 6 bits hold 0..=63.
            self.stream().write_bits(significant as u64 & 0x3f, 6);
            self.stream().write_bits(xor >> trailing, significant);
            self.window = ValueWindow { leading, trailing };
        }
    }
}

/// Decodes a chunk sample by sample.
#[derive(Clone, Debug)]
pub struct XorIter<'a> {
    reader: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    t_delta: u64,
    v: f64,
    window: ValueWindow,
}

impl<'a> XorIter<'a> {
    pub fn new(chunk: &'a [u8]) -> Result<XorIter<'a>, CorruptChunk> {
        if chunk.len() < 2 {
            return Err(CorruptChunk("shorter than its header"));
        }
        Ok(XorIter {
            reader: BitReader {
                bytes: &chunk[2..],
                pos: 0,
            },
            total: u16::from_be_bytes([chunk[0], chunk[1]]),
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0.0,
            window: NO_WINDOW,
        })
    }

    /// Samples the header announces.
    pub fn len(&self) -> u16 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The next sample, `None` after the last one.
    pub fn next_sample(&mut self) -> Result<Option<(i64, f64)>, CorruptChunk> {
        if self.read == self.total {
            return Ok(None);
        }
        match self.read {
            0 => {
                self.t = self.reader.read_varint()?;
                self.v = f64::from_bits(self.reader.read_bits(64)?);
            }
            1 => {
                self.t_delta = self.reader.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let mut prefix = 0;
                while prefix < 4 && self.reader.read_bit()? {
                    prefix += 1;
                }
                let dod = match prefix {
                    0 => 0,
                    1 => signed(self.reader.read_bits(14)?, 14),
                    2 => signed(self.reader.read_bits(17)?, 17),
                    3 => signed(self.reader.read_bits(20)?, 20),
                    _ => self.reader.read_bits(64)? as i64,
                };
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Ok(Some((self.t, self.v)))
    }

    fn read_value(&mut self) -> Result<(), CorruptChunk> {
        if !self.reader.read_bit()? {
            return Ok(());
        }
        if self.reader.read_bit()? {
            let leading = self.reader.read_bits(5)? as u8;
            let significant = match self.reader.read_bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            if leading + significant > 64 {
                return Err(CorruptChunk("value window wider than 64 bits"));
            }
            self.window = ValueWindow {
                leading,
                trailing: 64 - leading - significant,
            };
        } else if self.window.leading == 0xff {
            return Err(CorruptChunk("value reuses a window before any was set"));
        }
        let w = self.window;
        let bits = self.reader.read_bits(64 - w.leading - w.trailing)?;
        self.v = f64::from_bits(self.v.to_bits() ^ (bits << w.trailing));
        Ok(())
    }
}

/// Sign-extends the low `bits` of `raw` the way the encoder's range allows:
/// values above half the range are negative.
fn signed(raw: u64, bits: u8) -> i64 {
    if raw > 1 << (bits - 1) {
        raw as i64 - (1 << bits)
    } else {
        raw as i64
    }
}

impl Iterator for XorIter<'_> {
    type Item = Result<(i64, f64), CorruptChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_sample().transpose()
    }
}

/// Every sample of a chunk.
pub fn decode(chunk: &[u8]) -> Result<Vec<(i64, f64)>, CorruptChunk> {
    XorIter::new(chunk)?.collect()
}

/// A chunk holding `samples` (timestamps strictly increasing, at most 65535).
pub fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut appender = XorAppender::new();
    for &(t, v) in samples {
        appender.append(t, v);
    }
    appender.bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rng::Rng;

    fn same(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
    }

    /// Random series of every shape the codec distinguishes: constant,
    /// counters, noisy gauges, special floats, jittered and irregular
    /// timestamps reaching every delta-of-delta bucket.
    fn random_series(rng: &mut Rng) -> Vec<(i64, f64)> {
        let n = rng.below(200) as usize;
        let mut t = rng.below(1 << 41) as i64 - (1 << 40);
        let step = [1, 1000, 10_000, 15_000, 60_000][rng.below(5) as usize];
        let mut v = rng.f64() * 1000.0;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push((t, v));
            let jitter = match rng.below(6) {
                0 => 0,
                1 => rng.below(5) as i64,
                2 => rng.below(20_000) as i64,
                3 => rng.below(140_000) as i64,
                4 => rng.below(1_100_000) as i64,
                _ => rng.below(1 << 40) as i64,
            };
            t += step + jitter;
            v = match rng.below(8) {
                0 => v,
                1 => v + 1.0,
                2 => v + rng.f64(),
                3 => f64::from_bits(rng.next()),
                4 => [f64::NAN, f64::INFINITY, -0.0, f64::MIN_POSITIVE][rng.below(4) as usize],
                5 => (rng.below(100) as f64) * 0.25,
                6 => -v,
                _ => v * 1.000_001,
            };
        }
        out
    }

    #[test]
    fn round_trips_random_series() {
        let mut rng = Rng::new(7);
        for _ in 0..3000 {
            let series = random_series(&mut rng);
            let chunk = encode(&series);
            let back = decode(&chunk).unwrap();
            assert!(same(&series, &back), "{series:?} != {back:?}");
        }
    }

    #[test]
    fn resume_continues_byte_for_byte() {
        let mut rng = Rng::new(11);
        for _ in 0..1000 {
            let series = random_series(&mut rng);
            let split = if series.is_empty() {
                0
            } else {
                rng.below(series.len() as u64) as usize
            };
            let mut resumed = XorAppender::resume(&encode(&series[..split])).unwrap();
            for &(t, v) in &series[split..] {
                resumed.append(t, v);
            }
            assert_eq!(resumed.bytes(), encode(&series).as_slice());
        }
    }

    #[test]
    fn regular_constant_series_costs_two_bits_a_sample() {
        let series: Vec<_> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 10_000, 42.0))
            .collect();
        let chunk = encode(&series);
        // header 2 + varint ts 6 + value 8 + delta 2 + 119 values and 118
        // delta-of-deltas of one bit each.
        assert_eq!(chunk.len(), 2 + 6 + 8 + 2 + (119 + 118_usize).div_ceil(8));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let len = rng.below(40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = decode(&bytes);
            let _ = XorAppender::resume(&bytes);
        }
        assert!(decode(&[0, 5, 1]).is_err());
        assert!(decode(&[1]).is_err());
    }

    #[test]
    fn bucket_edges_match_prometheus_ranges() {
        assert!(fits(8192, 14) && !fits(8193, 14));
        assert!(fits(-8191, 14) && !fits(-8192, 14));
        for dod in [
            -8192i64, -8191, 8192, 8193, -65536, 65536, 65537, 524288, -524288,
        ] {
            let series = [(0, 1.0), (100, 1.0), (200 + dod, 1.0), (400 + dod, 2.0)];
            assert!(
                same(&series, &decode(&encode(&series)).unwrap()),
                "dod {dod}"
            );
        }
    }
}
