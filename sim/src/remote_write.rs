//! Remote-write 1.0 request bodies, as Prometheus sends them (protobuf, snappy block format).
//!
//! A series' labels are encoded once ([`encode_labels`]) and copied into every request that carries
//! the series, so building a large load costs little more than compressing it.

use fleetscope_proto::v1;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// The protobuf bytes of a series' labels inside a `TimeSeries` (its repeated field 1); `labels`
/// sorted by name.
pub fn encode_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    v1::TimeSeries {
        labels: labels
            .into_iter()
            .map(|(name, value)| v1::Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// One compressed `WriteRequest` from `(t, series index, value)` samples; `labels_of(i)` gives the
/// [`encode_labels`] bytes of series `i`. One `TimeSeries` per series, in index order; the samples
/// of a series keep their order.
pub fn encode<L: AsRef<[u8]>>(
    samples: &[(i64, usize, f64)],
    labels_of: impl Fn(usize) -> L,
) -> Vec<u8> {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.sort_by_key(|&k| samples[k].1); // stable: time order within a series is kept
    let mut out = Vec::with_capacity(samples.len() * 64);
    for group in order.chunk_by(|&a, &b| samples[a].1 == samples[b].1) {
        let labels = labels_of(samples[group[0]].1);
        let labels = labels.as_ref();
        let msgs: Vec<v1::Sample> = group
            .iter()
            .map(|&k| v1::Sample {
                value: samples[k].2,
                timestamp: samples[k].0,
            })
            .collect();
        let len = labels.len()
            + msgs
                .iter()
                .map(|m| 1 + encoded_len_varint(m.encoded_len() as u64) + m.encoded_len())
                .sum::<usize>();
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(len as u64, &mut out);
        out.extend_from_slice(labels);
        for m in &msgs {
            encode_key(2, WireType::LengthDelimited, &mut out);
            // Writing into a Vec cannot run out of space.
            m.encode_length_delimited(&mut out).unwrap_or_default();
        }
    }
    // Compressing a buffer we just built cannot fail short of running out of memory.
    snap::raw::Encoder::new()
        .compress_vec(&out)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_the_write_request_it_stands_for() {
        let labels = [
            encode_labels([("__name__", "up"), ("job", "a")]),
            encode_labels([("__name__", "up"), ("job", "b")]),
        ];
        let samples = [
            (1000, 1, 2.0),
            (1000, 0, 0.0),
            (2000, 1, -1.5),
            (2000, 0, 1.0),
        ];
        let body = encode(&samples, |i| &labels[i]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = v1::WriteRequest::decode(raw.as_slice()).unwrap();
        let got: Vec<(String, Vec<(i64, f64)>)> = req
            .timeseries
            .iter()
            .map(|ts| {
                (
                    ts.labels
                        .iter()
                        .map(|l| format!("{}={}", l.name, l.value))
                        .collect::<Vec<_>>()
                        .join(","),
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("__name__=up,job=a".into(), vec![(1000, 0.0), (2000, 1.0)]),
                ("__name__=up,job=b".into(), vec![(1000, 2.0), (2000, -1.5)]),
            ]
        );
    }
}
