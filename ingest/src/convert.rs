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
pub fn decode(version: Version, body: Bytes, cache: &SeriesCache) -> Result<Decoded, String> {
    match version {
        Version::V1 => {
            let req = v1_ref::WriteRequest::decode(body)
                .map_err(|e| format!("decode protobuf WriteRequest: {e}"))?;
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
            for (i, ts) in req.timeseries.iter().enumerate() {
                if labels[i].is_none() {
                    let built = check_labels(i, to_labels(i, &ts.labels)?)?;
                    new.push((hashes[i], built.clone()));
                    labels[i] = Some(built);
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
            let mut out = Decoded::default();
            for (ts, labels) in req.timeseries.into_iter().zip(labels) {
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
                out.series.push(Series {
                    labels: labels.unwrap_or_default(),
                    samples,
                });
            }
            Ok(out)
        }
        Version::V2 => {
            let req = v2::Request::decode(body)
                .map_err(|e| format!("decode protobuf io.prometheus.write.v2.Request: {e}"))?;
            if req.symbols.first().is_some_and(|s| !s.is_empty()) {
                return Err("symbols[0] must be the empty string".into());
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
                let labels = check_labels(i, labels)?;
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

fn check_labels(i: usize, labels: Vec<Label>) -> Result<Labels, String> {
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
        for (labels, want) in cases {
            let err = decode(Version::V1, v1_req(&labels), &SeriesCache::new()).unwrap_err();
            assert!(
                err.contains(want) && err.contains("series 0"),
                "{labels:?}: {err}"
            );
        }
        let err = decode(
            Version::V1,
            Bytes::from_static(b"\x0a\x05\x0a\x03\x0a\x01\xff"),
            &SeriesCache::new(),
        )
        .unwrap_err();
        assert!(err.contains("label 0 name is not valid UTF-8"), "{err}");
        let err = decode(
            Version::V1,
            Bytes::from_static(b"\x0a\x05\x0a"),
            &SeriesCache::new(),
        )
        .unwrap_err();
        assert!(err.contains("decode protobuf"), "{err}");
    }

    #[test]
    fn known_label_sets_come_from_the_cache() {
        let cache = SeriesCache::new();
        let up = [("__name__", "up"), ("job", "a")];
        let first = decode(Version::V1, v1_req(&up), &cache).unwrap();
        let again = decode(Version::V1, v1_req(&up), &cache).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(first.series[0].labels, again.series[0].labels);
        assert_eq!(again.series[0].labels, Labels::from_pairs(up));
        let other = decode(
            Version::V1,
            v1_req(&[("__name__", "up"), ("job", "b")]),
            &cache,
        )
        .unwrap();
        assert_eq!(other.series[0].labels.get("job"), Some("b"));
        assert_eq!(cache.len(), 2);
        // Refused sets are not remembered.
        assert!(
            decode(
                Version::V1,
                v1_req(&[("job", "a"), ("__name__", "up")]),
                &cache
            )
            .is_err()
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
        let d = decode(Version::V2, req.encode_to_vec().into(), &SeriesCache::new()).unwrap();
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
            decode(Version::V2, bad.encode_to_vec().into(), &SeriesCache::new())
                .unwrap_err()
                .contains("outside the symbol table")
        );
    }
}
