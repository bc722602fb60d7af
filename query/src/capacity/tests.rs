use std::sync::Arc;

use fleetscope_store::{Labels, MemSeriesSet, MemSource, Source};

use super::*;

/// When the questions are asked (ms).
const T: i64 = 1_764_000_000_000;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// kube-state-metrics of a few clusters, every 30 s for the 10 minutes before `until`.
#[derive(Default)]
struct Fleet {
    set: MemSeriesSet,
}

impl Fleet {
    fn series(&mut self, pairs: &[(&str, &str)], v: f64, until: i64) {
        let labels = Labels::from_pairs(pairs.iter().copied());
        for k in 0..=20 {
            self.set.append(&labels, until - 600_000 + k * 30_000, v);
        }
    }

    fn node(
        &mut self,
        cluster: &str,
        node: &str,
        gpus: f64,
        cpu: f64,
        memory_gib: f64,
    ) -> &mut Self {
        self.node_until(cluster, node, gpus, cpu, memory_gib, T)
    }

    fn node_until(
        &mut self,
        cluster: &str,
        node: &str,
        gpus: f64,
        cpu: f64,
        memory_gib: f64,
        until: i64,
    ) -> &mut Self {
        for (resource, v) in [
            ("nvidia_com_gpu", gpus),
            ("cpu", cpu),
            ("memory", memory_gib * GIB),
        ] {
            let base = [
                ("__name__", "kube_node_status_allocatable"),
                ("cluster", cluster),
                ("node", node),
                ("resource", resource),
            ];
            self.series(&base, v, until);
        }
        let ready = [
            ("__name__", "kube_node_status_condition"),
            ("cluster", cluster),
            ("node", node),
            ("condition", "Ready"),
            ("status", "true"),
        ];
        self.series(&ready, 1.0, until);
        let cordon = [
            ("__name__", "kube_node_spec_unschedulable"),
            ("cluster", cluster),
            ("node", node),
        ];
        self.series(&cordon, 0.0, until);
        self
    }

    fn cordon(&mut self, cluster: &str, node: &str) -> &mut Self {
        // A later value wins: the last sample says cordoned.
        let l = Labels::from_pairs([
            ("__name__", "kube_node_spec_unschedulable"),
            ("cluster", cluster),
            ("node", node),
        ]);
        self.set.append(&l, T, 1.0);
        self
    }

    fn not_ready(&mut self, cluster: &str, node: &str) -> &mut Self {
        let l = Labels::from_pairs([
            ("__name__", "kube_node_status_condition"),
            ("cluster", cluster),
            ("node", node),
            ("condition", "Ready"),
            ("status", "true"),
        ]);
        self.set.append(&l, T, 0.0);
        self
    }

    /// A pod of one container on `node` ("" when not bound yet) in `phase`.
    #[allow(clippy::too_many_arguments)]
    fn pod(
        &mut self,
        cluster: &str,
        pod: &str,
        node: &str,
        phase: &str,
        gpus: f64,
        cpu: f64,
        memory_gib: f64,
    ) -> &mut Self {
        for p in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
            let l = [
                ("__name__", "kube_pod_status_phase"),
                ("cluster", cluster),
                ("namespace", "ml"),
                ("pod", pod),
                ("phase", p),
            ];
            self.series(&l, if p == phase { 1.0 } else { 0.0 }, T);
        }
        for (resource, v) in [
            ("nvidia_com_gpu", gpus),
            ("cpu", cpu),
            ("memory", memory_gib * GIB),
        ] {
            if v > 0.0 {
                let l = [
                    ("__name__", "kube_pod_container_resource_requests"),
                    ("cluster", cluster),
                    ("namespace", "ml"),
                    ("pod", pod),
                    ("container", "main"),
                    ("node", node),
                    ("resource", resource),
                ];
                self.series(&l, v, T);
            }
        }
        self
    }

    fn source(&mut self) -> Arc<dyn Source> {
        Arc::new(MemSource {
            set: self.set.clone(),
            external: Labels::empty(),
        })
    }
}

fn job(pods: u64, gpus: f64) -> Job {
    Job {
        pods,
        gpus_per_pod: gpus,
        cpu_per_pod: 0.0,
        memory_per_pod: 0.0,
    }
}

async fn answer(fleet: &mut Fleet, job: Job) -> BTreeMap<String, ClusterCapacity> {
    let c = capacity(&fleet.source(), job, &[], T).await.unwrap();
    c.clusters
        .into_iter()
        .map(|c| (c.cluster.clone(), c))
        .collect()
}

#[tokio::test]
async fn free_gpus_spread_over_nodes_do_not_fit_a_gang() {
    let mut f = Fleet::default();
    // "a": 4 free GPUs, 2 on each of two nodes; "b": 4 free on one node.
    f.node("a", "a1", 8.0, 64.0, 512.0)
        .node("a", "a2", 8.0, 64.0, 512.0);
    f.pod("a", "x1", "a1", "Running", 6.0, 4.0, 32.0)
        .pod("a", "x2", "a2", "Running", 6.0, 4.0, 32.0);
    f.node("b", "b1", 8.0, 64.0, 512.0)
        .pod("b", "y1", "b1", "Running", 4.0, 4.0, 32.0);
    let c = answer(&mut f, job(4, 4.0)).await;
    assert_eq!(
        (c["a"].free_gpus, c["a"].largest_free_gpus_on_a_node),
        (4.0, 2.0)
    );
    assert_eq!((c["a"].placeable_pods, c["a"].fits), (0, false));
    assert_eq!((c["b"].free_gpus, c["b"].placeable_pods), (4.0, 1));
    // One pod of four GPUs fits "b", not the job of four such pods.
    assert!(!c["b"].fits);
    let c = answer(&mut f, job(1, 4.0)).await;
    assert!(c["b"].fits && !c["a"].fits);
    assert_eq!(c["b"].jobs_that_fit, 1);
    // Two GPUs per pod: "a" places two pods (one per node), "b" two on its one node.
    let c = answer(&mut f, job(2, 2.0)).await;
    assert_eq!((c["a"].placeable_pods, c["b"].placeable_pods), (2, 2));
    assert!(c["a"].fits && c["b"].fits);
}

#[tokio::test]
async fn the_classic_example_only_the_second_cluster_fits() {
    let mut f = Fleet::default();
    f.node("spread", "s1", 4.0, 64.0, 512.0)
        .node("spread", "s2", 4.0, 64.0, 512.0);
    f.pod("spread", "p1", "s1", "Running", 2.0, 1.0, 1.0)
        .pod("spread", "p2", "s2", "Running", 2.0, 1.0, 1.0);
    f.node("packed", "k1", 4.0, 64.0, 512.0);
    let capacity = capacity(&f.source(), job(1, 4.0), &[], T).await.unwrap();
    let fits: Vec<(&str, bool)> = capacity
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.fits))
        .collect();
    assert_eq!(fits, [("packed", true), ("spread", false)]);
    assert!(capacity.any_fits());
}

#[tokio::test]
async fn cordoned_and_unready_nodes_are_left_out() {
    let mut f = Fleet::default();
    f.node("c", "big", 8.0, 64.0, 512.0)
        .node("c", "sick", 8.0, 64.0, 512.0)
        .node("c", "small", 4.0, 64.0, 512.0);
    f.cordon("c", "big").not_ready("c", "sick");
    let c = answer(&mut f, job(2, 4.0)).await;
    assert_eq!(c["c"].excluded_nodes, ["big", "sick"]);
    assert_eq!(
        (c["c"].free_gpus, c["c"].placeable_pods, c["c"].fits),
        (4.0, 1, false)
    );
}

#[tokio::test]
async fn pending_pods_hold_their_node_once_bound() {
    let mut f = Fleet::default();
    f.node("c", "n1", 8.0, 64.0, 512.0);
    f.pod("c", "bound", "n1", "Pending", 4.0, 1.0, 1.0); // scheduled, pulling its image
    f.pod("c", "unbound", "", "Pending", 4.0, 1.0, 1.0); // waiting for a node: holds nothing
    f.pod("c", "done", "n1", "Succeeded", 4.0, 1.0, 1.0); // finished: holds nothing
    let c = answer(&mut f, job(1, 4.0)).await;
    assert_eq!((c["c"].free_gpus, c["c"].placeable_pods), (4.0, 1));
}

#[tokio::test]
async fn a_cluster_that_stopped_reporting_is_stale_and_never_fits() {
    let mut f = Fleet::default();
    f.node("live", "l1", 8.0, 64.0, 512.0);
    f.node_until("gone", "g1", 8.0, 64.0, 512.0, T - 3_600_000);
    let c = answer(&mut f, job(1, 8.0)).await;
    assert!(c["live"].fits && !c["live"].stale);
    assert!(c["gone"].stale && !c["gone"].fits, "{:?}", c["gone"]);
    assert_eq!(c["gone"].last_seen_ms, T - 3_600_000);
    // Its last data is still shown.
    assert_eq!(c["gone"].free_gpus, 8.0);
}

#[tokio::test]
async fn cpu_or_memory_can_be_the_binding_limit() {
    let mut f = Fleet::default();
    f.node("c", "n1", 8.0, 48.0, 256.0)
        .node("c", "n2", 8.0, 48.0, 256.0);
    let cpu_bound = Job {
        pods: 3,
        gpus_per_pod: 1.0,
        cpu_per_pod: 30.0,
        memory_per_pod: 0.0,
    };
    let c = answer(&mut f, cpu_bound).await;
    assert_eq!((c["c"].placeable_pods, c["c"].fits), (2, false));
    let memory_bound = Job {
        pods: 4,
        gpus_per_pod: 1.0,
        cpu_per_pod: 1.0,
        memory_per_pod: 100.0 * GIB,
    };
    let c = answer(&mut f, memory_bound).await;
    assert_eq!((c["c"].placeable_pods, c["c"].fits), (4, true));
    let c = answer(
        &mut f,
        Job {
            pods: 5,
            ..memory_bound
        },
    )
    .await;
    assert_eq!((c["c"].placeable_pods, c["c"].fits), (4, false));
}

#[tokio::test]
async fn clusters_can_be_chosen_and_bad_jobs_are_refused() {
    let mut f = Fleet::default();
    f.node("a", "a1", 8.0, 64.0, 512.0)
        .node("b", "b1", 8.0, 64.0, 512.0);
    let source = f.source();
    let c = capacity(&source, job(1, 1.0), &["b".into()], T)
        .await
        .unwrap();
    assert_eq!(c.clusters.len(), 1);
    assert_eq!(c.clusters[0].cluster, "b");
    assert!(capacity(&source, job(0, 1.0), &[], T).await.is_err());
    assert!(capacity(&source, job(1, 0.0), &[], T).await.is_err());
    assert!(capacity(&source, job(1, -1.0), &[], T).await.is_err());
}

#[test]
fn quantities() {
    assert_eq!(parse_quantity("500m"), Ok(0.5));
    assert_eq!(parse_quantity("16Gi"), Ok(16.0 * GIB));
    assert_eq!(parse_quantity("1G"), Ok(1e9));
    assert_eq!(parse_quantity("4"), Ok(4.0));
    assert!(parse_quantity("4x").is_err());
    assert!(parse_quantity("-1").is_err());
    assert!(parse_quantity("lots").is_err());
}
