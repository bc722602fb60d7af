//! Replica deduplication (HA pairs): series that are equal once the replica labels are dropped are
//! merged into one, as Thanos's querier does with `--query.replica-label`.
//!
//! The merge reads the first replica (in label order) and switches only where it has a gap: no
//! sample within twice its usual scrape interval (the median of its own sample spacing, so scrape
//! jitter and earlier gaps do not move it, unlike the last-delta penalty of Thanos's `pkg/dedup`,
//! which sticks to a replica after a gap, thanos#7364); it goes back to the first replica when that
//! has samples again, so where a merge starts does not change its answer (the querier and each
//! window the compactor merges agree). A replica switched to has its first sample taken at least
//! half an interval after the last one kept, so the merged series is never sampled faster than its
//! replicas.
//!
//! Counters (when the selection feeds `rate`, `increase`, `irate` or `resets`) are adjusted at a
//! switch: replicas scrape at different moments and their clocks differ, so the replica switched to
//! may be behind; read raw, that dip would look like a counter reset and make `rate` spike
//! (thanos#7623, #2890). A dip at a switch is a reset only if the replica itself reset (its own
//! previous sample is higher). Otherwise the replica's values are offset so that, at the last time
//! kept, they equal the last value kept (the replica's value there interpolated from its own
//! samples), and the merged counter grows as the replica's own does, until it really resets.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::source::{
    Fanout, IndexFuture, LabelsFuture, NamesFuture, SelectFuture, SelectHints, Source,
};
use crate::{Labels, Matcher, Sample, Series};

/// Functions whose input is a counter: their input is adjusted at replica switches.
const COUNTER_FUNCTIONS: [&str; 4] = ["rate", "increase", "irate", "resets"];

/// A source whose series are deduplicated over `replica_labels`.
#[derive(Debug, Clone)]
pub struct Dedup {
    inner: Arc<dyn Source>,
    replica_labels: Vec<String>,
}

impl Dedup {
    /// `inner` with series merged over the replica labels (which disappear from results).
    pub fn new(inner: Arc<dyn Source>, replica_labels: Vec<String>) -> Self {
        Self {
            inner,
            replica_labels,
        }
    }
}

impl Source for Dedup {
    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            let series = self.inner.select(matchers, hints).await?;
            let counter = hints
                .func
                .as_deref()
                .is_some_and(|f| COUNTER_FUNCTIONS.contains(&f));
            Ok(dedup_series(
                series,
                &self.replica_labels,
                counter,
                hints.end,
            ))
        })
    }

    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            let mut all: Vec<Labels> = self
                .inner
                .series(matchers, min_t, max_t)
                .await?
                .iter()
                .map(|l| l.remove(&self.replica_labels))
                .collect();
            all.sort();
            all.dedup();
            Ok(all)
        })
    }

    /// One part per source once the replica labels are dropped (a cluster: its replicas' blocks
    /// together, so the merge sees all of them); one part for everything when a part's external
    /// labels are unknown (a shipper's remote-read endpoint).
    fn parts(&self, hints: &SelectHints) -> Option<Vec<Arc<dyn Source>>> {
        let mut groups: BTreeMap<Labels, Vec<Arc<dyn Source>>> = BTreeMap::new();
        for part in self.inner.parts(hints)? {
            let source = part.external_labels()?.remove(&self.replica_labels);
            groups.entry(source).or_default().push(part);
        }
        let parts = groups.into_values().map(|group| {
            let merged = Dedup::new(Arc::new(Fanout(group)), self.replica_labels.clone());
            Arc::new(merged) as Arc<dyn Source>
        });
        Some(parts.collect())
    }

    fn size_hint(&self) -> u64 {
        self.inner.size_hint()
    }

    fn label_index<'a>(&'a self, min_t: i64, max_t: i64) -> IndexFuture<'a> {
        Box::pin(async move {
            let mut index = self.inner.label_index(min_t, max_t).await?;
            for name in &self.replica_labels {
                index.remove(name);
            }
            Ok(index)
        })
    }

    fn label_names<'a>(&'a self, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            let mut names = self.inner.label_names(min_t, max_t).await?;
            for name in &self.replica_labels {
                names.remove(name);
            }
            Ok(names)
        })
    }

    fn label_values<'a>(&'a self, name: &'a str, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            if self.replica_labels.iter().any(|r| r == name) {
                return Ok(Default::default());
            }
            self.inner.label_values(name, min_t, max_t).await
        })
    }
}

/// Series grouped by their labels without `replica_labels`, each group merged (see [`merge`]);
/// sorted by labels.
pub fn dedup_series(
    series: Vec<Series>,
    replica_labels: &[String],
    counter: bool,
    end: i64,
) -> Vec<Series> {
    let mut groups: BTreeMap<Labels, Vec<Vec<Sample>>> = BTreeMap::new();
    for s in series {
        groups
            .entry(s.labels.remove(replica_labels))
            .or_default()
            .push(s.samples);
    }
    groups
        .into_iter()
        .map(|(labels, replicas)| Series {
            labels,
            samples: merge(&replicas, counter, end),
        })
        .collect()
}

/// The usual spacing of `samples`: the median of their time differences (`None` below two).
fn interval(samples: &[Sample]) -> Option<i64> {
    let mut deltas: Vec<i64> = samples.windows(2).map(|w| w[1].t - w[0].t).collect();
    if deltas.is_empty() {
        return None;
    }
    let mid = deltas.len() / 2;
    Some(*deltas.select_nth_unstable(mid).1)
}

/// The replicas' samples (each sorted by time, selected up to `end`, ms) merged into one series:
/// the first replica where it has samples, the others in its gaps; with `counter`, values aligned
/// at switches (see the module documentation).
pub fn merge(replicas: &[Vec<Sample>], counter: bool, end: i64) -> Vec<Sample> {
    match replicas {
        [] => return Vec::new(),
        [one] => return one.clone(),
        _ => {}
    }
    // A replica with a single sample gives no interval: use the others' (or a minute).
    let known: Vec<i64> = replicas.iter().filter_map(|r| interval(r)).collect();
    let fallback = known.iter().copied().min().unwrap_or(60_000).max(1);
    let intervals: Vec<i64> = replicas
        .iter()
        .map(|r| interval(r).unwrap_or(fallback).max(1))
        .collect();
    let n = replicas.len();
    let mut next = vec![0usize; n];
    let mut out: Vec<Sample> = Vec::with_capacity(replicas.iter().map(Vec::len).max().unwrap_or(0));
    let mut current: Option<usize> = None;
    // Added to the current replica's values (counters only).
    let mut offset = 0.0;
    loop {
        let last_t = out.last().map_or(i64::MIN, |s| s.t);
        // Skip what is not after the last sample kept.
        for (r, samples) in replicas.iter().enumerate() {
            next[r] += samples[next[r]..].partition_point(|s| s.t <= last_t);
        }
        // The first replica index `k` of `r` whose sample is at least half an interval after
        // the last kept (no denser than a replica), or its next one if it is the current replica.
        let spaced = |r: usize| {
            if Some(r) == current {
                return next[r];
            }
            let min_t = last_t.saturating_add(intervals[r] / 2);
            next[r] + replicas[r][next[r]..].partition_point(|s| s.t < min_t)
        };
        // The first replica, in the order given, with no gap here: no switch while it has data,
        // and back to it when it has again (so the answer does not depend on where a merge
        // starts: query time and each compacted window agree).
        let no_gap = (0..n).find_map(|r| {
            if last_t == i64::MIN {
                return None;
            }
            let k = spaced(r);
            match replicas[r].get(k) {
                Some(s) => (s.t.saturating_sub(last_t) <= 2 * intervals[r]).then_some(Some((r, k))),
                // Out of samples right before the end of the range, and not in a gap: it goes on
                // past the range, where the others' last samples are not needed.
                None => {
                    let last_r = replicas[r].last()?.t;
                    let alive = end.saturating_sub(last_r) <= 2 * intervals[r]
                        && last_t.saturating_sub(last_r) <= 2 * intervals[r];
                    alive.then_some(None)
                }
            }
        });
        let no_gap = match no_gap {
            Some(None) => break,
            Some(Some(pick)) => Some(pick),
            None => None,
        };
        // Otherwise (a gap in all, or the start) the earliest spaced sample; samples closer than
        // half an interval to the last kept are never taken.
        let pick = no_gap.or_else(|| {
            (0..n)
                .filter_map(|r| replicas[r].get(spaced(r)).map(|s| (s.t, r, spaced(r))))
                .min()
                .map(|(_, r, k)| (r, k))
        });
        let Some((r, k)) = pick else {
            break;
        };
        let stay = current == Some(r);
        if !stay {
            offset = switch_offset(counter, out.last(), &replicas[r], k);
            current = Some(r);
        }
        let s = replicas[r][k];
        let v = if !counter || s.v.is_nan() {
            // Stale markers keep their bits: no arithmetic on them.
            s.v
        } else {
            if stay && k > 0 && replicas[r][k - 1].v > s.v {
                // The replica itself reset: the reset shows.
                offset = 0.0;
            }
            s.v + offset
        };
        out.push(Sample { t: s.t, v });
        next[r] = k + 1;
    }
    out
}

/// The offset that makes a counter continue from `last` on replica samples `samples[k..]`.
/// None if the replica itself reset just before `k`. Otherwise the replica's value at `last.t`,
/// interpolated between its own samples around it, is aligned with `last`, so the merged counter
/// grows from there as the replica's own does (a replica behind or ahead by a constant amount, as
/// one whose clock is off, is neither a reset nor a jump). Without a sample of its own at or
/// before `last.t`, a dip is lifted to `last`.
fn switch_offset(counter: bool, last: Option<&Sample>, samples: &[Sample], k: usize) -> f64 {
    let (Some(last), Some(s)) = (last, samples.get(k)) else {
        return 0.0;
    };
    if !counter || last.v.is_nan() || s.v.is_nan() {
        return 0.0;
    }
    if k > 0 && samples[k - 1].v > s.v {
        return 0.0;
    }
    let before = samples[..k].iter().rposition(|p| p.t <= last.t);
    if let Some(i) = before {
        let p = samples[i];
        let monotonic = samples[i..=k].windows(2).all(|w| w[0].v <= w[1].v);
        if monotonic && !p.v.is_nan() && s.t > p.t {
            let at_last = p.v + (s.v - p.v) * (last.t - p.t) as f64 / (s.t - p.t) as f64;
            return last.v - at_last;
        }
    }
    (last.v - s.v).max(0.0)
}

#[cfg(test)]
mod tests;
