//! The simulated fleet the demo, the benchmarks and the tests run on.
//!
//! [`fleet`] generates a realistic multi-cluster dataset (node-exporter, cAdvisor,
//! kube-state-metrics, DCGM and HTTP-histogram series, 15 s scrapes, pod churn, counter resets);
//! [`openmetrics`] writes it as OpenMetrics text with timestamps, the format both `fleetscope
//! import` and `promtool tsdb create-blocks-from openmetrics` read; [`remote_write`] encodes it as
//! Prometheus sends it.

pub mod fleet;
pub mod openmetrics;
pub mod remote_write;
