"""Speed and jet multiplicities of the Z -> mu mu + jets source (:mod:`jetfm.data.zjets`).

    python benchmarks/bench_zjets.py [--n-events 300000] [--hard-process zjet|inclusive]
        [--workers 2] [--seed 11] [--no-hadronization] [--want 7:200 8:40]

Generates ``--n-events`` events with the default :class:`~jetfm.data.zjets.ZJetsConfig`
(hard process and hadronisation as chosen) and prints: wall time and events/s, the CPU time of
all processes (the main one and every worker, read from /proc while they run) and events per
CPU second, the exclusive counts per jet multiplicity with the ratios R_(n+1)/n =
N_(n+1) / N_n and their statistical errors R sqrt(1/N_n + 1/N_(n+1)), the error-weighted mean
ratio over the multiplicities from ``--fit-from`` to 6 with its chi2, and, for each
``--want n:count``, the events (and the time on 2 free cores at the measured CPU rate) needed
for that many n-jet events, from the measured n-jet fraction and from the 6-jet fraction times
the mean ratio. Prints figures only; timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np

from jetfm.data.zjets import ZJetsConfig, generate_zjets

TICK = os.sysconf("SC_CLK_TCK")


def _descendant_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of every descendant process of ``root`` (Linux /proc)."""
    children: dict[int, list[tuple[int, float]]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(
            (int(name), (int(fields[11]) + int(fields[12])) / TICK))
    found, todo = {}, [root]
    while todo:
        for pid, cpu in children.get(todo.pop(), []):
            found[pid] = cpu
            todo.append(pid)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-events", type=int, default=300_000)
    parser.add_argument("--hard-process", default="zjet", choices=("zjet", "inclusive"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-hadronization", action="store_true")
    parser.add_argument("--fit-from", type=int, default=None,
                        help="first n of the mean ratio R_(n+1)/n (default 1 for zjet, 2 for "
                        "inclusive)")
    parser.add_argument("--want", nargs="*", default=["7:200", "8:40"])
    args = parser.parse_args()

    cpu_seen: dict[int, float] = {}
    running = True

    def poll() -> None:
        while running:
            for pid, cpu in _descendant_cpu(os.getpid()).items():
                cpu_seen[pid] = max(cpu, cpu_seen.get(pid, 0.0))
            time.sleep(0.5)

    threading.Thread(target=poll, daemon=True).start()
    config = ZJetsConfig(hard_process=args.hard_process,
                         hadronization=not args.no_hadronization)
    start, cpu_start = time.perf_counter(), time.process_time()
    events = generate_zjets(args.n_events, config, args.seed, args.workers, progress=False)
    wall = time.perf_counter() - start
    running = False
    cpu = sum(cpu_seen.values()) + time.process_time() - cpu_start
    print(f"{args.hard_process}, hadronization={not args.no_hadronization}: "
          f"{args.n_events} events, {args.workers} workers, load {os.getloadavg()[0]:.1f}")
    print(f"  wall {wall:.0f} s: {args.n_events / wall:.0f} events/s; "
          f"CPU {cpu:.0f} s: {args.n_events / cpu:.0f} events per CPU second")
    cuts = events.meta["cuts"]
    print(f"  events removed: {cuts['events']['removed']}; jets removed: "
          f"{cuts['jets']['removed']}")
    counts = events.multiplicity_counts()
    print("  n   events    R_(n+1)/n")
    ratios, errors = [], []
    for n, count in enumerate(counts):
        following = counts[n + 1] if n + 1 < len(counts) else 0
        if count and following:
            ratio = following / count
            error = ratio * np.sqrt(1 / following + 1 / count)
            text = f"{ratio:.4f} +- {error:.4f}"
        else:
            ratio = error = np.nan
            text = "-"
        ratios.append(ratio)
        errors.append(error)
        print(f"  {n:<3} {count:<9} {text}")
    first = args.fit_from if args.fit_from is not None else (
        1 if args.hard_process == "zjet" else 2)
    r, e = np.array(ratios[first:6]), np.array(errors[first:6])
    ok = np.isfinite(r)
    weight = 1 / e[ok] ** 2
    mean = float((weight * r[ok]).sum() / weight.sum())
    chi2 = float((weight * (r[ok] - mean) ** 2).sum())
    print(f"  mean R over n = {first} ... 5: {mean:.4f} +- {1 / np.sqrt(weight.sum()):.4f} "
          f"(chi2 {chi2:.1f} for {int(ok.sum()) - 1} dof)")
    total = len(events)
    rate = args.n_events / cpu
    for item in args.want:
        n, need = (int(x) for x in item.split(":"))
        measured = counts[n] / total if n < len(counts) else 0.0
        staircase = counts[6] / total * mean ** (n - 6)
        for label, fraction in (("measured", measured), ("6-jet x mean R", staircase)):
            if fraction > 0:
                n_events = need / fraction
                print(f"  {need} events with {n} jets ({label} fraction {fraction:.2e}): "
                      f"{n_events / 1e6:.1f}M events, {n_events / rate / 2 / 60:.0f} min "
                      "on 2 free cores")


if __name__ == "__main__":
    main()
