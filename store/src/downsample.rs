//! Downsampling: a series summarised per window of a resolution (5m, 1h), so a 30-day query reads
//! one point per window instead of every raw sample (see `docs/block-format.md`, "Downsampled
//! blocks").
//!
//! Per window, the summary keeps **count, sum, min and max** of the samples in it (stale markers
//! left out), stamped with the time of the window's last sample; computed from a finer summary,
//! the counts and sums add up and the minima and maxima fold, so a 1h window built from 5m
//! windows holds what it would from the raw samples.
//!
//! The **counter aggregate** is a subsequence of the raw samples themselves: the first sample, the
//! last sample of every window, and both samples around every decrease (a counter reset). Prometheus's
//! `rate()` over it counts every reset exactly as over the raw samples (the samples around it are
//! kept), the values between kept samples only add up, so `increase()` differs from the raw answer
//! only by where the range's first and last samples fall; `resets()` counts the real resets. Across
//! blocks it needs no adjustment: a block's first and last samples are raw ones, so a reset exactly
//! at a block boundary is a decrease between two raw samples like any other. A series that decreases
//! in more than a quarter of its windows is a gauge, not a counter: its decreases are not kept.

use crate::series::{Sample, is_stale_nan};

/// Raw data (no downsampling).
pub const RES_RAW: i64 = 0;
/// The first downsampling level: 5 minutes, ms.
pub const RES_5M: i64 = 5 * 60 * 1000;
/// The second downsampling level: 1 hour, ms.
pub const RES_1H: i64 = 60 * 60 * 1000;
/// Every resolution, finest first.
pub const RESOLUTIONS: [i64; 3] = [RES_RAW, RES_5M, RES_1H];

/// A resolution as people write it: `raw`, `5m`, `1h` (or the ms count of another).
pub fn resolution_name(res: i64) -> String {
    match res {
        RES_RAW => "raw".into(),
        RES_5M => "5m".into(),
        RES_1H => "1h".into(),
        ms => format!("{ms}ms"),
    }
}

/// Which summary of downsampled data a selection reads (Thanos's `Aggr`), chosen from the function
/// the selection feeds; raw samples stand for themselves in every view but [`Aggregate::Count`],
/// where each counts one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// `sum / count` per window: plain selectors and every function without its own aggregate.
    #[default]
    Avg,
    /// Samples per window (`count_over_time`, which then sums them).
    Count,
    /// Sum per window (`sum_over_time`).
    Sum,
    /// Minimum per window (`min_over_time`).
    Min,
    /// Maximum per window (`max_over_time`).
    Max,
    /// The counter subsequence (`rate`, `increase`, `irate`, `resets`).
    Counter,
}

impl Aggregate {
    /// The name shown in plans.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Counter => "counter",
        }
    }
}

/// One window's summary, or one raw sample seen as a window of one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Time of the window's last sample (ms).
    pub t: i64,
    /// Number of samples.
    pub count: f64,
    /// Their sum (Kahan-Neumaier, as `sum_over_time`).
    pub sum: f64,
    /// Their minimum (as `min_over_time`: NaN only if every sample is NaN).
    pub min: f64,
    /// Their maximum (as `max_over_time`).
    pub max: f64,
}

impl Window {
    /// A raw sample as a window of one.
    pub fn of_sample(s: &Sample) -> Self {
        Self {
            t: s.t,
            count: 1.0,
            sum: s.v,
            min: s.v,
            max: s.v,
        }
    }

    /// The value a view reads from this window.
    pub fn value(&self, view: Aggregate) -> f64 {
        match view {
            Aggregate::Avg | Aggregate::Counter => self.sum / self.count,
            Aggregate::Count => self.count,
            Aggregate::Sum => self.sum,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
        }
    }
}

/// Raw series as `view` sees them: as they are, or for [`Aggregate::Count`] each sample counting
/// one (stale markers left out). Sources holding only raw samples answer every view this way.
pub fn raw_view(mut series: Vec<crate::Series>, view: Aggregate) -> Vec<crate::Series> {
    if view == Aggregate::Count {
        for s in &mut series {
            s.samples.retain(|x| !is_stale_nan(x.v));
            s.samples.iter_mut().for_each(|x| x.v = 1.0);
        }
        series.retain(|s| !s.samples.is_empty());
    }
    series
}

/// Start of the window of `res` holding `t` (windows are aligned to the epoch).
fn window_of(t: i64, res: i64) -> i64 {
    t.div_euclid(res) * res
}

/// Summarises `input` (sorted by time; raw samples as [`Window::of_sample`], or a finer level's
/// windows) per window of `res`.
pub fn aggregate(input: impl IntoIterator<Item = Window>, res: i64) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    // Kahan compensation of the window being summed.
    let mut c = 0.0;
    let mut current = i64::MIN;
    for w in input {
        let start = window_of(w.t, res);
        match out.last_mut() {
            Some(last) if start == current => {
                let (sum, nc) = kahan_inc(w.sum, last.sum, c);
                (last.sum, c) = (sum, nc);
                last.t = w.t;
                last.count += w.count;
                if w.min < last.min || last.min.is_nan() {
                    last.min = w.min;
                }
                if w.max > last.max || last.max.is_nan() {
                    last.max = w.max;
                }
            }
            _ => {
                finish_sum(out.last_mut(), c);
                c = 0.0;
                current = start;
                out.push(w);
            }
        }
    }
    finish_sum(out.last_mut(), c);
    out
}

/// Adds a window's Kahan compensation to its sum, as `sum_over_time` returns it.
fn finish_sum(w: Option<&mut Window>, c: f64) {
    if let Some(w) = w
        && !w.sum.is_infinite()
    {
        w.sum += c;
    }
}

/// Kahan-Neumaier summation step, as Prometheus's `kahanSumInc` (the querier's sums use it too,
/// so a window's stored sum is what `sum_over_time` gives).
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Raw samples (stale markers dropped) as windows of one.
pub fn raw_windows(samples: &[Sample]) -> impl Iterator<Item = Window> + '_ {
    samples
        .iter()
        .filter(|s| !is_stale_nan(s.v))
        .map(Window::of_sample)
}

/// The counter aggregate of `samples` (raw, or a finer level's counter aggregate) at `res`: see the
/// module docs.
pub fn counter(samples: &[Sample], res: i64) -> Vec<Sample> {
    let samples: Vec<Sample> = samples
        .iter()
        .filter(|s| !is_stale_nan(s.v))
        .copied()
        .collect();
    let Some(first) = samples.first() else {
        return Vec::new();
    };
    let decreases = samples.windows(2).filter(|p| p[1].v < p[0].v).count();
    let windows = 1 + samples
        .windows(2)
        .filter(|p| window_of(p[0].t, res) != window_of(p[1].t, res))
        .count();
    let counter_like = decreases * 4 <= windows.max(8);
    let mut out = vec![*first];
    for (i, s) in samples.iter().enumerate().skip(1) {
        let last_of_window = samples
            .get(i + 1)
            .is_none_or(|next| window_of(next.t, res) != window_of(s.t, res));
        let around_reset = counter_like
            && (samples[i - 1].v > s.v || samples.get(i + 1).is_some_and(|next| next.v < s.v));
        if last_of_window || around_reset {
            out.push(*s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn windows_hold_count_sum_min_max_and_the_last_time() {
        let raw = [s(0, 1.0), s(60_000, 3.0), s(299_999, 2.0), s(300_000, 5.0)];
        let w = aggregate(raw_windows(&raw), RES_5M);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].t, w[0].count, w[0].sum), (299_999, 3.0, 6.0));
        assert_eq!((w[0].min, w[0].max), (1.0, 3.0));
        assert_eq!((w[1].t, w[1].count, w[1].sum), (300_000, 1.0, 5.0));
    }

    #[test]
    fn a_coarser_level_from_a_finer_one_equals_it_from_raw() {
        let raw: Vec<Sample> = (0..2_000)
            .map(|i| s(i * 15_000, ((i * 37) % 101) as f64 / 10.0))
            .collect();
        let direct = aggregate(raw_windows(&raw), RES_1H);
        let via_5m = aggregate(aggregate(raw_windows(&raw), RES_5M), RES_1H);
        assert_eq!(direct, via_5m);
    }

    #[test]
    fn stale_markers_are_not_samples_and_nan_loses_to_numbers() {
        let stale = f64::from_bits(crate::STALE_NAN_BITS);
        let raw = [s(0, f64::NAN), s(1, 2.0), s(2, stale), s(3, 1.0)];
        let w = aggregate(raw_windows(&raw), RES_5M);
        assert_eq!(w[0].count, 3.0);
        assert_eq!((w[0].min, w[0].max, w[0].t), (1.0, 2.0, 3));
        assert!(w[0].sum.is_nan());
        let kept: Vec<i64> = counter(&raw, RES_5M).iter().map(|s| s.t).collect();
        assert_eq!(
            kept,
            vec![0, 1, 3],
            "stale marker dropped, the decrease kept"
        );
    }

    #[test]
    fn the_counter_aggregate_keeps_window_ends_and_both_sides_of_resets() {
        // 15s samples over 15 minutes, a reset at 7m30s (value falls back to 1).
        let raw: Vec<Sample> = (0..60)
            .map(|i| {
                s(
                    i * 15_000,
                    if i < 30 {
                        100.0 + i as f64
                    } else {
                        1.0 + i as f64
                    },
                )
            })
            .collect();
        let c = counter(&raw, RES_5M);
        let times: Vec<i64> = c.iter().map(|x| x.t).collect();
        assert_eq!(times, vec![0, 285_000, 435_000, 450_000, 585_000, 885_000]);
        let resets = |x: &[Sample]| x.windows(2).filter(|p| p[1].v < p[0].v).count();
        assert_eq!(resets(&c), resets(&raw));
        // The increase over the kept samples is the raw one.
        let increase = |x: &[Sample]| {
            x.windows(2)
                .map(|p| {
                    if p[1].v < p[0].v {
                        p[1].v
                    } else {
                        p[1].v - p[0].v
                    }
                })
                .sum::<f64>()
        };
        assert_eq!(increase(&c), increase(&raw));
        // From the 5m aggregate to 1h: the same resets, the same increase.
        let h = counter(&c, RES_1H);
        assert_eq!((resets(&h), increase(&h)), (1, increase(&raw)));
    }

    #[test]
    fn a_gauge_keeps_only_window_ends() {
        let raw: Vec<Sample> = (0..60)
            .map(|i| s(i * 15_000, if i % 2 == 0 { 1.0 } else { 2.0 }))
            .collect();
        let c = counter(&raw, RES_5M);
        assert_eq!(c.len(), 1 + 3, "first sample and three window ends");
    }
}
