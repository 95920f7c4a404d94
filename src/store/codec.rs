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
