//! `deploy/` stays true: manifests are valid Kubernetes objects (checked by a real validator),
//! every container argument list parses with the real CLI, and every dashboard expression parses
//! and returns data on the demo fleet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use clap::Parser;
use fleetscope::cmd::Cli;
use fleetscope_query::{Catalog, Engine, QueryValue};
use fleetscope_store::objstore;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["kubernetes/member", "kubernetes/host"] {
        for e in std::fs::read_dir(deploy_dir().join(sub)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("--quiet")
        .args(files)
        .output()
        .expect("kubernetes-validate (PyPI) must be installed; .ci/test-deps installs it")
}

#[test]
fn manifests_are_valid_kubernetes_objects() {
    let files = manifests();
    assert!(files.len() >= 6, "{files:?}");
    let out = validate(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does reject a broken object.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n",
    )
    .unwrap();
    assert!(!validate(&[bad]).status.success());
}

/// Every `args` list (Kubernetes) or `command` list (compose) of a fleetscope container.
fn fleetscope_arg_lists(doc: &Yaml, out: &mut Vec<Vec<String>>) {
    match doc {
        Yaml::Hash(h) => {
            let image = h
                .get(&Yaml::String("image".into()))
                .and_then(Yaml::as_str)
                .unwrap_or("");
            if image.contains("fleetscope") {
                for key in ["args", "command"] {
                    if let Some(Yaml::Array(items)) = h.get(&Yaml::String(key.into())) {
                        out.push(
                            items
                                .iter()
                                .filter_map(|i| i.as_str().map(String::from))
                                .collect(),
                        );
                    }
                }
            }
            for v in h.values() {
                fleetscope_arg_lists(v, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|i| fleetscope_arg_lists(i, out)),
        _ => {}
    }
}

#[test]
fn every_container_argument_list_parses_with_the_cli() {
    let mut lists = Vec::new();
    let mut files = manifests();
    files.push(deploy_dir().join("compose.yaml"));
    for f in &files {
        for doc in YamlLoader::load_from_str(&std::fs::read_to_string(f).unwrap()).unwrap() {
            fleetscope_arg_lists(&doc, &mut lists);
        }
    }
    assert!(lists.len() >= 5, "found {lists:?}");
    for args in lists {
        let argv = std::iter::once("fleetscope".to_string()).chain(args.iter().cloned());
        // The object store comes from the environment in the manifests.
        let parsed =
            Cli::try_parse_from(argv.chain(["--objstore".to_string(), "memory://".to_string()]));
        assert!(
            parsed.is_ok(),
            "{args:?}: {}",
            parsed.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    // And a renamed flag would be caught.
    assert!(
        Cli::try_parse_from([
            "fleetscope",
            "shipper",
            "--clusterr=a",
            "--objstore=memory://"
        ])
        .is_err()
    );
}

#[test]
fn dashboard_queries_run_on_the_demo_fleet() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy_dir().join("grafana/fleet-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(exprs.len() >= 6);
    exprs.push("up".into()); // the `$cluster` variable's label_values(up, cluster)

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .args([
            "demo",
            "--dir",
            dir.path().to_str().unwrap(),
            "--duration",
            "1h",
            "--no-serve",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = objstore::open(&format!("file://{}", dir.path().join("bucket").display())).unwrap();
    let catalog = Arc::new(Catalog::new(store));
    rt.block_on(catalog.refresh()).unwrap();
    let end = rt.block_on(async { catalog.blocks().iter().map(|m| m.max_t).max().unwrap() });
    let source: Arc<dyn fleetscope_query::Source> = catalog;
    for expr in exprs {
        // Grafana's variables, as Grafana substitutes them for "All" and a 1m scrape interval.
        let q = expr
            .replace("$cluster", ".*")
            .replace("$__rate_interval", "1m");
        Engine::parse(&q).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let v = rt
            .block_on(Engine::default().range(&source, &q, end - 1_800_000, end, 60_000))
            .unwrap();
        let QueryValue::Matrix(series) = v else {
            panic!("{q}: not a matrix")
        };
        assert!(!series.is_empty(), "{q}: no data on the demo fleet");
    }
}
