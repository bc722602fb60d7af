//! Samples and series.

use std::collections::HashMap;

use crate::labels::Labels;

/// The bit pattern of Prometheus's stale marker, a NaN that ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is Prometheus's stale marker (compared by bits: other NaNs are ordinary values).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value, kept bit for bit (NaN payloads included).
    pub v: f64,
}

impl PartialEq for Sample {
    /// Bitwise: two NaNs with the same payload are equal, `0.0` and `-0.0` are not.
    fn eq(&self, other: &Self) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

impl Eq for Sample {}

/// A series: its labels and its samples sorted by `t`, one per timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The full label set.
    pub labels: Labels,
    /// Samples in increasing `t`.
    pub samples: Vec<Sample>,
}

/// Sorts samples by time and keeps the last written sample of each timestamp.
pub fn sort_dedup(samples: &mut Vec<Sample>) {
    if samples.windows(2).all(|w| w[0].t < w[1].t) {
        return;
    }
    // Stable sort keeps arrival order among equal timestamps; keep the last of each run.
    samples.sort_by_key(|s| s.t);
    let mut out: Vec<Sample> = Vec::with_capacity(samples.len());
    for s in samples.drain(..) {
        match out.last_mut() {
            Some(last) if last.t == s.t => *last = s,
            _ => out.push(s),
        }
    }
    *samples = out;
}

/// Merges series from several places (blocks, heads, remote reads): one series per label set,
/// samples sorted by time, one per timestamp; sorted by labels.
pub fn merge(parts: Vec<Vec<Series>>) -> Vec<Series> {
    // One part already sorted by labels, each once, is its own merge.
    if let [only] = parts.as_slice()
        && only.windows(2).all(|w| w[0].labels < w[1].labels)
    {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut by_labels: HashMap<Labels, Vec<Sample>> = HashMap::new();
    for s in parts.into_iter().flatten() {
        by_labels.entry(s.labels).or_default().extend(s.samples);
    }
    let mut out: Vec<Series> = by_labels
        .into_iter()
        .map(|(labels, mut samples)| {
            sort_dedup(&mut samples);
            Series { labels, samples }
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// The start of the aligned window of `duration_ms` that holds `t` (windows are aligned to the epoch).
pub fn window_start(t: i64, duration_ms: i64) -> i64 {
    t.div_euclid(duration_ms) * duration_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_dedup_keeps_last_write() {
        let mut s = vec![
            Sample { t: 3, v: 1.0 },
            Sample { t: 1, v: 2.0 },
            Sample { t: 3, v: 4.0 },
        ];
        sort_dedup(&mut s);
        assert_eq!(s, vec![Sample { t: 1, v: 2.0 }, Sample { t: 3, v: 4.0 }]);
    }

    #[test]
    fn windows_align_to_epoch() {
        let h2 = 7_200_000;
        assert_eq!(window_start(0, h2), 0);
        assert_eq!(window_start(h2 - 1, h2), 0);
        assert_eq!(window_start(h2, h2), h2);
        assert_eq!(window_start(-1, h2), -h2);
    }
}
