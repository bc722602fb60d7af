//! A synthetic fleet: clusters of nodes, pods and GPUs, scraped every 15 s.
//!
//! Values imitate what real exporters send, since codecs live or die by it:
//! * node-exporter CPU counters have 2 decimals (USER_HZ), memory and network are integers;
//! * cAdvisor CPU counters are nanoseconds in seconds (up to 9 decimals);
//! * DCGM utilisation, temperature and framebuffer are integers, power has 3 decimals;
//! * HTTP latency histograms: integer bucket counters, a full-precision float `_sum`;
//! * pods churn (a new pod name, new series) and nodes reboot (counter resets).
//!
//! Everything is derived from a seed, so a preset always yields the same samples.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a cluster runs, which decides its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// Control plane: system pods, no GPUs.
    Control,
    /// GPU training: busy CPUs and GPUs.
    Training,
    /// Inference: HTTP services with diurnal load and latency histograms.
    Serving,
}

/// One member cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The cluster name (the `cluster` external label).
    pub name: String,
    /// What it runs.
    pub kind: ClusterKind,
    /// Number of nodes.
    pub nodes: usize,
    /// CPUs per node (each has 4 `mode` series).
    pub cpus_per_node: usize,
    /// GPUs per node.
    pub gpus_per_node: usize,
    /// Pods running on each node at any time.
    pub pods_per_node: usize,
}

/// The whole fleet and the time span to generate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Member clusters.
    pub clusters: Vec<ClusterSpec>,
    /// First scrape (ms since the epoch).
    pub start_ms: i64,
    /// Length of the span (ms).
    pub duration_ms: i64,
    /// Scrape interval (ms).
    pub interval_ms: i64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl FleetSpec {
    /// The three clusters of the docs, with nodes multiplied by `scale`, over `duration_ms` from `start_ms`.
    pub fn standard(scale: usize, start_ms: i64, duration_ms: i64) -> Self {
        let c =
            |name: &str, kind, nodes, cpus_per_node, gpus_per_node, pods_per_node| ClusterSpec {
                name: name.into(),
                kind,
                nodes: nodes * scale.max(1),
                cpus_per_node,
                gpus_per_node,
                pods_per_node,
            };
        Self {
            clusters: vec![
                c("kurator-master", ClusterKind::Control, 3, 4, 0, 12),
                c("training-bj", ClusterKind::Training, 4, 32, 8, 10),
                c("serving-sh", ClusterKind::Serving, 6, 4, 1, 12),
            ],
            start_ms,
            duration_ms,
            interval_ms: 15_000,
            seed: 42,
        }
    }

    /// Named sizes: `tiny` (tests, ~2.8k series, 30 min), `small` (~20k series, 2h), `medium` (~100k series, 6h).
    pub fn preset(name: &str, start_ms: i64) -> Option<Self> {
        const H: i64 = 3_600_000;
        match name {
            "tiny" => Some(Self::standard(1, start_ms, H / 2)),
            "small" => Some(Self::standard(6, start_ms, 2 * H)),
            "medium" => Some(Self::standard(30, start_ms, 6 * H)),
            _ => None,
        }
    }

    /// Scrape times of the span.
    fn steps(&self) -> impl Iterator<Item = i64> + '_ {
        (0..)
            .map(move |i| self.start_ms + i * self.interval_ms)
            .take_while(move |t| *t < self.start_ms + self.duration_ms)
    }
}

/// One generated series: labels (without `cluster`) and samples in time order.
#[derive(Debug, Clone)]
pub struct GenSeries {
    /// Metric name.
    pub name: &'static str,
    /// Other labels, in any order.
    pub labels: Vec<(&'static str, String)>,
    /// `(t, v)` samples in increasing `t`.
    pub samples: Vec<(i64, f64)>,
}

impl GenSeries {
    /// The series as a store [`Series`](fleetscope_store::Series) (labels validated and sorted).
    pub fn to_series(&self) -> fleetscope_store::Series {
        let pairs =
            std::iter::once(("__name__", self.name.to_string())).chain(self.labels.iter().cloned());
        fleetscope_store::Series {
            labels: fleetscope_store::Labels::from_pairs(pairs),
            samples: self
                .samples
                .iter()
                .map(|&(t, v)| fleetscope_store::Sample { t, v })
                .collect(),
        }
    }
}

/// Metric families, in output order (OpenMetrics wants each family contiguous).
pub const FAMILIES: [(&str, &str); 17] = [
    ("up", "gauge"),
    ("node_cpu_seconds_total", "counter"),
    ("node_memory_MemAvailable_bytes", "gauge"),
    ("node_network_receive_bytes_total", "counter"),
    ("node_load1", "gauge"),
    ("container_cpu_usage_seconds_total", "counter"),
    ("container_memory_working_set_bytes", "gauge"),
    ("kube_pod_info", "gauge"),
    ("kube_pod_container_status_restarts_total", "counter"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge"),
    ("DCGM_FI_DEV_FB_USED", "gauge"),
    ("DCGM_FI_DEV_FB_FREE", "gauge"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge"),
    ("http_request_duration_seconds", "histogram"),
    ("http_requests_total", "counter"),
    ("kube_node_status_capacity", "gauge"),
];

const MODES: [(&str, f64); 4] = [
    ("idle", 0.0),
    ("user", 0.55),
    ("system", 0.12),
    ("iowait", 0.02),
];
const BUCKETS: [&str; 11] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
];

/// Calls `sink` for every series of one cluster, family by family.
pub fn generate_cluster(spec: &FleetSpec, cluster: &ClusterSpec, sink: &mut dyn FnMut(GenSeries)) {
    let steps: Vec<i64> = spec.steps().collect();
    let seed = spec.seed ^ fxhash(cluster.name.as_bytes());
    let pods = pod_schedule(spec, cluster, seed);
    for (family, _) in FAMILIES {
        let mut rng = StdRng::seed_from_u64(seed ^ fxhash(family.as_bytes()));
        match family {
            "up" => {
                for node in 0..cluster.nodes {
                    for job in ["node-exporter", "cadvisor"] {
                        let samples = scrape(&steps, &mut rng, node, |_, _| 1.0);
                        sink(series(
                            family,
                            [("job", job.into()), ("instance", instance(node))],
                            samples,
                        ));
                    }
                }
            }
            "node_cpu_seconds_total" => {
                for node in 0..cluster.nodes {
                    let busy = load_level(cluster.kind, &mut rng);
                    let reboot = rng
                        .random_bool(0.1)
                        .then(|| rng.random_range(0..steps.len().max(1)));
                    for cpu in 0..cluster.cpus_per_node {
                        for (mode, share) in MODES {
                            let mut v = rng.random_range(1e4..1e6_f64).round() / 100.0;
                            let samples = scrape(&steps, &mut rng, node, |i, rng| {
                                if Some(i) == reboot {
                                    v = 0.0;
                                }
                                let used = busy
                                    * diurnal(cluster.kind, steps[i])
                                    * (share + rng.random_range(-0.05..0.05));
                                let frac = if mode == "idle" {
                                    1.0 - busy * 0.69
                                } else {
                                    used.max(0.0)
                                };
                                // USER_HZ ticks: exactly two decimals.
                                v = ((v + 15.0 * frac) * 100.0).round() / 100.0;
                                v
                            });
                            sink(series(
                                family,
                                [
                                    ("instance", instance(node)),
                                    ("cpu", cpu.to_string()),
                                    ("mode", mode.into()),
                                ],
                                samples,
                            ));
                        }
                    }
                }
            }
            "node_memory_MemAvailable_bytes" => {
                for node in 0..cluster.nodes {
                    let mut pages: i64 = rng.random_range(2_000_000..8_000_000);
                    let samples = scrape(&steps, &mut rng, node, |_, rng| {
                        pages = (pages + rng.random_range(-3000..3000)).max(100_000);
                        (pages * 4096) as f64
                    });
                    sink(series(family, [("instance", instance(node))], samples));
                }
            }
            "node_network_receive_bytes_total" => {
                for node in 0..cluster.nodes {
                    for device in ["eth0", "lo"] {
                        let mut v: u64 = rng.random_range(1_000_000..1_000_000_000);
                        let rate = if device == "lo" { 2_000.0 } else { 3e6 };
                        let samples = scrape(&steps, &mut rng, node, |i, rng| {
                            v += (rate
                                * diurnal(cluster.kind, steps[i])
                                * rng.random_range(0.5..1.5)
                                * 15.0) as u64;
                            v as f64
                        });
                        sink(series(
                            family,
                            [("instance", instance(node)), ("device", device.into())],
                            samples,
                        ));
                    }
                }
            }
            "node_load1" => {
                for node in 0..cluster.nodes {
                    let cpus = cluster.cpus_per_node as f64;
                    let samples = scrape(&steps, &mut rng, node, |i, rng| {
                        let l = cpus * load_base(cluster.kind) * diurnal(cluster.kind, steps[i])
                            + rng.random_range(-0.3..0.3);
                        (l.max(0.0) * 100.0).round() / 100.0
                    });
                    sink(series(family, [("instance", instance(node))], samples));
                }
            }
            "container_cpu_usage_seconds_total" => {
                for pod in &pods {
                    let mut ns: u64 = 0;
                    let cores = pod.cores;
                    let samples = pod_scrape(&steps, pod, &mut rng, |i, rng| {
                        let d = diurnal(cluster.kind, steps[i]);
                        ns += (cores * d * rng.random_range(0.7..1.3) * 15e9) as u64;
                        // cAdvisor: nanoseconds shown in seconds.
                        ns as f64 / 1e9
                    });
                    sink(series(family, pod.labels(), samples));
                }
            }
            "container_memory_working_set_bytes" => {
                for pod in &pods {
                    let mut pages: i64 = rng.random_range(10_000..2_000_000);
                    let samples = pod_scrape(&steps, pod, &mut rng, |_, rng| {
                        pages = (pages + rng.random_range(-200..220)).max(1000);
                        (pages * 4096) as f64
                    });
                    sink(series(family, pod.labels(), samples));
                }
            }
            "kube_pod_info" => {
                for pod in &pods {
                    let samples = pod_scrape(&steps, pod, &mut rng, |_, _| 1.0);
                    let mut labels = pod.labels();
                    labels.push(("node", instance(pod.node)));
                    sink(series(family, labels, samples));
                }
            }
            "kube_pod_container_status_restarts_total" => {
                for pod in &pods {
                    let mut restarts = 0.0;
                    let samples = pod_scrape(&steps, pod, &mut rng, |_, rng| {
                        if rng.random_bool(0.0005) {
                            restarts += 1.0;
                        }
                        restarts
                    });
                    sink(series(family, pod.labels(), samples));
                }
            }
            "DCGM_FI_DEV_GPU_UTIL"
            | "DCGM_FI_DEV_FB_USED"
            | "DCGM_FI_DEV_FB_FREE"
            | "DCGM_FI_DEV_POWER_USAGE"
            | "DCGM_FI_DEV_GPU_TEMP" => {
                let model = if cluster.kind == ClusterKind::Training {
                    "NVIDIA A100-SXM4-80GB"
                } else {
                    "NVIDIA L4"
                };
                let fb_total: f64 = if cluster.kind == ClusterKind::Training {
                    81920.0
                } else {
                    23034.0
                };
                for node in 0..cluster.nodes {
                    for gpu in 0..cluster.gpus_per_node {
                        let mut util: f64 = rng.random_range(20.0..100.0);
                        let mut used: f64 = (fb_total * rng.random_range(0.2..0.9)).round();
                        let samples = scrape(&steps, &mut rng, node, |i, rng| {
                            let d = diurnal(cluster.kind, steps[i]);
                            util = (util + rng.random_range(-8.0..8.0)).clamp(0.0, 100.0);
                            used = (used + rng.random_range(-64.0..64.0)).clamp(0.0, fb_total);
                            match family {
                                "DCGM_FI_DEV_GPU_UTIL" => (util * d).round(),
                                "DCGM_FI_DEV_FB_USED" => used,
                                "DCGM_FI_DEV_FB_FREE" => fb_total - used,
                                "DCGM_FI_DEV_POWER_USAGE" => {
                                    ((60.0 + util * d * 3.4 + rng.random_range(-5.0..5.0)) * 1000.0)
                                        .round()
                                        / 1000.0
                                }
                                _ => (35.0 + util * d * 0.4 + rng.random_range(-1.0..1.0)).round(),
                            }
                        });
                        sink(series(
                            family,
                            [
                                ("gpu", gpu.to_string()),
                                (
                                    "UUID",
                                    format!("GPU-{:08x}-{node:04x}-{gpu:04x}", seed as u32),
                                ),
                                ("modelName", model.into()),
                                ("Hostname", instance(node)),
                            ],
                            samples,
                        ));
                    }
                }
            }
            "http_request_duration_seconds" if cluster.kind == ClusterKind::Serving => {
                for pod in &pods {
                    let mut counts = [0u64; BUCKETS.len()];
                    let mut sum = 0.0f64;
                    let mut per_step = Vec::with_capacity(steps.len());
                    for (i, &t) in steps.iter().enumerate() {
                        if !pod.alive(t) {
                            per_step.push(None);
                            continue;
                        }
                        let requests =
                            (40.0 * diurnal(cluster.kind, steps[i]) * rng.random_range(0.5..1.5))
                                as u64;
                        for _ in 0..requests.min(200) {
                            let d: f64 = 0.02 * (-rng.random::<f64>().max(1e-12).ln()).powf(1.5);
                            sum += d;
                            for (b, le) in BUCKETS.iter().enumerate() {
                                if *le == "+Inf" || d <= le.parse::<f64>().unwrap_or(f64::INFINITY)
                                {
                                    counts[b] += 1;
                                }
                            }
                        }
                        per_step.push(Some((counts, sum)));
                    }
                    let offset = target_offset(pod.node, &mut rng);
                    let at = |i: usize| steps[i] + offset;
                    for (b, le) in BUCKETS.iter().enumerate() {
                        let samples = per_step
                            .iter()
                            .enumerate()
                            .filter_map(|(i, s)| s.map(|(c, _)| (at(i), c[b] as f64)))
                            .collect();
                        let mut labels = pod.labels();
                        labels.push(("le", (*le).into()));
                        sink(series(
                            "http_request_duration_seconds_bucket",
                            labels,
                            samples,
                        ));
                    }
                    let sums = per_step
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| s.map(|(_, s)| (at(i), s)))
                        .collect();
                    sink(series(
                        "http_request_duration_seconds_sum",
                        pod.labels(),
                        sums,
                    ));
                    let counts = per_step
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| s.map(|(c, _)| (at(i), c[BUCKETS.len() - 1] as f64)))
                        .collect();
                    sink(series(
                        "http_request_duration_seconds_count",
                        pod.labels(),
                        counts,
                    ));
                }
            }
            "http_requests_total" if cluster.kind == ClusterKind::Serving => {
                for pod in &pods {
                    for (code, share) in [("200", 0.97), ("404", 0.02), ("500", 0.01)] {
                        let mut v = 0.0;
                        let samples = pod_scrape(&steps, pod, &mut rng, |i, rng| {
                            v += (600.0
                                * share
                                * diurnal(cluster.kind, steps[i])
                                * rng.random_range(0.5..1.5))
                            .round();
                            v
                        });
                        let mut labels = pod.labels();
                        labels.push(("code", code.into()));
                        sink(series(family, labels, samples));
                    }
                }
            }
            "kube_node_status_capacity" => {
                for node in 0..cluster.nodes {
                    for (resource, unit, v) in [
                        ("cpu", "core", cluster.cpus_per_node as f64),
                        ("memory", "byte", 68_719_476_736.0),
                        ("nvidia_com_gpu", "integer", cluster.gpus_per_node as f64),
                    ] {
                        let samples = scrape(&steps, &mut rng, node, |_, _| v);
                        sink(series(
                            family,
                            [
                                ("node", instance(node)),
                                ("resource", resource.into()),
                                ("unit", unit.into()),
                            ],
                            samples,
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Calls `sink` for the kube-state-metrics series a scheduler looks at, consistent with the pods
/// [`generate_cluster`] runs: nodes' allocatable resources, cordons and readiness; each pod's phase
/// (Pending for its first minute, then Running) and its container's requests on its node. GPU
/// requests leave training nodes fragmented: 2, 2 and 3 GPUs free, and every fourth node all 8
/// free but cordoned from a quarter of the span on, after which no training node has 4 free GPUs;
/// serving nodes alternate 0 and 1 free. Pods' series end with a stale marker, as Prometheus
/// writes when kube-state-metrics stops exposing a deleted pod.
/// Kept apart from [`generate_cluster`] so the benchmark datasets stay as they are.
pub fn scheduling(spec: &FleetSpec, cluster: &ClusterSpec, sink: &mut dyn FnMut(GenSeries)) {
    let steps: Vec<i64> = spec.steps().collect();
    let seed = spec.seed ^ fxhash(cluster.name.as_bytes());
    let pods = pod_schedule(spec, cluster, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ fxhash(b"scheduling"));
    let memory = 68_719_476_736.0;
    let cordoned = |node: usize| cluster.kind == ClusterKind::Training && node % 4 == 3;
    let cordon_at = spec.start_ms + spec.duration_ms / 4;
    for node in 0..cluster.nodes {
        for (resource, unit, v) in [
            ("cpu", "core", cluster.cpus_per_node as f64 - 0.5),
            ("memory", "byte", memory - 2_147_483_648.0),
            ("nvidia_com_gpu", "integer", cluster.gpus_per_node as f64),
        ] {
            let samples = scrape(&steps, &mut rng, node, |_, _| v);
            let labels = [
                ("node", instance(node)),
                ("resource", resource.into()),
                ("unit", unit.into()),
            ];
            sink(series("kube_node_status_allocatable", labels, samples));
        }
        let samples = scrape(&steps, &mut rng, node, |i, _| {
            f64::from(u8::from(cordoned(node) && steps[i] >= cordon_at))
        });
        sink(series(
            "kube_node_spec_unschedulable",
            [("node", instance(node))],
            samples,
        ));
        let samples = scrape(&steps, &mut rng, node, |_, _| 1.0);
        let labels = [
            ("node", instance(node)),
            ("condition", "Ready".into()),
            ("status", "true".into()),
        ];
        sink(series("kube_node_status_condition", labels, samples));
    }
    // GPUs each pod slot of a node asks for, leaving the node's free GPUs as documented above.
    let gpus_of = |node: usize, slot: usize| -> f64 {
        let free = match cluster.kind {
            ClusterKind::Training => [2, 2, 3, 8][node % 4],
            ClusterKind::Serving => node % 2,
            ClusterKind::Control => cluster.gpus_per_node,
        };
        let used = cluster.gpus_per_node.saturating_sub(free);
        (used.saturating_sub(slot * 2)).min(2) as f64
    };
    for pod in &pods {
        // Pods are named `<deployment>-<slot>-<hash>` (see `pod_schedule`).
        let deploy = pod
            .name
            .rsplit_once('-')
            .map_or(pod.name.clone(), |(d, _)| d.to_string());
        let slot = deploy
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .unwrap_or(0);
        for phase in ["Pending", "Running", "Succeeded"] {
            let samples = pod_scrape(&steps, pod, &mut rng, |i, _| {
                let pending = steps[i] < pod.start + 60_000;
                let now = if pending { "Pending" } else { "Running" };
                f64::from(u8::from(phase == now))
            });
            let samples = ended(&steps, pod, samples);
            let labels = [
                ("namespace", pod.namespace.into()),
                ("pod", pod.name.clone()),
                ("phase", phase.into()),
            ];
            sink(series("kube_pod_status_phase", labels, samples));
        }
        let requests = [
            ("cpu", "core", (pod.cores * 10.0).ceil() / 10.0),
            ("memory", "byte", (1 + slot % 8) as f64 * 1_073_741_824.0),
            ("nvidia_com_gpu", "integer", gpus_of(pod.node, slot)),
        ];
        for (resource, unit, v) in requests {
            if v == 0.0 {
                continue;
            }
            let samples = ended(&steps, pod, pod_scrape(&steps, pod, &mut rng, |_, _| v));
            let labels = [
                ("namespace", pod.namespace.into()),
                ("pod", pod.name.clone()),
                ("container", deploy.clone()),
                ("node", instance(pod.node)),
                ("resource", resource.into()),
                ("unit", unit.into()),
            ];
            sink(series(
                "kube_pod_container_resource_requests",
                labels,
                samples,
            ));
        }
    }
}

/// `samples` of a pod's series, with a stale marker at the first scrape after the pod ended, as
/// Prometheus writes when kube-state-metrics stops exposing a deleted pod.
fn ended(steps: &[i64], pod: &Pod, mut samples: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    let (Some(&(last, _)), Some(&after)) = (samples.last(), steps.iter().find(|&&t| t >= pod.end))
    else {
        return samples;
    };
    // At the next scrape, with the offset within the interval the pod's samples had.
    let before = steps
        .iter()
        .rev()
        .find(|&&t| t < pod.end)
        .copied()
        .unwrap_or(last);
    let stale = f64::from_bits(fleetscope_store::STALE_NAN_BITS);
    samples.push(((after + last - before).max(last + 1), stale));
    samples
}

/// A pod's lifetime and identity.
#[derive(Debug, Clone)]
struct Pod {
    namespace: &'static str,
    name: String,
    node: usize,
    start: i64,
    end: i64,
    cores: f64,
}

impl Pod {
    fn alive(&self, t: i64) -> bool {
        (self.start..self.end).contains(&t)
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("namespace", self.namespace.into()),
            ("pod", self.name.clone()),
            (
                "container",
                self.name
                    .rsplit_once('-')
                    .map_or(self.name.clone(), |(d, _)| d.to_string()),
            ),
            ("instance", instance(self.node)),
        ]
    }
}

/// Pods per node slot, each replaced by a new one (new name) when its random lifetime ends.
fn pod_schedule(spec: &FleetSpec, cluster: &ClusterSpec, seed: u64) -> Vec<Pod> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    let namespaces: &[&'static str] = match cluster.kind {
        ClusterKind::Control => &["kube-system", "monitoring", "karmada-system"],
        ClusterKind::Training => &["training-jobs", "kubeflow", "monitoring"],
        ClusterKind::Serving => &["inference", "gateway", "monitoring"],
    };
    let end = spec.start_ms + spec.duration_ms;
    let mut pods = Vec::new();
    for node in 0..cluster.nodes {
        for slot in 0..cluster.pods_per_node {
            let namespace = namespaces[slot % namespaces.len()];
            let deploy = format!("{}-{}", namespace.split('-').next().unwrap_or("app"), slot);
            // Stagger first pods into the past so churn is spread over the span.
            let mut start = spec.start_ms - rng.random_range(0..4 * 3_600_000);
            while start < end {
                let life = rng.random_range(1_800_000..8 * 3_600_000);
                let name = format!("{deploy}-{:05x}", rng.random_range(0..0xfffff));
                // Pods share their node: together they use up to about 80% of its CPUs.
                let max_cores = cluster.cpus_per_node as f64 / cluster.pods_per_node as f64 * 1.6;
                let cores = rng.random_range(0.02..max_cores.max(0.03));
                if start + life > spec.start_ms {
                    pods.push(Pod {
                        namespace,
                        name,
                        node,
                        start,
                        end: start + life,
                        cores,
                    });
                }
                start += life;
            }
        }
    }
    pods
}

fn series<L: IntoIterator<Item = (&'static str, String)>>(
    name: &'static str,
    labels: L,
    samples: Vec<(i64, f64)>,
) -> GenSeries {
    GenSeries {
        name,
        labels: labels.into_iter().collect(),
        samples,
    }
}

/// Samples of a node-level target at every step.
fn scrape(
    steps: &[i64],
    rng: &mut StdRng,
    node: usize,
    mut f: impl FnMut(usize, &mut StdRng) -> f64,
) -> Vec<(i64, f64)> {
    let offset = target_offset(node, rng);
    (0..steps.len())
        .map(|i| (steps[i] + offset + jitter(rng), f(i, rng)))
        .collect()
}

/// Samples of a pod-level series while the pod lives.
fn pod_scrape(
    steps: &[i64],
    pod: &Pod,
    rng: &mut StdRng,
    mut f: impl FnMut(usize, &mut StdRng) -> f64,
) -> Vec<(i64, f64)> {
    let offset = target_offset(pod.node, rng);
    (0..steps.len())
        .filter(|&i| pod.alive(steps[i]))
        .map(|i| (steps[i] + offset + jitter(rng), f(i, rng)))
        .collect()
}

/// Each target is scraped at its own fixed phase within the interval.
fn target_offset(node: usize, _rng: &mut StdRng) -> i64 {
    (fxhash(&node.to_le_bytes()) % 15_000) as i64
}

/// Prometheus keeps scrape timestamps on the grid within 2 ms tolerance; occasionally they slip.
fn jitter(rng: &mut StdRng) -> i64 {
    if rng.random_bool(0.05) {
        rng.random_range(-25..25)
    } else {
        0
    }
}

fn instance(node: usize) -> String {
    format!("10.0.{}.{}:9100", node / 250, node % 250 + 1)
}

fn load_base(kind: ClusterKind) -> f64 {
    match kind {
        ClusterKind::Control => 0.15,
        ClusterKind::Training => 0.85,
        ClusterKind::Serving => 0.45,
    }
}

fn load_level(kind: ClusterKind, rng: &mut StdRng) -> f64 {
    (load_base(kind) + rng.random_range(-0.1..0.1)).clamp(0.02, 0.98)
}

/// Serving load follows the day (peak at 14:00 UTC); the others are flat.
fn diurnal(kind: ClusterKind, t: i64) -> f64 {
    if kind != ClusterKind::Serving {
        return 1.0;
    }
    let hour = (t.rem_euclid(86_400_000) as f64) / 3_600_000.0;
    0.6 + 0.4 * ((hour - 8.0) / 24.0 * std::f64::consts::TAU).sin()
}

/// A small stable hash (FNV-1a) for seeds.
fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_preset_is_deterministic_and_varied() {
        let spec = FleetSpec::preset("tiny", 1_700_000_000_000).unwrap();
        let collect = || {
            let mut out = Vec::new();
            for c in &spec.clusters {
                generate_cluster(&spec, c, &mut |s| out.push(s));
            }
            out
        };
        let a = collect();
        let b = collect();
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.samples == y.samples && x.labels == y.labels)
        );
        let names: std::collections::BTreeSet<_> = a.iter().map(|s| s.name).collect();
        for want in [
            "node_cpu_seconds_total",
            "DCGM_FI_DEV_GPU_UTIL",
            "http_request_duration_seconds_bucket",
            "kube_pod_info",
        ] {
            assert!(names.contains(want), "{want} missing");
        }
        for s in &a {
            assert!(
                s.samples.windows(2).all(|w| w[0].0 < w[1].0),
                "{} samples in time order",
                s.name
            );
        }
        // Counters only go up, except at a reboot (reset to zero).
        for s in a.iter().filter(|s| s.name == "node_cpu_seconds_total") {
            assert!(
                s.samples
                    .windows(2)
                    .all(|w| w[1].1 >= w[0].1 || w[1].1 < 15.0),
                "{:?}",
                s.labels
            );
        }
    }
}
