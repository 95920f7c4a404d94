//! Little binary helpers for what the store persists besides XOR chunks: the
//! head's state and the ingest log. Varints as Prometheus writes them,
//! floats as their 8 raw bytes, byte strings length-prefixed.

use super::xor::CorruptChunk;

#[derive(Debug, Default)]
pub struct ByteWriter(Vec<u8>);

impl ByteWriter {
    pub fn with_capacity(bytes: usize) -> ByteWriter {
        ByteWriter(Vec::with_capacity(bytes))
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub fn i64(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// Bytes without a length: the reader knows how many.
    pub fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

#[derive(Debug)]
pub struct ByteReader<'a>(&'a [u8]);

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader(bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptChunk> {
        if self.0.len() < n {
            return Err(CorruptChunk("truncated record"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, CorruptChunk> {
        Ok(self.take(1)?[0])
    }

    /// The next `n` bytes, written without a length.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], CorruptChunk> {
        self.take(n)
    }

    /// The next byte, left unread.
    pub fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    pub fn uvarint(&mut self) -> Result<u64, CorruptChunk> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CorruptChunk("varint overflows 64 bits"))
    }

    pub fn i64(&mut self) -> Result<i64, CorruptChunk> {
        let raw = self.uvarint()?;
        Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
    }

    pub fn f64(&mut self) -> Result<f64, CorruptChunk> {
        let b = self.take(8)?;
        Ok(f64::from_bits(u64::from_le_bytes(
            b.try_into().expect("took 8 bytes"),
        )))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], CorruptChunk> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| CorruptChunk("length out of range"))?;
        self.take(n)
    }
}

/// A run as sonde wrote them before packed rows (see [`super::packed`]):
/// consecutive XOR chunks of one series kept in one `chunks` row
/// (see the store's module docs), so the row and its index entry are paid
/// once for several chunks. Each chunk is written as its byte length, its
/// time span (last timestamp minus first) and its bytes, untouched; its
/// first timestamp is where every XOR chunk starts, right after the sample
/// count. Such runs are still read; new ones are packed.
#[cfg(test)]
pub fn encode_run<'a>(chunks: impl IntoIterator<Item = RunChunk<'a>>) -> Vec<u8> {
    let mut w = ByteWriter::default();
    for (min_time, max_time, data) in chunks {
        w.bytes(data);
        w.uvarint(max_time.saturating_sub(min_time) as u64);
    }
    w.into_inner()
}

/// One chunk of a run: first timestamp, last timestamp, bytes.
pub type RunChunk<'a> = (i64, i64, &'a [u8]);

/// The chunks of a run, oldest first.
pub fn decode_run(run: &[u8]) -> Result<Vec<RunChunk<'_>>, CorruptChunk> {
    let mut r = ByteReader::new(run);
    let mut chunks = Vec::new();
    while !r.is_empty() {
        let data = r.bytes()?;
        let span = r.uvarint()?;
        let min_time = ByteReader::new(data.get(2..).unwrap_or_default()).i64()?;
        let max_time = i64::try_from(span)
            .ok()
            .and_then(|s| min_time.checked_add(s))
            .ok_or(CorruptChunk("time span out of range"))?;
        chunks.push((min_time, max_time, data));
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::super::xor;
    use super::*;

    #[test]
    fn a_run_gives_back_its_chunks_untouched() {
        let a = xor::encode(&[(1_000, 1.0), (11_000, 2.5)]);
        let b = xor::encode(&[(-21_000, 3.0)]);
        let run = encode_run([(1_000, 11_000, &a[..]), (-21_000, -21_000, &b[..])]);
        let back = decode_run(&run).unwrap();
        assert_eq!(back, [(1_000, 11_000, &a[..]), (-21_000, -21_000, &b[..])]);
        assert!(decode_run(&run[..run.len() - 1]).is_err());
        assert!(decode_run(&[0xff]).is_err());
    }
}
