#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Plot benchmarks/scaling's CSV: throughput and speedup vs threads.

    /usr/bin/python3 benchmarks/plot_scaling.py SCALING.CSV [OUTDIR [NCPUS]]

Writes OUTDIR/scaling_throughput.png (total Mops/s against threads, one
panel per primitive, log scale) and OUTDIR/scaling_speedup.png (Mops/s of
each impl divided by its primitive's shared atomic at the same thread count
and placement).  Compact placement is drawn solid, spread dashed.  NCPUS,
when given, marks the thread count where the CPUs run out.  Rows that are
not thread sweeps (fence, latency, scrape, add_scrape, add_publish,
stat_read, churn, kill_batch) are ignored.

Uses Debian's python3-matplotlib (Agg backend, no display).  Without it,
says so and exits 0: the plots are optional, the CSV is the result.
"""
import csv
import os
import sys
from collections import defaultdict

NOT_SWEEPS = {"fence", "latency", "scrape", "add_scrape", "add_publish",
              "stat_read", "churn", "kill_batch"}
# The shared-atomic baseline of each primitive (speedup = impl / baseline).
BASELINE = {
    "add": "shared atomic",
    "add_spread1024": "shared atomic spread1024",
    "ref_pair": "shared atomic inc+dec",
    "lookup_ref": "global atomic refcount",
}


def load(path):
    """{primitive: {(impl, placement): [(threads, mops), ...]}}, in CSV order."""
    data = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["primitive"] in NOT_SWEEPS:
                continue
            key = (row["impl"], row["placement"])
            data[row["primitive"]][key].append(
                (int(row["threads"]), float(row["mops_total"])))
    for series in data.values():
        for points in series.values():
            points.sort()
    return data


def style(impl, placement, colours):
    if impl not in colours:
        colours[impl] = "C%d" % (len(colours) % 10)
    dashed = placement == "spread"
    label = impl + (" (spread)" if dashed else "")
    return dict(color=colours[impl], linestyle="--" if dashed else "-",
                marker="o", markersize=3, linewidth=1.4, label=label)


def panels(plt, data, title, ylabel, values, logy, ncpus):
    prims = [p for p in data if values(p)]
    if not prims:
        return None
    fig, axes = plt.subplots(1, len(prims), figsize=(6.2 * len(prims), 5.2),
                             squeeze=False, constrained_layout=True)
    for ax, prim in zip(axes[0], prims):
        colours = {}
        for (impl, placement), pts in values(prim).items():
            xs = [t for t, _ in pts]
            ys = [v for _, v in pts]
            ax.plot(xs, ys, **style(impl, placement, colours))
        if logy:
            ax.set_yscale("log")
        if ncpus:
            ax.axvline(ncpus, color="grey", linestyle=":", linewidth=1)
            ax.text(ncpus, ax.get_ylim()[0], " %d cpus" % ncpus, color="grey",
                    fontsize=8, va="bottom")
        ax.set_title(prim)
        ax.set_xlabel("threads")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    return fig


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path = argv[1]
    outdir = argv[2] if len(argv) > 2 else os.path.dirname(path) or "."
    ncpus = int(argv[3]) if len(argv) > 3 else 0
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: matplotlib is not installed for %s "
              "(Debian: apt-get install python3-matplotlib)" % sys.executable)
        return 0
    data = load(path)

    def throughput(prim):
        return data[prim]

    def speedup(prim):
        base = BASELINE.get(prim)
        out = {}
        for (impl, placement), pts in data[prim].items():
            ref = dict(data[prim].get((base, placement), []))
            sp = [(t, v / ref[t]) for t, v in pts if ref.get(t)]
            if sp:
                out[(impl, placement)] = sp
        return out

    written = []
    fig = panels(plt, data, "percpu scaling: total Mops/s (all threads) vs "
                 "threads; compact solid, spread dashed", "Mops/s total (log)",
                 throughput, True, ncpus)
    if fig:
        name = os.path.join(outdir, "scaling_throughput.png")
        fig.savefig(name, dpi=110)
        written.append(name)
    fig = panels(plt, data, "speedup vs the shared atomic of the same "
                 "primitive (Mops/s ratio, same threads and placement)",
                 "x shared atomic (log)", speedup, True, ncpus)
    if fig:
        name = os.path.join(outdir, "scaling_speedup.png")
        fig.savefig(name, dpi=110)
        written.append(name)
    for name in written:
        print("plot written to %s" % name)
    if not written:
        print("plots skipped: no thread-sweep rows in %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
