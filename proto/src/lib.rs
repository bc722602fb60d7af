//! Prometheus remote-write and remote-read protobuf messages as [`prost`] types, and nothing else.
//!
//! * [`v1`]: `prometheus.WriteRequest` (remote-write 1.0, `prometheus/prompb/{remote,types}.proto`).
//! * [`v2`]: `io.prometheus.write.v2.Request` (remote-write 2.0, `prometheus/prompb/io/prometheus/write/v2/types.proto`).
//! * [`read`]: `prometheus.ReadRequest` / `ReadResponse` (remote-read, `SAMPLES` responses).
//!
//! The structs are written by hand with `#[derive(prost::Message)]`, field numbers copied from the
//! upstream `.proto` files (Apache-2.0, The Prometheus Authors), so no `protoc` is needed to build.
//! Native histograms are declared with the fields the receiver needs (their timestamp, to count them
//! as not written); unknown fields are skipped by prost, so partial declarations decode any valid input.

/// Remote-write 1.0 messages (`prometheus.WriteRequest`).
pub mod v1 {
    /// The body of a remote-write 1.0 request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// Series with their samples.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Metric metadata (type, help, unit) sent alongside.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// One series: its full label set and samples in timestamp order.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Label pairs, sorted by name.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Float samples.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Exemplars.
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    /// A label pair.
    #[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
    pub struct Label {
        /// Label name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Label value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// A float sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value; stale markers are the NaN with bits `0x7ff0000000000002`.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// An exemplar attached to a series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Exemplar labels (e.g. `trace_id`).
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Exemplar value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// A native histogram sample, declared partially (see the crate docs).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Sum of observations.
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// Resolution schema.
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
    }

    /// Metadata of one metric family.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// Metric type (`MetricType` enum of `types.proto`: 0 unknown, 1 counter, 2 gauge, ...).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Metric family name.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Help text.
        #[prost(string, tag = "4")]
        pub help: String,
        /// Unit.
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// Remote-write 2.0 messages (`io.prometheus.write.v2.Request`).
pub mod v2 {
    /// The body of a remote-write 2.0 request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// The symbol table; entry 0 must be the empty string.
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        /// Series with their samples.
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    /// One series of a 2.0 request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Pairs of indices into [`Request::symbols`]: name, value, name, value...
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Float samples.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Native histogram samples.
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<Histogram>,
        /// Exemplars.
        #[prost(message, repeated, tag = "4")]
        pub exemplars: Vec<Exemplar>,
        /// Metric metadata.
        #[prost(message, optional, tag = "5")]
        pub metadata: Option<Metadata>,
        /// Created timestamp of a counter, milliseconds since the Unix epoch.
        #[prost(int64, tag = "6")]
        pub created_timestamp: i64,
    }

    /// A float sample.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Sample {
        /// The value.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// An exemplar.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Pairs of indices into [`Request::symbols`].
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        /// Exemplar value.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// A native histogram sample, declared partially (see the crate docs).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Sum of observations.
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// Resolution schema.
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        /// Milliseconds since the Unix epoch.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
    }

    /// Metric metadata of a 2.0 series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metadata {
        /// Metric type (0 unspecified, 1 counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info, 7 stateset).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Index of the help text in [`Request::symbols`].
        #[prost(uint32, tag = "3")]
        pub help_ref: u32,
        /// Index of the unit in [`Request::symbols`].
        #[prost(uint32, tag = "4")]
        pub unit_ref: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes of `WriteRequest{timeseries:[{labels:[{__name__,up}], samples:[{1.0, 1000}]}]}` as
    /// Prometheus's Go code (gogo-protobuf) encodes it; field order and wire types must match.
    #[test]
    fn v1_encodes_like_prometheus() {
        let req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![v1::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![v1::Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let bytes = req.encode_to_vec();
        let expected: Vec<u8> = [
            &[0x0a, 0x1e][..],         // timeseries, len 30
            &[0x0a, 0x0e, 0x0a, 0x08], // labels, len 14; name, len 8
            b"__name__",
            &[0x12, 0x02], // value, len 2
            b"up",
            &[0x12, 0x0c, 0x09], // samples, len 12; value (fixed64)
            &1.0f64.to_le_bytes(),
            &[0x10, 0xe8, 0x07], // timestamp 1000 (varint)
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(v1::WriteRequest::decode(&bytes[..]).unwrap(), req);
    }

    #[test]
    fn v2_roundtrip_keeps_stale_nan_bits() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let req = v2::Request {
            symbols: vec!["".into(), "__name__".into(), "up".into()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2::Sample {
                    value: stale,
                    timestamp: 5,
                }],
                metadata: Some(v2::Metadata {
                    r#type: 2,
                    help_ref: 0,
                    unit_ref: 0,
                }),
                ..Default::default()
            }],
        };
        let back = v2::Request::decode(&req.encode_to_vec()[..]).unwrap();
        assert_eq!(
            back.timeseries[0].samples[0].value.to_bits(),
            0x7ff0_0000_0000_0002
        );
        assert_eq!(back.symbols, req.symbols);
    }
}

/// Remote-read messages (`prometheus.ReadRequest`, `prometheus/prompb/remote.proto`); series come
/// back as [`v1::TimeSeries`].
pub mod read {
    use super::v1::TimeSeries;

    /// The body of a remote-read request: one or more queries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReadRequest {
        /// The queries, answered in order.
        #[prost(message, repeated, tag = "1")]
        pub queries: Vec<Query>,
        /// Response types the client accepts, in order of preference (empty: `SAMPLES`).
        #[prost(enumeration = "ResponseType", repeated, tag = "2")]
        pub accepted_response_types: Vec<i32>,
    }

    /// Response encodings of remote-read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum ResponseType {
        /// One snappy-compressed [`ReadResponse`] with raw samples.
        Samples = 0,
        /// A stream of XOR-encoded chunks (not served by fleetscope).
        StreamedXorChunks = 1,
    }

    /// One selection: matchers over a time range.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Query {
        /// Start of the range, ms since the epoch, inclusive.
        #[prost(int64, tag = "1")]
        pub start_timestamp_ms: i64,
        /// End of the range, ms since the epoch, inclusive.
        #[prost(int64, tag = "2")]
        pub end_timestamp_ms: i64,
        /// Every series returned matches all of these.
        #[prost(message, repeated, tag = "3")]
        pub matchers: Vec<LabelMatcher>,
        /// What the client will do with the data.
        #[prost(message, optional, tag = "4")]
        pub hints: Option<ReadHints>,
    }

    /// A label matcher.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelMatcher {
        /// The comparison.
        #[prost(enumeration = "MatchType", tag = "1")]
        pub r#type: i32,
        /// The label name.
        #[prost(string, tag = "2")]
        pub name: String,
        /// The value or regular expression.
        #[prost(string, tag = "3")]
        pub value: String,
    }

    /// Comparisons of [`LabelMatcher`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum MatchType {
        /// `=`
        Eq = 0,
        /// `!=`
        Neq = 1,
        /// `=~`
        Re = 2,
        /// `!~`
        Nre = 3,
    }

    /// Hints about the query a selection serves; `func = "series"` asks for labels only.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReadHints {
        /// Query step, ms.
        #[prost(int64, tag = "1")]
        pub step_ms: i64,
        /// The function applied to the selection (`"series"`: labels only, no samples).
        #[prost(string, tag = "2")]
        pub func: String,
        /// Start of the selection, ms.
        #[prost(int64, tag = "3")]
        pub start_ms: i64,
        /// End of the selection, ms.
        #[prost(int64, tag = "4")]
        pub end_ms: i64,
        /// Grouping labels of the enclosing aggregation.
        #[prost(string, repeated, tag = "5")]
        pub grouping: Vec<String>,
        /// Whether `grouping` is `by` (else `without`).
        #[prost(bool, tag = "6")]
        pub by: bool,
        /// Range of a range vector selector, ms.
        #[prost(int64, tag = "7")]
        pub range_ms: i64,
    }

    /// The body of a `SAMPLES` remote-read response: one result per query, in order.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReadResponse {
        /// Results, one per query.
        #[prost(message, repeated, tag = "1")]
        pub results: Vec<QueryResult>,
    }

    /// The series of one query.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryResult {
        /// Series with their samples in the query's range.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
}
