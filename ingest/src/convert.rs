//! Remote-write requests (protobuf) to store series: the only file that sees both `proto` and
//! `store` types. Checks what the remote-write specs require of senders.

use bytes::Bytes;
use fleetscope_proto::{v1, v2};
use fleetscope_store::labels::METRIC_NAME;
use fleetscope_store::{Label, Labels, Sample, Series};
use prost::Message;

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

/// Decodes an uncompressed protobuf body and validates every series.
pub fn decode(version: Version, body: Bytes) -> Result<Decoded, String> {
    match version {
        Version::V1 => {
            let req = v1::WriteRequest::decode(body)
                .map_err(|e| format!("decode protobuf WriteRequest: {e}"))?;
            let mut out = Decoded::default();
            for (i, ts) in req.timeseries.into_iter().enumerate() {
                out.histograms += ts.histograms.len();
                out.exemplars += ts.exemplars.len();
                let labels: Vec<Label> = ts
                    .labels
                    .into_iter()
                    .map(|l| Label {
                        name: l.name,
                        value: l.value,
                    })
                    .collect();
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
        let ok = decode(Version::V1, v1_req(&[("__name__", "up"), ("job", "a")])).unwrap();
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
            let err = decode(Version::V1, v1_req(&labels)).unwrap_err();
            assert!(
                err.contains(want) && err.contains("series 0"),
                "{labels:?}: {err}"
            );
        }
        let err = decode(
            Version::V1,
            Bytes::from_static(b"\x0a\x05\x0a\x03\x0a\x01\xff"),
        )
        .unwrap_err();
        assert!(err.contains("decode protobuf"), "{err}");
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
        let d = decode(Version::V2, req.encode_to_vec().into()).unwrap();
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
            decode(Version::V2, bad.encode_to_vec().into())
                .unwrap_err()
                .contains("outside the symbol table")
        );
    }
}
