//! Remote-write requests (protobuf) to store series, checking what the remote-write specs require
//! of senders; label sets already seen are recognised from the request bytes ([`SeriesCache`]).

use std::hash::Hasher;
use std::sync::Mutex;

use bytes::Bytes;
use fleetscope_proto::{v1_ref, v2};
use fleetscope_store::labels::METRIC_NAME;
use fleetscope_store::{Label, Labels, Sample, Series};
use hashbrown::HashTable;
use prost::Message;
use rustc_hash::FxHasher;

/// Which remote-write protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `prometheus.WriteRequest` (1.0).
    V1,
    /// `io.prometheus.write.v2.Request` (2.0).
    V2,
}

/// A decoded request: float series, and what it carried that is not stored yet.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Series with float samples.
    pub series: Vec<Series>,
    /// Native histogram samples received (not stored).
    pub histograms: usize,
    /// Exemplars received (not stored).
    pub exemplars: usize,
    /// Series refused (invalid labels, or past a [`Limits`] limit) with their samples.
    pub refused_series: usize,
    /// Samples of the refused series.
    pub refused_samples: usize,
    /// Why the first refused series was refused, naming it.
    pub first_refused: Option<String>,
}

/// Limits on what one request may hold, as Mimir has them: a series past one is refused (with its
/// samples), the rest of the request is kept.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most labels of a series, `__name__` included.
    pub max_label_names: usize,
    /// Longest label name, bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, bytes.
    pub max_label_value_bytes: usize,
    /// Most series in one request (a request past it is refused whole).
    pub max_series: usize,
}

impl Default for Limits {
    /// Mimir's name and value lengths; more label names than Mimir's 30 (one cluster's own
    /// Prometheus, kube-state-metrics' label series included); series bounded by the body size.
    fn default() -> Self {
        Self {
            max_label_names: 64,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 2048,
            max_series: 1_000_000,
        }
    }
}

impl Decoded {
    fn refuse(&mut self, why: String, samples: usize) {
        self.refused_series += 1;
        self.refused_samples += samples;
        self.first_refused.get_or_insert(why);
    }
}

/// Label sets of recent requests, recognised from a request's bytes: a label set seen before is
/// neither decoded into strings nor validated again, and comes back as the same shared [`Labels`]
/// (which the head then finds by pointer). Holds at most [`SeriesCache::MAX`] sets, forgetting all
/// when full (churned series go with them).
#[derive(Debug, Default)]
pub struct SeriesCache {
    table: Mutex<HashTable<(u64, Labels)>>,
}

impl SeriesCache {
    /// Most label sets held.
    pub const MAX: usize = 1 << 20;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Label sets held.
    pub fn len(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// True if no label set is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes an uncompressed protobuf body and validates every series; label sets already in `cache`
/// are taken from it, new ones are added.
pub fn decode(
    version: Version,
    body: Bytes,
    cache: &SeriesCache,
    limits: &Limits,
) -> Result<Decoded, String> {
    let too_many = |n: usize| {
        format!(
            "{n} series in one request; at most {} (--ingest.max-series-per-request)",
            limits.max_series
        )
    };
    match version {
        Version::V1 => {
            let req = v1_ref::WriteRequest::decode(body)
                .map_err(|e| format!("decode protobuf WriteRequest: {e}"))?;
            if req.timeseries.len() > limits.max_series {
                return Err(too_many(req.timeseries.len()));
            }
            let hashes: Vec<u64> = req
                .timeseries
                .iter()
                .map(|ts| raw_hash(&ts.labels))
                .collect();
            let mut labels: Vec<Option<Labels>> = match cache.table.lock() {
                Ok(table) => hashes
                    .iter()
                    .zip(&req.timeseries)
                    .map(|(&h, ts)| {
                        table
                            .find(h, |(eh, l)| *eh == h && same(l, &ts.labels))
                            .map(|(_, l)| l.clone())
                    })
                    .collect(),
                Err(_) => vec![None; hashes.len()],
            };
            let mut new = Vec::new();
            let mut out = Decoded::default();
            for (i, ts) in req.timeseries.iter().enumerate() {
                if labels[i].is_none() {
                    match to_labels(i, &ts.labels).and_then(|l| check_labels(i, l, limits)) {
                        Ok(built) => {
                            new.push((hashes[i], built.clone()));
                            labels[i] = Some(built);
                        }
                        Err(why) => out.refuse(why, ts.samples.len()),
                    }
                }
            }
            if !new.is_empty()
                && let Ok(mut table) = cache.table.lock()
            {
                if table.len() + new.len() > SeriesCache::MAX {
                    table.clear();
                }
                for (h, l) in new {
                    if table.find(h, |(eh, x)| *eh == h && *x == l).is_none() {
                        table.insert_unique(h, (h, l), |(eh, _)| *eh);
                    }
                }
            }
            for (ts, labels) in req.timeseries.into_iter().zip(labels) {
                let Some(labels) = labels else { continue };
                out.histograms += ts.histograms.len();
                out.exemplars += ts.exemplars.len();
                let samples = ts
                    .samples
                    .iter()
                    .map(|s| Sample {
                        t: s.timestamp,
                        v: s.value,
                    })
                    .collect();
                out.series.push(Series { labels, samples });
            }
            Ok(out)
        }
        Version::V2 => {
            let req = v2::Request::decode(body)
                .map_err(|e| format!("decode protobuf io.prometheus.write.v2.Request: {e}"))?;
            if req.symbols.first().is_some_and(|s| !s.is_empty()) {
                return Err("symbols[0] must be the empty string".into());
            }
            if req.timeseries.len() > limits.max_series {
                return Err(too_many(req.timeseries.len()));
            }
            let mut out = Decoded::default();
            for (i, ts) in req.timeseries.into_iter().enumerate() {
                out.histograms += ts.histograms.len();
                out.exemplars += ts.exemplars.len();
                if ts.labels_refs.len() % 2 != 0 {
                    return Err(format!("series {i}: odd number of label references"));
                }
                let symbol = |r: u32| {
                    req.symbols
                        .get(r as usize)
                        .cloned()
                        .ok_or_else(|| format!("series {i}: label reference {r} is outside the symbol table ({} symbols)", req.symbols.len()))
                };
                let labels = ts
                    .labels_refs
                    .chunks(2)
                    .map(|p| {
                        Ok(Label {
                            name: symbol(p[0])?,
                            value: symbol(p[1])?,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let labels = match check_labels(i, labels, limits) {
                    Ok(labels) => labels,
                    Err(why) => {
                        out.refuse(why, ts.samples.len());
                        continue;
                    }
                };
                let samples = ts
                    .samples
                    .iter()
                    .map(|s| Sample {
                        t: s.timestamp,
                        v: s.value,
                    })
                    .collect();
                out.series.push(Series { labels, samples });
            }
            Ok(out)
        }
    }
}

/// Hash of a label set as the request spells it.
fn raw_hash(labels: &[v1_ref::Label]) -> u64 {
    let mut h = FxHasher::default();
    for l in labels {
        h.write(&l.name);
        h.write_u8(0xff);
        h.write(&l.value);
        h.write_u8(0xff);
    }
    h.finish()
}

/// Whether `labels` is spelled `raw` in a request.
fn same(labels: &Labels, raw: &[v1_ref::Label]) -> bool {
    labels.len() == raw.len()
        && labels
            .iter()
            .zip(raw)
            .all(|(l, r)| l.name.as_bytes() == r.name && l.value.as_bytes() == r.value)
}

/// Request label bytes as strings, refusing invalid UTF-8.
fn to_labels(i: usize, raw: &[v1_ref::Label]) -> Result<Vec<Label>, String> {
    let utf8 = |what: &str, j: usize, b: &Bytes| {
        String::from_utf8(b.to_vec())
            .map_err(|_| format!("series {i}: label {j} {what} is not valid UTF-8"))
    };
    raw.iter()
        .enumerate()
        .map(|(j, l)| {
            Ok(Label {
                name: utf8("name", j, &l.name)?,
                value: utf8("value", j, &l.value)?,
            })
        })
        .collect()
}

fn check_labels(i: usize, labels: Vec<Label>, limits: &Limits) -> Result<Labels, String> {
    let shown = || {
        let pairs: Vec<String> = labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        format!("{{{}}}", pairs.join(", "))
    };
    if !labels.iter().any(|l| l.name == METRIC_NAME) {
        return Err(format!("series {i} {}: no {METRIC_NAME} label", shown()));
    }
    if labels.len() > limits.max_label_names {
        return Err(format!(
            "series {i} {}: {} labels; at most {} (--ingest.max-label-names-per-series)",
            shown(),
            labels.len(),
            limits.max_label_names
        ));
    }
    for l in &labels {
        if l.name.len() > limits.max_label_name_bytes {
            return Err(format!(
                "series {i}: label name of {} bytes ({:?}...); at most {} (--ingest.max-label-name-length)",
                l.name.len(),
                l.name.chars().take(40).collect::<String>(),
                limits.max_label_name_bytes
            ));
        }
        if l.value.len() > limits.max_label_value_bytes {
            return Err(format!(
                "series {i}: value of label {} is {} bytes ({:?}...); at most {} (--ingest.max-label-value-length)",
                l.name.chars().take(100).collect::<String>(),
                l.value.len(),
                l.value.chars().take(40).collect::<String>(),
                limits.max_label_value_bytes
            ));
        }
    }
    // Describe the series only when it is refused: formatting is costly on the hot path.
    Labels::check_sorted(&labels).map_err(|e| format!("series {i} {}: {e}", shown()))?;
    Labels::from_sorted(labels).map_err(|e| format!("series {i}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetscope_proto::v1;

    fn v1_req(labels: &[(&str, &str)]) -> Bytes {
        v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| v1::Label {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                samples: vec![v1::Sample {
                    value: 1.0,
                    timestamp: 5,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        }
        .encode_to_vec()
        .into()
    }

    #[test]
    fn validates_labels_and_names_the_series() {
        let ok = decode(
            Version::V1,
            v1_req(&[("__name__", "up"), ("job", "a")]),
            &SeriesCache::new(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(ok.series[0].samples, vec![Sample { t: 5, v: 1.0 }]);
        let cases = [
            (vec![("job", "a"), ("__name__", "up")], "not sorted"),
            (
                vec![("__name__", "up"), ("job", "a"), ("job", "b")],
                "duplicate label name",
            ),
            (vec![("", "x"), ("__name__", "up")], "empty name"),
            (vec![("__name__", "up"), ("job", "")], "empty value"),
            (vec![("job", "a")], "no __name__ label"),
        ];
        let long = "x".repeat(3000);
        let many: Vec<(String, String)> = std::iter::once(("__name__".into(), "up".into()))
            .chain((0..70).map(|i| (format!("l{i:02}"), "v".into())))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let cases = cases.into_iter().chain([
            (
                vec![("__name__", "up"), ("job", long.as_str())],
                "is 3000 bytes",
            ),
            (many, "71 labels; at most 64"),
        ]);
        for (labels, want) in cases {
            // The series is refused with its samples, named; the request is not.
            let d = decode(
                Version::V1,
                v1_req(&labels),
                &SeriesCache::new(),
                &Limits::default(),
            )
            .unwrap();
            assert!(d.series.is_empty() && d.refused_series == 1 && d.refused_samples == 1);
            let err = d.first_refused.unwrap();
            assert!(
                err.contains(want) && err.contains("series 0"),
                "{labels:?}: {err}"
            );
        }
        let err = decode(
            Version::V1,
            Bytes::from_static(b"\x0a\x05\x0a\x03\x0a\x01\xff"),
            &SeriesCache::new(),
            &Limits::default(),
        )
        .unwrap()
        .first_refused
        .unwrap();
        assert!(err.contains("label 0 name is not valid UTF-8"), "{err}");
        let tight = Limits {
            max_series: 0,
            ..Limits::default()
        };
        let err = decode(
            Version::V1,
            v1_req(&[("__name__", "up")]),
            &SeriesCache::new(),
            &tight,
        )
        .unwrap_err();
        assert!(err.contains("1 series in one request; at most 0"), "{err}");
        let err = decode(
            Version::V1,
            Bytes::from_static(b"\x0a\x05\x0a"),
            &SeriesCache::new(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.contains("decode protobuf"), "{err}");
    }

    #[test]
    fn known_label_sets_come_from_the_cache() {
        let cache = SeriesCache::new();
        let up = [("__name__", "up"), ("job", "a")];
        let first = decode(Version::V1, v1_req(&up), &cache, &Limits::default()).unwrap();
        let again = decode(Version::V1, v1_req(&up), &cache, &Limits::default()).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(first.series[0].labels, again.series[0].labels);
        assert_eq!(again.series[0].labels, Labels::from_pairs(up));
        let other = decode(
            Version::V1,
            v1_req(&[("__name__", "up"), ("job", "b")]),
            &cache,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(other.series[0].labels.get("job"), Some("b"));
        assert_eq!(cache.len(), 2);
        // Refused sets are not remembered.
        assert!(
            decode(
                Version::V1,
                v1_req(&[("job", "a"), ("__name__", "up")]),
                &cache,
                &Limits::default()
            )
            .unwrap()
            .first_refused
            .is_some()
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn v2_resolves_symbols() {
        let req = v2::Request {
            symbols: vec![
                "".into(),
                "__name__".into(),
                "up".into(),
                "job".into(),
                "api".into(),
            ],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![v2::Sample {
                    value: 2.0,
                    timestamp: 7,
                }],
                histograms: vec![v2::Histogram::default()],
                ..Default::default()
            }],
        };
        let d = decode(
            Version::V2,
            req.encode_to_vec().into(),
            &SeriesCache::new(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            d.series[0].labels,
            Labels::from_pairs([("__name__", "up"), ("job", "api")])
        );
        assert_eq!(d.histograms, 1);
        let bad = v2::Request {
            symbols: vec!["".into()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 9],
                ..Default::default()
            }],
        };
        assert!(
            decode(
                Version::V2,
                bad.encode_to_vec().into(),
                &SeriesCache::new(),
                &Limits::default()
            )
            .unwrap_err()
            .contains("outside the symbol table")
        );
    }
}
