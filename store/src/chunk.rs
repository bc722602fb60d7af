//! The sample codec: how a series' timestamps and values become the bytes of the `timestamps` and
//! `values` columns (see `docs/block-format.md`, "Chunk encodings").
//!
//! Generic Parquet encodings are not a time-series codec: scrape timestamps are regular, and
//! exporter values are short decimals. So each series' samples are coded here first, and Parquet's
//! zstd then squeezes what is left across series:
//! * timestamps: count, first timestamp, first delta, then delta-of-deltas, all zigzag varints
//!   (a regular 15 s scrape is a run of zero bytes);
//! * values: the smallest of three codings, chosen per chunk:
//!   - *decimal delta* / *decimal delta-of-delta*: every value is `i / 10^e` for one exponent `e`,
//!     checked bit for bit when encoding; the integers are delta or delta-of-delta coded. Values that
//!     are not such decimals (NaN, stale markers, infinities, `-0.0`, long binary fractions) are stored
//!     raw as exceptions.
//!   - *xor*: Gorilla-style XOR with the previous value, as trailing-zero count plus varint.
//!   - *xor bits*: Gorilla's own bit packing of the same XORs (a zero XOR is one bit; otherwise
//!     the XOR's meaningful bits, inside the previous one's leading/trailing zeros when they fit).
//!     Full-precision floats (sums of latencies, averaged gauges) cost a byte or two less a sample
//!     than with the byte-aligned xor.

use crate::error::{Error, Result};

const KIND_DECIMAL_DELTA: u8 = 1;
const KIND_DECIMAL_DOD: u8 = 2;
const KIND_XOR: u8 = 3;
const KIND_XOR_BITS: u8 = 4;
/// Largest decimal exponent tried: 10^15 keeps 15 significant fractional digits.
const MAX_EXP: u8 = 15;
/// Largest integer magnitude whose conversion to f64 is exact.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// Encodes timestamps (any order, any values: arithmetic wraps).
pub fn encode_timestamps(ts: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ts.len() + 16);
    put_uvarint(&mut out, ts.len() as u64);
    if let Some(&t0) = ts.first() {
        put_ivarint(&mut out, t0);
    }
    if let [t0, t1, ..] = ts {
        put_ivarint(&mut out, t1.wrapping_sub(*t0));
    }
    put_delta_of_deltas(&mut out, ts);
    out
}

/// The delta-of-deltas of `ts` from its third timestamp on.
fn put_delta_of_deltas(out: &mut Vec<u8>, ts: &[i64]) {
    for w in ts.windows(3) {
        let (d0, d1) = (w[1].wrapping_sub(w[0]), w[2].wrapping_sub(w[1]));
        put_ivarint(out, d1.wrapping_sub(d0));
    }
}

/// Decodes [`encode_timestamps`] output, appending to `out`.
pub fn decode_timestamps(mut buf: &[u8], out: &mut Vec<i64>) -> Result<()> {
    let n = get_len(&mut buf)?;
    // Every sample takes a byte at least: a corrupt count cannot make us allocate more than that.
    out.reserve(n.min(buf.len()));
    let mut prev = 0i64;
    let mut delta = 0i64;
    for i in 0..n {
        let x = get_ivarint(&mut buf)?;
        let t = match i {
            0 => x,
            1 => {
                delta = x;
                prev.wrapping_add(delta)
            }
            _ => {
                delta = delta.wrapping_add(x);
                prev.wrapping_add(delta)
            }
        };
        out.push(t);
        prev = t;
    }
    Ok(())
}

/// Encodes a sub-chunk's timestamps: as [`encode_timestamps`], except that the first delta comes
/// before the first timestamp, which is coded as its distance from where a series that started at
/// `series_first` and keeps that delta would first be scraped in a slot starting at `slot_start`
/// ([`slot_first`]): for a regular scrape, a zero.
pub fn encode_slot_timestamps(ts: &[i64], series_first: i64, slot_start: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(ts.len() + 16);
    put_uvarint(&mut out, ts.len() as u64);
    let Some(&t0) = ts.first() else {
        return out;
    };
    let d1 = ts.get(1).map_or(0, |t1| t1.wrapping_sub(t0));
    if ts.len() > 1 {
        put_ivarint(&mut out, d1);
    }
    put_ivarint(
        &mut out,
        t0.wrapping_sub(slot_first(series_first, slot_start, d1)),
    );
    put_delta_of_deltas(&mut out, ts);
    out
}

/// Decodes [`encode_slot_timestamps`] output, appending to `out`.
pub fn decode_slot_timestamps(
    mut buf: &[u8],
    series_first: i64,
    slot_start: i64,
    out: &mut Vec<i64>,
) -> Result<()> {
    let n = get_len(&mut buf)?;
    if n == 0 {
        return Ok(());
    }
    out.reserve(n.min(buf.len()));
    let mut delta = if n > 1 { get_ivarint(&mut buf)? } else { 0 };
    let mut t = slot_first(series_first, slot_start, delta).wrapping_add(get_ivarint(&mut buf)?);
    out.push(t);
    for i in 1..n {
        if i > 1 {
            delta = delta.wrapping_add(get_ivarint(&mut buf)?);
        }
        t = t.wrapping_add(delta);
        out.push(t);
    }
    Ok(())
}

/// Where a series first scraped at `series_first`, every `delta` ms, is first scraped in a slot
/// starting at `slot_start`.
fn slot_first(series_first: i64, slot_start: i64, delta: i64) -> i64 {
    if series_first >= slot_start || delta <= 0 {
        return series_first.max(slot_start);
    }
    slot_start.wrapping_add(series_first.wrapping_sub(slot_start).rem_euclid(delta))
}

/// Encodes values bit for bit with the smallest of the codings described in the module docs.
pub fn encode_values(vs: &[f64]) -> Vec<u8> {
    let xor = encode_xor(vs);
    let bits = encode_xor_bits(vs);
    let xor = if bits.len() < xor.len() { bits } else { xor };
    let Some(dec) = Decimal::analyse(vs) else {
        return xor;
    };
    let delta = dec.encode(KIND_DECIMAL_DELTA);
    let dod = dec.encode(KIND_DECIMAL_DOD);
    [xor, delta, dod]
        .into_iter()
        .min_by_key(Vec::len)
        .unwrap_or_default()
}

/// Decodes [`encode_values`] output, appending to `out`.
pub fn decode_values(buf: &[u8], out: &mut Vec<f64>) -> Result<()> {
    decode_values_range(buf, 0..usize::MAX, out).map(|_| ())
}

/// Decodes the values at positions `range` of [`encode_values`] output (clipped to the count),
/// appending them to `out`: the ones before are parsed but not made, the ones after not read (a
/// selection of the last minutes of a long chunk makes only those). Returns the chunk's count.
pub fn decode_values_range(
    buf: &[u8],
    range: std::ops::Range<usize>,
    out: &mut Vec<f64>,
) -> Result<usize> {
    let (&kind, mut buf) = buf
        .split_first()
        .ok_or_else(|| corrupt("empty values chunk"))?;
    let n = get_len(&mut buf)?;
    let (lo, hi) = (range.start.min(n), range.end.min(n));
    // Every sample takes a byte at least: a corrupt count cannot make us allocate more than that.
    out.reserve(hi.saturating_sub(lo).min(buf.len()));
    match kind {
        KIND_XOR => {
            let mut prev = 0u64;
            for i in 0..hi {
                let (&tz, rest) = buf
                    .split_first()
                    .ok_or_else(|| corrupt("truncated xor value"))?;
                buf = rest;
                let x = if tz >= 64 {
                    0
                } else {
                    get_uvarint(&mut buf)? << tz
                };
                prev ^= x;
                if i >= lo {
                    out.push(f64::from_bits(prev));
                }
            }
        }
        KIND_XOR_BITS => {
            let mut bits = BitReader::new(buf);
            let (mut prev, mut window) = (0u64, None);
            for i in 0..hi {
                let x = if i == 0 {
                    bits.read(64)?
                } else if bits.read(1)? == 0 {
                    0
                } else {
                    if bits.read(1)? == 1 {
                        let lz = bits.read(5)? as u32;
                        let m = match bits.read(6)? as u32 {
                            0 => 64,
                            m => m,
                        };
                        if lz + m > 64 {
                            return Err(corrupt("xor bits: window past 64 bits"));
                        }
                        window = Some((lz, 64 - lz - m));
                    }
                    let (lz, tz) = window.ok_or_else(|| corrupt("xor bits: no window yet"))?;
                    bits.read(64 - lz - tz)? << tz
                };
                prev ^= x;
                if i >= lo {
                    out.push(f64::from_bits(prev));
                }
            }
        }
        KIND_DECIMAL_DELTA | KIND_DECIMAL_DOD => {
            let (&e, rest) = buf
                .split_first()
                .ok_or_else(|| corrupt("truncated decimal header"))?;
            buf = rest;
            if e > MAX_EXP {
                return Err(corrupt("decimal exponent out of range"));
            }
            let scale = 10f64.powi(i32::from(e));
            let n_exc = get_len(&mut buf)?;
            let mut exceptions = Vec::with_capacity(n_exc.min(buf.len() / 9));
            let mut pos = 0usize;
            for _ in 0..n_exc {
                pos += get_len(&mut buf)?;
                let bits: [u8; 8] = buf
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt("truncated exception"))?;
                buf = &buf[8..];
                exceptions.push((pos, f64::from_bits(u64::from_le_bytes(bits))));
            }
            if pos >= n && n_exc > 0 {
                return Err(corrupt("exception past the end"));
            }
            let start = out.len();
            let (mut prev, mut delta) = (0i64, 0i64);
            for i in 0..hi {
                let x = get_ivarint(&mut buf)?;
                let int = match (i, kind) {
                    (0, _) => x,
                    (_, KIND_DECIMAL_DELTA) => prev.wrapping_add(x),
                    (1, _) => {
                        delta = x;
                        prev.wrapping_add(delta)
                    }
                    _ => {
                        delta = delta.wrapping_add(x);
                        prev.wrapping_add(delta)
                    }
                };
                if i >= lo {
                    out.push(int as f64 / scale);
                }
                prev = int;
            }
            for (pos, v) in exceptions {
                if (lo..hi).contains(&pos) {
                    out[start + pos - lo] = v;
                }
            }
        }
        _ => return Err(corrupt("unknown values encoding")),
    }
    Ok(n)
}

/// Values seen as integers scaled by `10^exp`, with the positions that are not such decimals.
struct Decimal {
    exp: u8,
    ints: Vec<i64>,
    /// (position, value) of samples stored raw.
    exceptions: Vec<(usize, f64)>,
}

impl Decimal {
    /// `None` when too many values are not decimals for the coding to pay off.
    fn analyse(vs: &[f64]) -> Option<Self> {
        let exp = vs
            .iter()
            .filter_map(|&v| min_exponent(v))
            .max()
            .unwrap_or(0);
        let scale = 10f64.powi(i32::from(exp));
        let mut ints = Vec::with_capacity(vs.len());
        let mut exceptions = Vec::new();
        let mut prev = 0i64;
        for (i, &v) in vs.iter().enumerate() {
            match as_decimal(v, scale) {
                Some(int) => {
                    ints.push(int);
                    prev = int;
                }
                None => {
                    // Repeat the previous integer so the exception costs no delta.
                    ints.push(prev);
                    exceptions.push((i, v));
                }
            }
        }
        (exceptions.len() * 2 <= vs.len()).then_some(Self {
            exp,
            ints,
            exceptions,
        })
    }

    fn encode(&self, kind: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ints.len() * 2 + 8);
        out.push(kind);
        put_uvarint(&mut out, self.ints.len() as u64);
        out.push(self.exp);
        put_uvarint(&mut out, self.exceptions.len() as u64);
        let mut last = 0;
        for &(pos, v) in &self.exceptions {
            put_uvarint(&mut out, (pos - last) as u64);
            out.extend_from_slice(&v.to_bits().to_le_bytes());
            last = pos;
        }
        let (mut prev, mut prev_delta) = (0i64, 0i64);
        for (i, &int) in self.ints.iter().enumerate() {
            let delta = int.wrapping_sub(prev);
            let x = match (i, kind) {
                (0, _) => int,
                (_, KIND_DECIMAL_DELTA) | (1, _) => delta,
                _ => delta.wrapping_sub(prev_delta),
            };
            put_ivarint(&mut out, x);
            prev = int;
            prev_delta = delta;
        }
        out
    }
}

/// The smallest `e` such that `v == i / 10^e` exactly for an integer `i` with `|i| <= 2^53`.
fn min_exponent(v: f64) -> Option<u8> {
    (0..=MAX_EXP).find(|&e| as_decimal(v, 10f64.powi(i32::from(e))).is_some())
}

/// `v * scale` as an integer, if dividing it back by `scale` gives `v` bit for bit.
fn as_decimal(v: f64, scale: f64) -> Option<i64> {
    let i = (v * scale).round();
    if i.is_nan() || i.abs() > MAX_EXACT {
        return None; // also rejects infinities
    }
    // Check with exactly what the decoder computes (this also refuses -0.0, which would come back as 0.0).
    let int = i as i64;
    ((int as f64 / scale).to_bits() == v.to_bits()).then_some(int)
}

fn encode_xor(vs: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vs.len() * 4 + 8);
    out.push(KIND_XOR);
    put_uvarint(&mut out, vs.len() as u64);
    let mut prev = 0u64;
    for &v in vs {
        let x = v.to_bits() ^ prev;
        if x == 0 {
            out.push(64);
        } else {
            let tz = x.trailing_zeros();
            out.push(tz as u8);
            put_uvarint(&mut out, x >> tz);
        }
        prev = v.to_bits();
    }
    out
}

/// Gorilla's XOR packing: the first value's 64 bits, then per value `0` for an unchanged value,
/// `10` + the XOR's bits inside the previous window, or `11` + leading zeros (5 bits) + meaningful
/// length (6 bits, 0 for 64) + the bits.
fn encode_xor_bits(vs: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vs.len() * 4 + 16);
    out.push(KIND_XOR_BITS);
    put_uvarint(&mut out, vs.len() as u64);
    let mut bits = BitWriter::new(out);
    let (mut prev, mut window) = (0u64, None);
    for (i, &v) in vs.iter().enumerate() {
        let x = v.to_bits() ^ prev;
        prev = v.to_bits();
        if i == 0 {
            bits.write(x, 64);
        } else if x == 0 {
            bits.write(0, 1);
        } else {
            let (lz, tz) = (x.leading_zeros().min(31), x.trailing_zeros());
            match window {
                Some((wl, wt)) if lz >= wl && tz >= wt => {
                    bits.write(0b10, 2);
                    bits.write(x >> wt, 64 - wl - wt);
                }
                _ => {
                    let m = 64 - lz - tz;
                    bits.write(0b11, 2);
                    bits.write(u64::from(lz), 5);
                    bits.write(u64::from(m & 63), 6);
                    bits.write(x >> tz, m);
                    window = Some((lz, tz));
                }
            }
        }
    }
    bits.finish()
}

/// Writes bits most significant first after the bytes already in `out`.
struct BitWriter {
    out: Vec<u8>,
    acc: u128,
    pending: u32,
}

impl BitWriter {
    fn new(out: Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// Appends the low `n` (<= 64) bits of `x`.
    fn write(&mut self, x: u64, n: u32) {
        if n == 0 {
            return;
        }
        let x = if n == 64 { x } else { x & ((1u64 << n) - 1) };
        self.acc = (self.acc << n) | u128::from(x);
        self.pending += n;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u128 << self.pending) - 1;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
        self.out
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    buf: &'a [u8],
    acc: u128,
    have: u32,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            acc: 0,
            have: 0,
        }
    }

    /// The next `n` (<= 64) bits.
    fn read(&mut self, n: u32) -> Result<u64> {
        if n == 0 {
            return Ok(0);
        }
        while self.have < n {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| corrupt("truncated xor bits"))?;
            self.buf = rest;
            self.acc = (self.acc << 8) | u128::from(b);
            self.have += 8;
        }
        self.have -= n;
        let x = (self.acc >> self.have) as u64;
        self.acc &= (1u128 << self.have) - 1;
        Ok(if n == 64 { x } else { x & ((1u64 << n) - 1) })
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("chunk: {what}"))
}

fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_ivarint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

fn get_uvarint(buf: &mut &[u8]) -> Result<u64> {
    let mut x = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(x);
        }
    }
    Err(corrupt("truncated or overlong varint"))
}

fn get_ivarint(buf: &mut &[u8]) -> Result<i64> {
    let u = get_uvarint(buf)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

/// A count read from a chunk, bounded by the bytes left so corrupt input cannot make us allocate wildly.
fn get_len(buf: &mut &[u8]) -> Result<usize> {
    let n = get_uvarint(buf)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= (1 << 32))
        .ok_or_else(|| corrupt("count out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip_values(vs: &[f64]) -> Vec<u8> {
        let enc = encode_values(vs);
        let mut back = Vec::new();
        decode_values(&enc, &mut back).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        enc
    }

    #[test]
    fn regular_timestamps_cost_a_byte_each() {
        let ts: Vec<i64> = (0..480).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        let enc = encode_timestamps(&ts);
        assert!(enc.len() < 490, "{}", enc.len());
        assert!(
            enc[11..].iter().all(|&b| b == 0),
            "delta-of-delta of a regular scrape is zero"
        );
        let mut back = Vec::new();
        decode_timestamps(&enc, &mut back).unwrap();
        assert_eq!(back, ts);
    }

    #[test]
    fn decimal_counters_pick_a_decimal_coding() {
        let vs: Vec<f64> = (0..100)
            .map(|i| (12345.67 + f64::from(i) * 3.21 * 100.0).round() / 100.0)
            .collect();
        let enc = roundtrip_values(&vs);
        assert_ne!(enc[0], KIND_XOR);
        assert!(enc.len() < 3 * vs.len(), "{}", enc.len());
    }

    #[test]
    fn special_values_are_exceptions() {
        let stale = f64::from_bits(crate::series::STALE_NAN_BITS);
        let special = [
            stale,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.1 + 0.2,
        ];
        let vs: Vec<f64> = (0..100)
            .map(|i| f64::from(i * 37) / 100.0)
            .chain(special)
            .collect();
        let enc = roundtrip_values(&vs);
        assert_ne!(enc[0], KIND_XOR, "few exceptions keep the decimal coding");
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        let enc = encode_values(&[1.0, 2.0, 3.5]);
        for cut in 0..enc.len() {
            let _ = decode_values(&enc[..cut], &mut Vec::new());
        }
        assert!(decode_values(&[9, 1, 0], &mut Vec::new()).is_err());
        assert!(decode_timestamps(&[5, 0x80], &mut Vec::new()).is_err());
        // A count of 2^32 samples in a few bytes: an error, not a 32 GiB allocation.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x10, 0, 0];
        assert!(decode_timestamps(&huge, &mut Vec::new()).is_err());
        for kind in [KIND_XOR, KIND_XOR_BITS] {
            let mut values = vec![kind];
            values.extend_from_slice(&huge);
            assert!(decode_values(&values, &mut Vec::new()).is_err());
        }
        // xor bits: a window past 64 bits (31 leading zeros, 40 bits), and a `10` before any window.
        let bad_window = [
            KIND_XOR_BITS,
            2,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0b1111_1111,
            0b1010_0000,
            0,
        ];
        assert!(decode_values(&bad_window, &mut Vec::new()).is_err());
        let no_window = [KIND_XOR_BITS, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0b1000_0000, 0];
        assert!(decode_values(&no_window, &mut Vec::new()).is_err());
        let enc = encode_xor_bits(&[1.5, 2.25, 2.25, -7.0, f64::NAN]);
        for cut in 0..enc.len() {
            assert!(
                decode_values(&enc[..cut], &mut Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_regular_scrape_predicts_each_slots_first_timestamp() {
        // A target scraped every 15 s at phase 353 ms: in every later slot, the first timestamp
        // costs a zero byte, like the delta-of-deltas.
        let (first, slot) = (1_767_225_600_353, 1_767_227_400_000);
        let ts: Vec<i64> = (0..120).map(|i| 1_767_227_400_353 + 15_000 * i).collect();
        let enc = encode_slot_timestamps(&ts, first, slot);
        assert_eq!(enc.len(), 1 + 3 + 1 + 118);
        assert_eq!(enc[4], 0);
        let mut back = Vec::new();
        decode_slot_timestamps(&enc, first, slot, &mut back).unwrap();
        assert_eq!(back, ts);
        // The series starting inside the slot: its own first timestamp.
        assert_eq!(slot_first(slot + 10, slot, 15_000), slot + 10);
        assert_eq!(slot_first(slot - 14_990, slot, 15_000), slot + 10);
        for cut in 0..enc.len() {
            assert!(decode_slot_timestamps(&enc[..cut], first, slot, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn full_precision_floats_pick_the_bit_packed_xor() {
        // Sums of latencies: random mantissas, no short decimal.
        let mut sum = 0.0f64;
        let vs: Vec<f64> = (0..120u32)
            .map(|i| {
                sum += f64::from(i % 17) * 0.001_372_912_37 + 1.0 / f64::from(i + 3);
                sum
            })
            .collect();
        let enc = roundtrip_values(&vs);
        assert_eq!(enc[0], KIND_XOR_BITS);
        assert!(enc.len() < encode_xor(&vs).len());
        // Constant values: a bit each.
        assert!(encode_xor_bits(&[1.0; 120]).len() <= 2 + 8 + 15);
    }

    proptest! {
        #[test]
        fn any_values_roundtrip(bits in proptest::collection::vec(any::<u64>(), 0..50)) {
            let vs: Vec<f64> = bits.into_iter().map(f64::from_bits).collect();
            roundtrip_values(&vs);
            let mut back = Vec::new();
            decode_values(&encode_xor_bits(&vs), &mut back).unwrap();
            let back: Vec<u64> = back.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(back, vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }

        #[test]
        fn decimals_roundtrip(ints in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 0..50), e in 0i32..6) {
            let vs: Vec<f64> = ints.into_iter().map(|i| i as f64 / 10f64.powi(e)).collect();
            roundtrip_values(&vs);
        }

        #[test]
        fn a_range_of_values_is_that_range_of_all(
            ints in proptest::collection::vec(-1_000i64..1_000, 0..80),
            nan_at in proptest::collection::vec(0usize..80, 0..5),
            (lo, len) in (0usize..90, 0usize..90),
        ) {
            // Decimals with a few exceptions, and the same as XOR-coded bits.
            let mut vs: Vec<f64> = ints.into_iter().map(|i| i as f64 / 100.0).collect();
            let n = vs.len();
            for i in nan_at.into_iter().filter(|&i| i < n) {
                vs[i] = f64::NAN;
            }
            for enc in [encode_values(&vs), encode_xor(&vs), encode_xor_bits(&vs)] {
                let mut part = Vec::new();
                let n = decode_values_range(&enc, lo..lo + len, &mut part).unwrap();
                prop_assert_eq!(n, vs.len());
                let want: Vec<u64> = vs.iter().skip(lo).take(len).map(|v| v.to_bits()).collect();
                let got: Vec<u64> = part.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn any_slot_timestamps_roundtrip(
            ts in proptest::collection::vec(any::<i64>(), 0..50),
            first in any::<i64>(),
            start in any::<i64>(),
        ) {
            let enc = encode_slot_timestamps(&ts, first, start);
            let mut back = Vec::new();
            decode_slot_timestamps(&enc, first, start, &mut back).unwrap();
            prop_assert_eq!(back, ts);
        }

        #[test]
        fn any_timestamps_roundtrip(ts in proptest::collection::vec(any::<i64>(), 0..50)) {
            let enc = encode_timestamps(&ts);
            let mut back = Vec::new();
            decode_timestamps(&enc, &mut back).unwrap();
            prop_assert_eq!(back, ts);
        }
    }
}
