//! Remote-write requests (protobuf) to store series, checking what the remote-write specs require
//! of senders; label sets already seen are recognised from the request bytes ([`SeriesCache`]).

use std::hash::Hasher;
use std::sync::Mutex;

use bytes::Bytes;
use fleetscope_proto::v2;
use fleetscope_store::labels::METRIC_NAME;
use fleetscope_store::{Label, Labels, Sample};
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};

use crate::batch::Batch;
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
    pub series: Batch,
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
            let req =
                RawV1::read(&body).map_err(|e| format!("decode protobuf WriteRequest: {e}"))?;
            if req.series.len() > limits.max_series {
                return Err(too_many(req.series.len()));
            }
            let raw = |s: &RawSeries| &req.labels[s.labels.clone()];
            let hashes: Vec<u64> = req.series.iter().map(|s| raw_hash(&body, raw(s))).collect();
            let mut labels: Vec<Option<Labels>> = match cache.table.lock() {
                Ok(table) => hashes
                    .iter()
                    .zip(&req.series)
                    .map(|(&h, s)| {
                        table
                            .find(h, |(eh, l)| *eh == h && same(l, &body, raw(s)))
                            .map(|(_, l)| l.clone())
                    })
                    .collect(),
                Err(_) => vec![None; hashes.len()],
            };
            let mut new = Vec::new();
            let mut out = Decoded::default();
            for (i, s) in req.series.iter().enumerate() {
                if labels[i].is_none() {
                    match to_labels(i, &body, raw(s)).and_then(|l| check_labels(i, l, limits)) {
                        Ok(built) => {
                            new.push((hashes[i], built.clone()));
                            labels[i] = Some(built);
                        }
                        Err(why) => {
                            out.refuse(why, s.samples.len());
                            continue;
                        }
                    }
                }
                out.histograms += s.histograms;
                out.exemplars += s.exemplars;
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
            let ends = req.series.iter().map(|s| s.samples.end);
            out.series = Batch::from_flat(req.samples, labels.into_iter().zip(ends));
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
                let samples = ts.samples.iter().map(|s| Sample {
                    t: s.timestamp,
                    v: s.value,
                });
                out.series.push(labels, samples);
            }
            Ok(out)
        }
    }
}

/// A remote-write 1.0 `WriteRequest` read in place: label names and values stay byte ranges of
/// the body, and the samples of all series go to one buffer, so a request costs a few allocations
/// whatever its number of series (prost would build two `Vec`s a series). Same wire format as
/// `fleetscope_proto::v1::WriteRequest`; metadata and unknown fields are skipped.
#[derive(Debug, Default)]
struct RawV1 {
    series: Vec<RawSeries>,
    /// Name and value of every label, as byte ranges of the body.
    labels: Vec<(Span, Span)>,
    samples: Vec<Sample>,
}

/// One `TimeSeries` of a [`RawV1`]: its labels and samples as ranges of the request's.
#[derive(Debug)]
struct RawSeries {
    labels: std::ops::Range<usize>,
    samples: std::ops::Range<usize>,
    histograms: usize,
    exemplars: usize,
}

/// Bytes `start..end` of a request body.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        &body[self.start..self.end]
    }
}

/// A protobuf field's value.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// Reads the next field of `buf`, `None` at its end.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<Option<(u32, Field<'a>)>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let (tag, wire) = decode_key(buf).map_err(|e| e.to_string())?;
    let need = |buf: &&[u8], n: usize| {
        if buf.len() < n {
            Err(format!("field {tag}: {n} bytes needed, {} left", buf.len()))
        } else {
            Ok(())
        }
    };
    let field = match wire {
        WireType::Varint => Field::Varint(decode_varint(buf).map_err(|e| e.to_string())?),
        WireType::SixtyFourBit => {
            need(buf, 8)?;
            Field::Fixed64(buf.get_u64_le())
        }
        WireType::ThirtyTwoBit => {
            need(buf, 4)?;
            buf.advance(4);
            Field::Fixed32
        }
        WireType::LengthDelimited => {
            let len = decode_varint(buf).map_err(|e| e.to_string())?;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            need(buf, len)?;
            let (field, rest) = buf.split_at(len);
            *buf = rest;
            Field::Bytes(field)
        }
        WireType::StartGroup | WireType::EndGroup => {
            return Err(format!("field {tag}: groups are not supported"));
        }
    };
    Ok(Some((tag, field)))
}

impl RawV1 {
    /// Reads a body; an error says what is wrong and at which byte.
    fn read(body: &[u8]) -> Result<Self, String> {
        let mut req = RawV1::default();
        let mut buf = body;
        let at = |buf: &[u8], e: String| format!("{e} (at byte {})", body.len() - buf.len());
        loop {
            let before = buf;
            match next_field(&mut buf).map_err(|e| at(before, e))? {
                None => return Ok(req),
                Some((1, Field::Bytes(ts))) => {
                    req.read_series(body, ts)
                        .map_err(|e| format!("timeseries {}: {e}", req.series.len()))?;
                }
                Some((1, _)) => return Err(at(before, "timeseries: wrong wire type".into())),
                Some(_) => {}
            }
        }
    }

    fn read_series(&mut self, body: &[u8], mut buf: &[u8]) -> Result<(), String> {
        let offset = |b: &[u8]| b.as_ptr() as usize - body.as_ptr() as usize;
        let at = |b: &[u8], e: String| format!("{e} (at byte {})", offset(b));
        let (labels, samples) = (self.labels.len(), self.samples.len());
        let (mut histograms, mut exemplars) = (0, 0);
        loop {
            let before = buf;
            let Some((tag, field)) = next_field(&mut buf).map_err(|e| at(before, e))? else {
                break;
            };
            match (tag, field) {
                (1, Field::Bytes(mut label)) => {
                    let (mut name, mut value) =
                        (Span { start: 0, end: 0 }, Span { start: 0, end: 0 });
                    while let Some((tag, field)) =
                        next_field(&mut label).map_err(|e| at(before, format!("label: {e}")))?
                    {
                        match (tag, field) {
                            (1 | 2, Field::Bytes(b)) => {
                                let span = Span {
                                    start: offset(b),
                                    end: offset(b) + b.len(),
                                };
                                *(if tag == 1 { &mut name } else { &mut value }) = span;
                            }
                            (1 | 2, _) => {
                                return Err(at(before, "label: wrong wire type".into()));
                            }
                            _ => {}
                        }
                    }
                    self.labels.push((name, value));
                }
                (2, Field::Bytes(mut sample)) => {
                    let mut s = Sample { t: 0, v: 0.0 };
                    while let Some((tag, field)) =
                        next_field(&mut sample).map_err(|e| at(before, format!("sample: {e}")))?
                    {
                        match (tag, field) {
                            (1, Field::Fixed64(v)) => s.v = f64::from_bits(v),
                            // int64: two's complement in ten bytes, as prost reads it.
                            (2, Field::Varint(t)) => s.t = t as i64,
                            (1 | 2, _) => {
                                return Err(at(before, "sample: wrong wire type".into()));
                            }
                            _ => {}
                        }
                    }
                    self.samples.push(s);
                }
                (3, Field::Bytes(_)) => exemplars += 1,
                (4, Field::Bytes(_)) => histograms += 1,
                (1..=4, _) => return Err(at(before, format!("field {tag}: wrong wire type"))),
                _ => {}
            }
        }
        self.series.push(RawSeries {
            labels: labels..self.labels.len(),
            samples: samples..self.samples.len(),
            histograms,
            exemplars,
        });
        Ok(())
    }
}

/// Hash of a label set as the request spells it.
fn raw_hash(body: &[u8], labels: &[(Span, Span)]) -> u64 {
    let mut h = FxHasher::default();
    for (name, value) in labels {
        h.write(name.of(body));
        h.write_u8(0xff);
        h.write(value.of(body));
        h.write_u8(0xff);
    }
    h.finish()
}

/// Whether `labels` is spelled `raw` in a request.
fn same(labels: &Labels, body: &[u8], raw: &[(Span, Span)]) -> bool {
    labels.len() == raw.len()
        && labels.iter().zip(raw).all(|(l, (name, value))| {
            l.name.as_bytes() == name.of(body) && l.value.as_bytes() == value.of(body)
        })
}

/// Request label bytes as strings, refusing invalid UTF-8.
fn to_labels(i: usize, body: &[u8], raw: &[(Span, Span)]) -> Result<Vec<Label>, String> {
    let utf8 = |what: &str, j: usize, b: &[u8]| {
        String::from_utf8(b.to_vec())
            .map_err(|_| format!("series {i}: label {j} {what} is not valid UTF-8"))
    };
    raw.iter()
        .enumerate()
        .map(|(j, (name, value))| {
            Ok(Label {
                name: utf8("name", j, name.of(body))?,
                value: utf8("value", j, value.of(body))?,
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
    use fleetscope_store::Series;
    use proptest::prelude::*;

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

    /// The first series of a decoded request.
    fn series0(d: &Decoded) -> Series {
        let (labels, samples) = d.series.iter().next().expect("a series");
        Series {
            labels: labels.clone(),
            samples: samples.to_vec(),
        }
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
        assert_eq!(series0(&ok).samples, vec![Sample { t: 5, v: 1.0 }]);
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
        assert_eq!(series0(&first).labels, series0(&again).labels);
        assert_eq!(series0(&again).labels, Labels::from_pairs(up));
        let other = decode(
            Version::V1,
            v1_req(&[("__name__", "up"), ("job", "b")]),
            &cache,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(series0(&other).labels.get("job"), Some("b"));
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
            series0(&d).labels,
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

    fn arb_request() -> impl Strategy<Value = v1::WriteRequest> {
        let label =
            ("[a-c_]{0,3}", "[a-z0-9é]{0,4}").prop_map(|(name, value)| v1::Label { name, value });
        let sample = (any::<f64>(), any::<i64>())
            .prop_map(|(value, timestamp)| v1::Sample { value, timestamp });
        let series = (
            prop::collection::vec(label, 0..4),
            prop::collection::vec(sample, 0..4),
            0..2usize,
            0..2usize,
        )
            .prop_map(|(labels, samples, e, h)| v1::TimeSeries {
                labels,
                samples,
                exemplars: vec![v1::Exemplar::default(); e],
                histograms: vec![v1::Histogram::default(); h],
            });
        prop::collection::vec(series, 0..6).prop_map(|timeseries| v1::WriteRequest {
            timeseries,
            metadata: vec![v1::MetricMetadata::default()],
        })
    }

    proptest! {
        /// The in-place reader sees what prost decodes: every label's bytes and every sample's bits.
        #[test]
        fn reading_in_place_agrees_with_prost(req in arb_request()) {
            let body = req.encode_to_vec();
            let raw = RawV1::read(&body).unwrap();
            let back = v1::WriteRequest::decode(body.as_slice()).unwrap();
            prop_assert_eq!(raw.series.len(), back.timeseries.len());
            for (r, ts) in raw.series.iter().zip(&back.timeseries) {
                let labels: Vec<(&[u8], &[u8])> = raw.labels[r.labels.clone()]
                    .iter()
                    .map(|(n, v)| (n.of(&body), v.of(&body)))
                    .collect();
                let want: Vec<(&[u8], &[u8])> =
                    ts.labels.iter().map(|l| (l.name.as_bytes(), l.value.as_bytes())).collect();
                prop_assert_eq!(labels, want);
                let samples: Vec<(i64, u64)> =
                    raw.samples[r.samples.clone()].iter().map(|s| (s.t, s.v.to_bits())).collect();
                let want: Vec<(i64, u64)> =
                    ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect();
                prop_assert_eq!(samples, want);
                prop_assert_eq!((r.exemplars, r.histograms), (ts.exemplars.len(), ts.histograms.len()));
            }
        }

        /// A cut-off body is an error naming a byte inside it, never a panic.
        #[test]
        fn truncated_bodies_are_errors_with_a_position(req in arb_request(), cut in 1usize..64) {
            let body = req.encode_to_vec();
            let cut = body.len().saturating_sub(cut);
            if let Err(e) = RawV1::read(&body[..cut]) {
                let at: usize = e.rsplit("at byte ").next().and_then(|n| n.trim_end_matches(')').parse().ok()).unwrap();
                prop_assert!(at <= cut, "{e}");
            }
        }
    }
}
