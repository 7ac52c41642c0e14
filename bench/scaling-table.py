#!/usr/bin/env python3
"""The scaling table of docs/performance.md ("Past one node") from bench/scaling-netns.sh's output.

    python3 bench/scaling-table.py OUT_DIR

Reads OUT_DIR/steps/*.json (step times) and OUT_DIR/RATE/p*.json (allreduce times between
namespace hosts), fits the cost model of each allreduce path per link rate, and prints the fits
and the predicted throughput / efficiency at 2, 8, 32 and 64 ranks as Markdown.

Models (n = bytes of the buffer, p = ranks, one rank per host; alpha = latency per message,
beta = seconds per byte = 1 / achieved bandwidth), with alpha and beta fitted per link rate on
2 hosts from the trainer's path (3 and 4 hosts share the 2 cores with each other and with the
kernel's TCP work, so they are shown against the model, not fitted):
  alpha = median of the 1-float allreduce / 2
  beta  = least squares (weighted by 1/t^2) of (t - 2 alpha) / (2 n) over the buffers of
          4 MB and more (smaller ones ride on tc's 1 ms burst and on socket buffers, and
          show more than the link's sustained rate)
and, for p ranks,
  trainer  (what the trainer calls today: MPI_Iallreduce in place, and Open MPI 4.1's libnbc
           takes a binomial tree for every in-place Iallreduce: reduce to rank 0, then
           broadcast, the whole buffer in each of ceil(log2 p) rounds each way)
                                               t = 2 ceil(log2 p) (alpha + n beta)
  ring     (bandwidth-optimal; measured at p = HOSTS as the trainer's call with
           --mca coll_libnbc_iallreduce_algorithm 1)
                                               t = 2 (p-1) alpha + 2 (p-1)/p n beta
"""
import glob
import json
import math
import os
import sys

RANKS = [2, 8, 32, 64]
RATES = ["1gbit", "10gbit", "25gbit"]


def load(path):
    with open(path) as f:
        return json.load(f)


def wls(rows):
    """Least squares t ~ a*x1 + b*x2 with weights 1/t^2; rows of (x1, x2, t). Returns (a, b)."""
    s11 = s12 = s22 = s1t = s2t = 0.0
    for x1, x2, t in rows:
        w = 1 / (t * t)
        s11 += w * x1 * x1; s12 += w * x1 * x2; s22 += w * x2 * x2
        s1t += w * x1 * t; s2t += w * x2 * t
    det = s11 * s22 - s12 * s12
    return (s1t * s22 - s2t * s12) / det, (s11 * s2t - s12 * s1t) / det


def binomial(p, n, alpha, beta):
    k = 2 * math.ceil(math.log2(p))
    return k * (alpha + n * beta)


def ring(p, n, alpha, beta):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n * beta


def fit(out, rate):
    """(alpha, beta) of the link from OUT/RATE/p2.json, and every measured result for the record."""
    measured = {}
    for path in sorted(glob.glob(os.path.join(out, rate, "p*.json"))):
        report = load(path)
        variant = "nbcring" if "nbcring" in path else "plain"
        for r in report["results"]:
            measured[(variant, report["ranks"], r["path"], r["name"], r["floats"])] = r
    two = [r for k, r in measured.items() if k[0] == "plain" and k[1] == 2 and k[2] == "trainer"]
    alpha = min((r for r in two), key=lambda r: r["floats"])["median"] / 2
    num = den = 0.0
    for r in two:
        if r["bytes"] >= 4_000_000:
            y, x = (r["median"] - 2 * alpha) / 2, r["bytes"]
            w = 1 / (r["median"] ** 2)
            num += w * x * y
            den += w * x * x
    return (alpha, num / den), measured


def step_seconds(out, size, batch):
    """Median seconds of one rank's step at this per-rank batch (1 rank, 1 thread, float32)."""
    path = os.path.join(out, "steps", f"{size}-b{batch}.json")
    if os.path.exists(path):
        return load(path)["median"]
    report = load(os.path.join(out, "steps", f"{size}.json"))
    row = next(r for r in report["results"] if r["ranks"] == 1 and r["threads"] == 1 and r["precision"] == "float32")
    return row["median"]


def main():
    out = sys.argv[1]
    sizes = {"small": (64, None), "paper": (256, None)}
    floats = {}
    for rate in ["none"] + RATES:
        p2 = os.path.join(out, rate, "p2.json")
        if os.path.exists(p2):
            for r in load(p2)["results"]:
                if r["name"] in sizes:
                    floats[r["name"]] = r["floats"]
    fits = {}
    print("### The links: latency and achieved bandwidth (2 hosts, the trainer's path)\n")
    print("| link (tc rate) | alpha, µs | achieved bandwidth, Gbit/s | iperf3, 1 TCP stream, Gbit/s | ping rtt avg, ms |")
    print("|---|---:|---:|---:|---:|")
    for rate in ["none"] + RATES:
        if not os.path.isdir(os.path.join(out, rate)):
            continue
        f, _ = fit(out, rate)
        fits[rate] = f
        iperf = load(os.path.join(out, rate, "iperf1.json"))["end"]["sum_received"]["bits_per_second"] / 1e9
        rtt = "?"
        for line in open(os.path.join(out, rate, "ping.txt")):
            if line.startswith("rtt"):
                rtt = line.split("=")[1].split("/")[1]
        print(f"| {rate} | {f[0] * 1e6:.0f} | {8 / f[1] / 1e9:.2f} | {iperf:.2f} | {rtt} |")
    print()

    print("### Measured allreduce medians (min), ms, 1 rank per host, against the model\n")
    print("| link | hosts | buffer | trainer path | model (binomial) | blocking MPI_Allreduce | trainer path, libnbc ring | model (ring) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for rate in ["none"] + RATES:
        if rate not in fits:
            continue
        _, measured = fit(out, rate)
        for p in sorted({k[1] for k in measured}):
            for name, n in sorted({(k[3], k[4]) for k in measured if k[1] == p}, key=lambda x: x[1]):
                def ms(variant, path):
                    r = measured.get((variant, p, path, name, n))
                    return f"{1000 * r['median']:.2f} ({1000 * r['min']:.2f})" if r else "–"
                label = f"{name} ({n:,} floats)" if name != "floats" else f"{n:,} floats"
                tm = 1000 * binomial(p, 4 * n, *fits[rate])
                rm = 1000 * ring(p, 4 * n, *fits[rate])
                ring_measured = ms("nbcring", "trainer")
                print(f"| {rate} | {p} | {label} | {ms('plain', 'trainer')} | {tm:.2f} | {ms('plain', 'blocking')} | {ring_measured} | "
                      + (f"{rm:.2f}" if ring_measured != "–" else "") + " |")
    print()

    # The links the table predicts for. 1 Gbit/s is reached here, so its fit stands as measured;
    # 10 and 25 Gbit/s are not (a 2-core VM's veth and TCP stack are the limit), so they use
    # their fitted latency and the nominal rate times the fraction of it reached at 1 Gbit/s,
    # and "10 Gbit/s as here" uses what the 10 Gbit/s link really gave.
    eta = 8 / fits["1gbit"][1] / 1e9
    scenarios = [("1 Gbit/s", fits["1gbit"])]
    for rate, nominal in [("10gbit", 10e9), ("25gbit", 25e9)]:
        if rate in fits:
            scenarios.append((f"{nominal / 1e9:.0f} Gbit/s", (fits[rate][0], 8 / (eta * nominal))))
    if "10gbit" in fits:
        scenarios.append((f"10 Gbit/s as reached here ({8 / fits['10gbit'][1] / 1e9:.1f})", fits["10gbit"]))
    print(f"The 1 Gbit/s link reached {eta:.3f} of its rate; the 10 and 25 Gbit/s columns assume the same fraction of theirs.\n")

    verdicts = []
    for size, (batch, _) in sizes.items():
        n = 4 * floats[size]
        full = step_seconds(out, size, batch)
        for regime in ["fixed global batch", "fixed per-rank batch"]:
            print(f"### {size} ({floats[size]:,} parameters, {n / 1e6:.1f} MB of gradients), {regime} "
                  + (f"(B = {batch} over all ranks)" if regime == "fixed global batch" else f"(B = {batch} per rank)") + "\n")
            print("Each link's cell: the allreduce (today's binomial tree) · predicted trials/s · efficiency"
                  " (against p × one rank at B, or one rank at B per rank) · communication's share of the step.\n")
            header = "| ranks | per-rank batch | compute s/step |"
            rule = "|---:|---:|---:|"
            for label, _ in scenarios:
                header += f" {label} |"
                rule += "---|"
            print(header)
            print(rule)
            for p in RANKS:
                if regime == "fixed global batch":
                    b = batch // p
                    compute = step_seconds(out, size, b)
                    ideal = full / p
                else:
                    b, compute, ideal = batch, full, full
                line = f"| {p} | {b} | {compute:.4f} |"
                for label, (alpha, beta) in scenarios:
                    comm = binomial(p, n, alpha, beta)
                    total = compute + comm
                    trials = (batch if regime == "fixed global batch" else batch * p) / total
                    share = comm / total
                    flag = " **⚠ > 5%**" if share > 0.05 and p == 8 and label.startswith("10 Gbit/s") else ""
                    line += f" {1000 * comm:.1f} ms · {trials:,.0f}/s · {100 * ideal / total:.0f}% · {100 * share:.1f}%{flag} |"
                    if p == 8 and label.startswith("10 Gbit/s"):
                        ring_comm = ring(p, n, alpha, beta)
                        verdicts.append(f"{size}, {regime}, {label}: communication {100 * share:.1f}% of the step "
                                        f"({1000 * comm:.1f} ms of {1000 * total:.1f} ms) with today's binomial tree"
                                        f" -> {'CROSSES' if share > 0.05 else 'under'} 5%; with a ring at the same alpha, beta: "
                                        f"{100 * ring_comm / (compute + ring_comm):.1f}% ({1000 * ring_comm:.1f} ms)")
                print(line)
            print()
    print("### 8 ranks on 10 Gbit/s\n")
    for v in verdicts:
        print("- " + v)


if __name__ == "__main__":
    main()
