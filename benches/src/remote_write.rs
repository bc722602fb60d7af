//! Remote-write 1.0 request bodies, as Prometheus sends them (protobuf, snappy block format).

use std::collections::BTreeMap;

use fleetscope_proto::v1;
use prost::Message;

/// One compressed `WriteRequest` from `(t, series index, value)` samples; `labels_of(i)` gives the
/// labels of series `i` (sorted by name). Samples of a series keep their order.
pub fn encode(
    samples: &[(i64, usize, f64)],
    labels_of: impl Fn(usize) -> Vec<v1::Label>,
) -> Vec<u8> {
    let mut by_series: BTreeMap<usize, Vec<v1::Sample>> = BTreeMap::new();
    for &(t, i, v) in samples {
        by_series.entry(i).or_default().push(v1::Sample {
            value: v,
            timestamp: t,
        });
    }
    let req = v1::WriteRequest {
        timeseries: by_series
            .into_iter()
            .map(|(i, samples)| v1::TimeSeries {
                labels: labels_of(i),
                samples,
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    // Compressing a buffer we just built cannot fail short of running out of memory.
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap_or_default()
}
