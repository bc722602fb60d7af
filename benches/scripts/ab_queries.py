#!/usr/bin/env python3
"""A/B of two fleetscope builds on one bucket: the same instant queries against two queriers,
alternated (A B, B A, ...), warm medians, answers compared.

    benches/scripts/ab_queries.py OLD_BIN NEW_BIN file:///path/to/bucket UNIX_TIME [--runs 21]
        [--new-parallelism N] [--only SUBSTRING]

The bucket is any fleetscope bucket, e.g. the one `fleetscope-bench compare --work DIR` leaves in
DIR/fleetscope-bucket (its blocks end at the preset's end: pass that time)."""
import argparse, json, statistics, subprocess, time, urllib.parse, urllib.request

QUERIES = [
    "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))",
    "avg by (cluster, modelName) (DCGM_FI_DEV_GPU_UTIL)",
    "sum by (cluster) (DCGM_FI_DEV_FB_USED) / sum by (cluster) (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)",
    "histogram_quantile(0.99, sum by (le, cluster) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(5, sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total[5m])))",
    "node_cpu_seconds_total",
]

def main():
    p = argparse.ArgumentParser()
    p.add_argument("old"); p.add_argument("new"); p.add_argument("bucket"); p.add_argument("time")
    p.add_argument("--runs", type=int, default=21)
    p.add_argument("--new-parallelism", type=int)
    p.add_argument("--only", default="")
    a = p.parse_args()
    ports, procs = (19190, 19191), []
    for port, binary in zip(ports, (a.old, a.new)):
        extra = ["--query.parallelism", str(a.new_parallelism)] if binary is a.new and a.new_parallelism else []
        procs.append(subprocess.Popen([binary, "querier", "--objstore", a.bucket, "--listen",
                                       f"127.0.0.1:{port}", "--log.level", "warn"] + extra,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(3)

    def query(port, q):
        data = urllib.parse.urlencode({"query": q, "time": a.time}).encode()
        started = time.perf_counter()
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query", data).read()
        return (time.perf_counter() - started) * 1000, json.loads(body)["data"]["result"]

    print("| query (instant) | old (ms) | new (ms) | new / old | same answer |\n|---|---|---|---|---|")
    try:
        for q in (q for q in QUERIES if a.only in q):
            answers = [sorted(json.dumps(r, sort_keys=True) for r in query(port, q)[1]) for port in ports]
            times = ([], [])
            for run in range(a.runs):
                for i in ((0, 1) if run % 2 == 0 else (1, 0)):
                    times[i].append(query(ports[i], q)[0])
            old, new = statistics.median(times[0]), statistics.median(times[1])
            same = "yes" if answers[0] == answers[1] else "NO"
            print(f"| `{q}` | {old:.1f} | {new:.1f} | {new / old:.2f} | {same} |", flush=True)
    finally:
        for proc in procs:
            proc.kill()

if __name__ == "__main__":
    main()
