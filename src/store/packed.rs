//! Packed chunk rows: how raw chunks are kept on disk once they leave the
//! head. A chunk is split into its timestamps, which go to a column of the
//! `timestamps` table that every chunk with the same instants shares (see
//! [`super::timestamps`]), and its values, written as scaled integers where
//! that is exact; a row's chunks are then compressed together with zstd.
//!
//! Why: the collection loop stamps every series of a round with the same
//! instant, so the XOR chunks of a thousand series carry the same
//! timestamps a thousand times, and a round started late costs each of them
//! about two bytes. Values of node metrics are mostly integers or decimals
//! with few digits (bytes, counts, centiseconds): as integers their deltas
//! are small, and zstd finds what repeats in them, which XOR cannot.
//!
//! Layout of a row (`chunks.packed = 1`):
//!
//! ```text
//! ┌──────────┬──────────────────────┬──────────────────────────────────┐
//! │ kind: u8 │ body length: uvarint │ body, zstd-compressed if kind 1  │
//! └──────────┴──────────────────────┴──────────────────────────────────┘
//! body, per chunk, oldest first:
//!   timestamp column id: uvarint, sample count: uvarint, values
//! values:
//!   tag 0 (deltas) or 1 (deltas of deltas): exponent e: u8, then zigzag
//!         varints of m[0], then of its differences, where v = m / 10^e
//!   tag 2 (floats): each value's bits XOR the previous one's (the first
//!         XOR 0), 8 bytes little-endian
//! a rollup row's body (`rollups.packed = 1`, one rollup chunk):
//!   column id of the buckets' last instants, bucket count, then the values
//!   of min, max, sum, count and last; max is tag 3 alone when it equals
//!   last in every bucket; then, in rows written since buckets keep their
//!   second moment (schema 10), the values of count·M2, absent when no
//!   bucket of the row knows it (see [`super::rollup`])
//! ```
//!
//! Invariants:
//! - Decoding gives back every value bit for bit: a chunk is written as
//!   scaled integers only when `m as f64 / 10^e` rebuilds each of its values
//!   exactly (checked value by value when encoding), else as floats. NaN,
//!   infinities and -0.0 therefore always go the float way.
//! - A chunk's sample count equals its timestamp column's length; readers
//!   check it and treat a mismatch as corruption.
//! - Integer arithmetic on the scaled values wraps, in the encoder and the
//!   decoder alike, so any i64 round-trips.

use std::borrow::Cow;
use std::cell::RefCell;

use super::codec::{ByteReader, ByteWriter};
use super::xor::CorruptChunk;

/// zstd's level for rows: rows are small (at most a few KiB), where higher
/// levels buy little and cost ingest time.
const ZSTD_LEVEL: i32 = 3;
/// The largest decimal exponent tried: 10^15 is the largest power of ten
/// whose every multiple below 2^53 is still exact.
const MAX_EXPONENT: usize = 15;
const POW10: [f64; MAX_EXPONENT + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

const STORED: u8 = 0;
const ZSTD: u8 = 1;

const DELTAS: u8 = 0;
const DELTAS_OF_DELTAS: u8 = 1;
const FLOATS: u8 = 2;
/// Rollup rows only: the max values are the last ones.
const SAME_AS_LAST: u8 = 3;

/// One chunk of a packed row: its timestamp column and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedChunk {
    pub column: i64,
    pub values: Vec<f64>,
}

thread_local! {
    /// One zstd context per thread: creating one costs more than packing a
    /// row.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The row holding `chunks`, oldest first.
pub fn encode_row(chunks: &[PackedChunk]) -> Vec<u8> {
    seal(encode_body(chunks), true)
}

/// The row holding one chunk that soon joins a run (see the store's
/// module docs), uncompressed: the run compresses it with its neighbours,
/// and compressing it alone first would cost ingest time for little.
pub fn encode_waiting_row(chunk: &PackedChunk) -> Vec<u8> {
    seal(encode_body(std::slice::from_ref(chunk)), false)
}

fn encode_body(chunks: &[PackedChunk]) -> Vec<u8> {
    let mut body = ByteWriter::with_capacity(chunks.iter().map(|c| c.values.len() * 2 + 4).sum());
    for chunk in chunks {
        body.uvarint(chunk.column as u64);
        body.uvarint(chunk.values.len() as u64);
        encode_values(&chunk.values, &mut body);
    }
    body.into_inner()
}

/// The chunks of a row, oldest first.
pub fn decode_row(row: &[u8]) -> Result<Vec<PackedChunk>, CorruptChunk> {
    let body = unseal(row)?;
    let mut r = ByteReader::new(&body);
    let mut chunks = Vec::new();
    while !r.is_empty() {
        let column = column_id(&mut r)?;
        let n = sample_count(&mut r, body.len())?;
        chunks.push(PackedChunk {
            column,
            values: decode_values(&mut r, n)?,
        });
    }
    Ok(chunks)
}

/// A rollup chunk as packed (see [`super::rollup`]): the column of its
/// buckets' last instants (a bucket's start is its last instant rounded
/// down to the bucket width) and one value array per aggregate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedBuckets {
    pub column: i64,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub sum: Vec<f64>,
    pub count: Vec<f64>,
    pub last: Vec<f64>,
    /// count·M2 per bucket (an unknown one as [`super::rollup::UNKNOWN_M2`]);
    /// None in a row without them.
    pub scaled_m2: Option<Vec<f64>>,
}

/// A rollup row: column id, bucket count, then min, max, sum, count,
/// last and count·M2 (if any) as values; max is tag 3 alone when it equals
/// last in every bucket (a counter's does).
pub fn encode_rollup_row(buckets: &PackedBuckets) -> Vec<u8> {
    let mut body = ByteWriter::with_capacity(buckets.last.len() * 8 + 8);
    body.uvarint(buckets.column as u64);
    body.uvarint(buckets.last.len() as u64);
    encode_values(&buckets.min, &mut body);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if bits(&buckets.max) == bits(&buckets.last) {
        body.u8(SAME_AS_LAST);
    } else {
        encode_values(&buckets.max, &mut body);
    }
    encode_values(&buckets.sum, &mut body);
    encode_values(&buckets.count, &mut body);
    encode_values(&buckets.last, &mut body);
    if let Some(scaled_m2) = &buckets.scaled_m2 {
        encode_values(scaled_m2, &mut body);
    }
    seal(body.into_inner(), true)
}

pub fn decode_rollup_row(row: &[u8]) -> Result<PackedBuckets, CorruptChunk> {
    let body = unseal(row)?;
    let mut r = ByteReader::new(&body);
    let column = column_id(&mut r)?;
    let n = sample_count(&mut r, body.len())?;
    let min = decode_values(&mut r, n)?;
    let max = if r.peek() == Some(SAME_AS_LAST) {
        r.u8()?;
        None
    } else {
        Some(decode_values(&mut r, n)?)
    };
    let sum = decode_values(&mut r, n)?;
    let count = decode_values(&mut r, n)?;
    let last = decode_values(&mut r, n)?;
    // A row written before buckets kept M2 ends here.
    let scaled_m2 = if r.is_empty() {
        None
    } else {
        Some(decode_values(&mut r, n)?)
    };
    if !r.is_empty() {
        return Err(CorruptChunk("rollup row longer than its buckets"));
    }
    Ok(PackedBuckets {
        column,
        min,
        max: max.unwrap_or_else(|| last.clone()),
        sum,
        count,
        last,
        scaled_m2,
    })
}

fn column_id(r: &mut ByteReader) -> Result<i64, CorruptChunk> {
    i64::try_from(r.uvarint()?).map_err(|_| CorruptChunk("column id out of range"))
}

fn sample_count(r: &mut ByteReader, body_len: usize) -> Result<usize, CorruptChunk> {
    let n = r.uvarint()?;
    // Every value takes at least a byte.
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= body_len)
        .ok_or(CorruptChunk("sample count out of range"))
}

/// A row around `body`: zstd-compressed when asked and smaller.
fn seal(body: Vec<u8>, compress: bool) -> Vec<u8> {
    let compressed = compress
        .then(|| {
            COMPRESSOR.with(|cell| {
                let mut cell = cell.borrow_mut();
                let compressor = match cell.as_mut() {
                    Some(c) => c,
                    None => {
                        let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?;
                        // Neither checksum nor content size: the row says how long
                        // the body is, and a frame's header is a tenth of a small
                        // row.
                        c.include_checksum(false).ok()?;
                        c.include_contentsize(false).ok()?;
                        c.include_dictid(false).ok()?;
                        cell.insert(c)
                    }
                };
                compressor.compress(&body).ok()
            })
        })
        .flatten();
    let mut w = ByteWriter::with_capacity(body.len() + 4);
    match compressed {
        Some(c) if c.len() < body.len() => {
            w.u8(ZSTD);
            w.uvarint(body.len() as u64);
            w.raw(&c);
        }
        _ => {
            w.u8(STORED);
            w.uvarint(body.len() as u64);
            w.raw(&body);
        }
    }
    w.into_inner()
}

/// The body of a row.
fn unseal(row: &[u8]) -> Result<Cow<'_, [u8]>, CorruptChunk> {
    let mut r = ByteReader::new(row);
    let kind = r.u8()?;
    let len = usize::try_from(r.uvarint()?).map_err(|_| CorruptChunk("length out of range"))?;
    let rest = r.rest();
    let body = match kind {
        STORED => Cow::Borrowed(rest),
        ZSTD => Cow::Owned(DECOMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            let decompressor = match cell.as_mut() {
                Some(d) => d,
                None => cell.insert(
                    zstd::bulk::Decompressor::new().map_err(|_| CorruptChunk("no zstd context"))?,
                ),
            };
            decompressor
                .decompress(rest, len)
                .map_err(|_| CorruptChunk("zstd stream does not decode"))
        })?),
        _ => return Err(CorruptChunk("unknown row kind")),
    };
    if body.len() != len {
        return Err(CorruptChunk("row body of the wrong length"));
    }
    Ok(body)
}

/// The smallest exponent e for which every value is m / 10^e with an
/// integer m, rebuilt bit for bit; None if there is none up to
/// [`MAX_EXPONENT`].
fn decimal_exponent(values: &[f64]) -> Option<usize> {
    let mut e = 0;
    for &v in values {
        if !v.is_finite() {
            return None;
        }
        while scaled(v, e).is_none() {
            e += 1;
            if e > MAX_EXPONENT {
                return None;
            }
        }
    }
    // A value exact at a smaller exponent is exact at a larger one in
    // exact arithmetic; the float product may still round, so check.
    values.iter().all(|&v| scaled(v, e).is_some()).then_some(e)
}

/// m with v == m / 10^e exactly, if there is one.
fn scaled(v: f64, e: usize) -> Option<i64> {
    let m = (v * POW10[e]).round();
    // Inside i64, and an integer a float holds exactly.
    if m.abs() >= 9.0e15 {
        return None;
    }
    let m = m as i64;
    (unscaled(m, e).to_bits() == v.to_bits()).then_some(m)
}

fn unscaled(m: i64, e: usize) -> f64 {
    m as f64 / POW10[e]
}

fn zigzag_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

fn encode_values(values: &[f64], w: &mut ByteWriter) {
    let Some(e) = decimal_exponent(values) else {
        w.u8(FLOATS);
        let mut previous = 0u64;
        for v in values {
            w.raw(&(v.to_bits() ^ previous).to_le_bytes());
            previous = v.to_bits();
        }
        return;
    };
    let m: Vec<i64> = values
        .iter()
        .map(|&v| scaled(v, e).expect("checked by decimal_exponent"))
        .collect();
    let deltas: Vec<i64> = m.windows(2).map(|p| p[1].wrapping_sub(p[0])).collect();
    let dods: Vec<i64> = deltas.windows(2).map(|p| p[1].wrapping_sub(p[0])).collect();
    let cost = |xs: &[i64]| xs.iter().map(|&x| zigzag_len(x)).sum::<usize>();
    let by_dod = deltas.len() > 1 && cost(&dods) + zigzag_len(deltas[0]) < cost(&deltas);
    w.u8(if by_dod { DELTAS_OF_DELTAS } else { DELTAS });
    w.u8(e as u8);
    if let Some(&first) = m.first() {
        w.i64(first);
    }
    if by_dod {
        w.i64(deltas[0]);
        dods.iter().for_each(|&d| w.i64(d));
    } else {
        deltas.iter().for_each(|&d| w.i64(d));
    }
}

fn decode_values(r: &mut ByteReader, n: usize) -> Result<Vec<f64>, CorruptChunk> {
    let mut values = Vec::with_capacity(n);
    let tag = r.u8()?;
    if tag == FLOATS {
        let mut previous = 0u64;
        for _ in 0..n {
            let b = r.raw(8)?;
            previous ^= u64::from_le_bytes(b.try_into().expect("took 8 bytes"));
            values.push(f64::from_bits(previous));
        }
        return Ok(values);
    }
    if tag != DELTAS && tag != DELTAS_OF_DELTAS {
        return Err(CorruptChunk("unknown value encoding"));
    }
    let e = r.u8()? as usize;
    if e > MAX_EXPONENT {
        return Err(CorruptChunk("decimal exponent out of range"));
    }
    let (mut m, mut delta) = (0i64, 0i64);
    for i in 0..n {
        match (i, tag) {
            (0, _) => m = r.i64()?,
            (1, _) | (_, DELTAS) => {
                delta = r.i64()?;
                m = m.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(r.i64()?);
                m = m.wrapping_add(delta);
            }
        }
        values.push(unscaled(m, e));
    }
    Ok(values)
}

/// A timestamp column: count, first timestamp, first delta, then deltas of
/// deltas, zigzag varints (a regular schedule costs a byte a timestamp).
pub fn encode_column(timestamps: &[i64]) -> Vec<u8> {
    let mut w = ByteWriter::with_capacity(timestamps.len() + 16);
    w.uvarint(timestamps.len() as u64);
    let (mut previous, mut delta) = (0i64, 0i64);
    for (i, &t) in timestamps.iter().enumerate() {
        let d = t.wrapping_sub(previous);
        w.i64(if i < 2 { d } else { d.wrapping_sub(delta) });
        delta = d;
        previous = t;
    }
    w.into_inner()
}

pub fn decode_column(data: &[u8]) -> Result<Vec<i64>, CorruptChunk> {
    let mut r = ByteReader::new(data);
    let n = r.uvarint()? as usize;
    if n > data.len() {
        return Err(CorruptChunk("timestamp count out of range"));
    }
    let mut timestamps = Vec::with_capacity(n);
    let (mut t, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let x = r.i64()?;
        delta = if i < 2 { x } else { delta.wrapping_add(x) };
        t = t.wrapping_add(delta);
        timestamps.push(t);
    }
    Ok(timestamps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64]) -> Vec<f64> {
        let row = encode_row(&[PackedChunk {
            column: 7,
            values: values.to_vec(),
        }]);
        let back = decode_row(&row).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].column, 7);
        back[0].values.clone()
    }

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn every_value_comes_back_bit_for_bit() {
        let cases: [&[f64]; 7] = [
            &[1.0, 2.0, 4.0, 7.0, 11.0],
            &[0.1, 0.2, 0.30000000000000004, 1e-7],
            &[12345.67, 12345.68, 12399.01],
            &[f64::NAN, 1.0, f64::INFINITY, -0.0, f64::NEG_INFINITY],
            &[f64::from_bits(0x7ff0_0000_0000_0002), 3.0],
            &[1e300, -1e-300, f64::MIN_POSITIVE, f64::MAX],
            &[9.0e15, -9.1e15, 4.5e15, 0.0],
        ];
        for values in cases {
            assert_eq!(bits(&round_trip(values)), bits(values), "{values:?}");
        }
        assert!(round_trip(&[]).is_empty());
    }

    #[test]
    fn decimals_become_small_integers() {
        let counter: Vec<f64> = (0..120).map(|i| 1000.0 + i as f64 * 0.25).collect();
        let row = encode_row(&[PackedChunk {
            column: 1,
            values: counter.clone(),
        }]);
        assert!(row.len() < 40, "{} bytes", row.len());
        assert_eq!(decimal_exponent(&counter), Some(2));
        assert_eq!(decimal_exponent(&[0.1 + 0.2]), None);
    }

    #[test]
    fn columns_round_trip_and_rows_refuse_garbage() {
        let ts = [-5, 10_000, 20_003, 29_998, 40_000, i64::MAX];
        assert_eq!(decode_column(&encode_column(&ts)).unwrap(), ts);
        assert!(decode_column(&[5, 0]).is_err());
        let row = encode_row(&[
            PackedChunk {
                column: 1,
                values: vec![1.0; 50],
            },
            PackedChunk {
                column: 2,
                values: vec![0.5, f64::NAN],
            },
        ]);
        assert_eq!(decode_row(&row).unwrap().len(), 2);
        assert!(decode_row(&row[..row.len() - 1]).is_err());
        assert!(decode_row(&[9, 0]).is_err());
        assert!(decode_row(&[]).is_err());
    }
}
