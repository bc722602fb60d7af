//! The fleet's answer to "which cluster can run this job, all of its pods at once?" (gang
//! scheduling), from the fleet's own kube-state-metrics.
//!
//! Per cluster and node: free = allocatable (`kube_node_status_allocatable`) minus what the pods
//! bound to the node request (`kube_pod_container_resource_requests{node=...}` of pods whose
//! `kube_pod_status_phase` is Pending or Running), leaving out cordoned nodes
//! (`kube_node_spec_unschedulable`) and nodes not Ready (`kube_node_status_condition`). A node
//! takes as many of the job's pods as its free GPUs, CPU and memory all allow; the job fits a
//! cluster when its nodes take all `pods` together. A cluster whose metrics stopped more than
//! [`STALE_AFTER_MS`] before the asked time is reported from its last data, flagged stale, and
//! never counted as fitting.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use fleetscope_store::source::Source;
use fleetscope_store::{Labels, MatchOp, Matcher, SelectHints, is_stale_nan};
use serde::Serialize;

use crate::error::{Error, Result, bad};

/// How far back the last data of a cluster is looked for (ms).
pub const SEARCH_BACK_MS: i64 = 24 * 3_600_000;
/// Data older than this before the asked time makes a cluster stale (ms).
pub const STALE_AFTER_MS: i64 = 5 * 60_000;
/// A series is current when its last sample is this close to its cluster's newest (ms), as
/// PromQL's lookback.
const LOOKBACK_MS: i64 = 5 * 60_000;

/// The job to place: `pods` pods, each asking for these resources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Job {
    /// Pods that must all run at once.
    pub pods: u64,
    /// GPUs per pod (`nvidia_com_gpu`).
    pub gpus_per_pod: f64,
    /// CPU cores per pod.
    pub cpu_per_pod: f64,
    /// Memory per pod, bytes.
    pub memory_per_pod: f64,
}

/// One cluster's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterCapacity {
    /// The `cluster` label.
    pub cluster: String,
    /// Whether all of the job's pods can be placed at once (never for a stale cluster).
    pub fits: bool,
    /// How many such jobs fit side by side.
    pub jobs_that_fit: u64,
    /// Pods of the job the schedulable nodes can take together.
    pub placeable_pods: u64,
    /// Free GPUs over the schedulable nodes.
    pub free_gpus: f64,
    /// The most free GPUs on one schedulable node.
    pub largest_free_gpus_on_a_node: f64,
    /// Free CPU cores over the schedulable nodes.
    pub free_cpu: f64,
    /// Free memory over the schedulable nodes, bytes.
    pub free_memory_bytes: f64,
    /// Nodes counted.
    pub schedulable_nodes: usize,
    /// Nodes left out: cordoned or not Ready.
    pub excluded_nodes: Vec<String>,
    /// The cluster's metrics stopped more than [`STALE_AFTER_MS`] before the asked time.
    pub stale: bool,
    /// Time of the cluster's newest data (ms).
    pub last_seen_ms: i64,
}

/// The answer for a whole fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    /// The asked time (ms).
    pub time_ms: i64,
    /// The job.
    pub job: Job,
    /// Per cluster, by name.
    pub clusters: Vec<ClusterCapacity>,
}

impl Capacity {
    /// Whether some cluster can run the job now.
    pub fn any_fits(&self) -> bool {
        self.clusters.iter().any(|c| c.fits)
    }
}

/// What a node has and what is asked of it.
#[derive(Debug, Default, Clone)]
struct Node {
    allocatable: [f64; 3],
    requested: [f64; 3],
    unschedulable: bool,
    /// `Some(false)` when the Ready condition says the node is not ready.
    ready: Option<bool>,
}

const GPU: usize = 0;
const CPU: usize = 1;
const MEMORY: usize = 2;

fn resource(name: &str) -> Option<usize> {
    match name {
        "nvidia_com_gpu" | "nvidia.com/gpu" => Some(GPU),
        "cpu" => Some(CPU),
        "memory" => Some(MEMORY),
        _ => None,
    }
}

/// The last sample of each series selected by `matchers` in `(time - SEARCH_BACK_MS, time]`:
/// labels, time, value (series ending in a stale marker are left out).
async fn last_samples(
    source: &dyn Source,
    matchers: Vec<Matcher>,
    time: i64,
) -> Result<Vec<(Labels, i64, f64)>> {
    let hints = SelectHints::range(time - SEARCH_BACK_MS, time);
    let series = source
        .select(&matchers, &hints)
        .await
        .map_err(Error::Store)?;
    Ok(series
        .into_iter()
        .filter_map(|s| {
            let last = s.samples.iter().rev().find(|x| x.t <= time)?;
            (!is_stale_nan(last.v)).then_some((s.labels, last.t, last.v))
        })
        .collect())
}

fn metric(name: &str) -> Result<Matcher> {
    Matcher::new(MatchOp::Equal, "__name__", name).map_err(Error::Store)
}

fn label<'a>(l: &'a Labels, name: &str) -> &'a str {
    l.get(name).unwrap_or("")
}

/// Answers the job against the clusters of `source` at `time` (ms); `clusters` limits the answer
/// to these names (empty: every cluster).
pub async fn capacity(
    source: &Arc<dyn Source>,
    job: Job,
    clusters: &[String],
    time: i64,
) -> Result<Capacity> {
    if job.pods == 0 {
        return Err(bad("pods must be at least 1"));
    }
    let per_pod = [job.gpus_per_pod, job.cpu_per_pod, job.memory_per_pod];
    if per_pod.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(bad("resources per pod must be finite and not negative"));
    }
    if per_pod.iter().all(|v| *v == 0.0) {
        return Err(bad(
            "a pod must ask for something: gpus_per_pod, cpu_per_pod or memory_per_pod",
        ));
    }
    let source = source.as_ref();
    let wanted =
        |l: &Labels| clusters.is_empty() || clusters.iter().any(|c| c == label(l, "cluster"));

    let allocatable =
        last_samples(source, vec![metric("kube_node_status_allocatable")?], time).await?;
    // Each cluster's newest data, and which series are current against it.
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for (l, t, _) in allocatable.iter().filter(|(l, _, _)| wanted(l)) {
        let e = newest.entry(label(l, "cluster").to_string()).or_insert(*t);
        *e = (*e).max(*t);
    }
    let current = |l: &Labels, t: i64| {
        newest
            .get(label(l, "cluster"))
            .is_some_and(|&n| t > n - LOOKBACK_MS)
    };
    let mut nodes: HashMap<(String, String), Node> = HashMap::new();
    for (l, t, v) in &allocatable {
        if let Some(r) = resource(label(l, "resource"))
            && current(l, *t)
        {
            let key = (
                label(l, "cluster").to_string(),
                label(l, "node").to_string(),
            );
            nodes.entry(key).or_default().allocatable[r] = *v;
        }
    }
    for (l, t, v) in
        last_samples(source, vec![metric("kube_node_spec_unschedulable")?], time).await?
    {
        if current(&l, t)
            && let Some(n) = nodes.get_mut(&(label(&l, "cluster").into(), label(&l, "node").into()))
        {
            n.unschedulable = v == 1.0;
        }
    }
    let ready = vec![
        metric("kube_node_status_condition")?,
        Matcher::new(MatchOp::Equal, "condition", "Ready").map_err(Error::Store)?,
        Matcher::new(MatchOp::Equal, "status", "true").map_err(Error::Store)?,
    ];
    for (l, t, v) in last_samples(source, ready, time).await? {
        if current(&l, t)
            && let Some(n) = nodes.get_mut(&(label(&l, "cluster").into(), label(&l, "node").into()))
        {
            n.ready = Some(v == 1.0);
        }
    }
    // Pods that hold their requests: Pending (when bound, i.e. with a node) or Running.
    let mut active: HashSet<(String, String, String)> = HashSet::new();
    let phases = vec![
        metric("kube_pod_status_phase")?,
        Matcher::new(MatchOp::Regex, "phase", "Pending|Running").map_err(Error::Store)?,
    ];
    for (l, t, v) in last_samples(source, phases, time).await? {
        if current(&l, t) && v == 1.0 {
            active.insert(pod_key(&l));
        }
    }
    let requests = vec![
        metric("kube_pod_container_resource_requests")?,
        Matcher::new(MatchOp::NotEqual, "node", "").map_err(Error::Store)?,
    ];
    for (l, t, v) in last_samples(source, requests, time).await? {
        if !current(&l, t) || !active.contains(&pod_key(&l)) {
            continue;
        }
        if let Some(r) = resource(label(&l, "resource"))
            && let Some(n) = nodes.get_mut(&(label(&l, "cluster").into(), label(&l, "node").into()))
        {
            n.requested[r] += v;
        }
    }

    let mut out = Vec::new();
    for (cluster, &last_seen_ms) in &newest {
        let mut c = ClusterCapacity {
            cluster: cluster.clone(),
            fits: false,
            jobs_that_fit: 0,
            placeable_pods: 0,
            free_gpus: 0.0,
            largest_free_gpus_on_a_node: 0.0,
            free_cpu: 0.0,
            free_memory_bytes: 0.0,
            schedulable_nodes: 0,
            excluded_nodes: Vec::new(),
            stale: time - last_seen_ms > STALE_AFTER_MS,
            last_seen_ms,
        };
        let mut names: Vec<&(String, String)> = nodes.keys().filter(|k| &k.0 == cluster).collect();
        names.sort();
        for key in names {
            let n = &nodes[key];
            if n.unschedulable || n.ready == Some(false) {
                c.excluded_nodes.push(key.1.clone());
                continue;
            }
            let free: Vec<f64> = (0..3)
                .map(|r| (n.allocatable[r] - n.requested[r]).max(0.0))
                .collect();
            c.schedulable_nodes += 1;
            c.free_gpus += free[GPU];
            c.largest_free_gpus_on_a_node = c.largest_free_gpus_on_a_node.max(free[GPU]);
            c.free_cpu += free[CPU];
            c.free_memory_bytes += free[MEMORY];
            c.placeable_pods += (0..3)
                .filter(|&r| per_pod[r] > 0.0)
                .map(|r| (free[r] / per_pod[r] + 1e-9).floor() as u64)
                .min()
                .unwrap_or(0);
        }
        c.jobs_that_fit = if c.stale {
            0
        } else {
            c.placeable_pods / job.pods
        };
        c.fits = c.jobs_that_fit > 0;
        out.push(c);
    }
    Ok(Capacity {
        time_ms: time,
        job,
        clusters: out,
    })
}

fn pod_key(l: &Labels) -> (String, String, String) {
    (
        label(l, "cluster").to_string(),
        label(l, "namespace").to_string(),
        label(l, "pod").to_string(),
    )
}

/// A Kubernetes quantity as a number: `500m` (CPU) is 0.5, `16Gi` is 17179869184, `1G` 1e9,
/// `2` is 2.
pub fn parse_quantity(s: &str) -> std::result::Result<f64, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a quantity (e.g. 4, 500m, 16Gi)"))?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        other => {
            return Err(format!(
                "{s:?}: unknown suffix {other:?} (m, k, M, G, T, Ki, Mi, Gi, Ti)"
            ));
        }
    };
    let v = n * scale;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} must be a finite, non-negative quantity"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests;
