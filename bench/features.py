"""Speed of the feature path on a synthetic day: snapshots (symbol x tick) per second for the 200
features in numpy (float64, one core) and in torch (float64; CUDA when present, there with and without
the Triton kernel of the book features; else the CPU), the largest difference between the two, and what
the stages before and after cost (replay into book tables, the grid, the whole dataset written to disk).

    python bench/features.py --n-symbols 8 --hours 1 --repeats 3
"""
import argparse, statistics, tempfile, time
from pathlib import Path

import numpy as np

from mqbench.features import DatasetConfig, build_dataset, compute_features, grid_from_book
from mqbench.prepare import book_tables, synthetic_day
from common import device_name, machine, write_results


def timed(f, repeats):
    "(result of the last run, median seconds, all seconds)."
    secs = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = f(); secs.append(time.perf_counter() - t0)
    return out, statistics.median(secs), secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-symbols", type=int, default=8, help="symbols in the synthetic day")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/features[-GPU].json)")
    a = ap.parse_args()
    import torch
    from mqbench.core import torch_device
    dev = torch_device(a.device)
    day = synthetic_day(symbols=a.n_symbols, hours=a.hours, seed=0)
    res = {"symbols": a.n_symbols, "hours": a.hours, "day": str(day)}

    (tables, counters), t_replay, _ = timed(lambda: book_tables(day, every_ms=100), 1)
    grid, t_grid, _ = timed(lambda: grid_from_book(tables["depth"], tables["bbo"], tables["trades"], 100), a.repeats)
    n, T = grid.shape
    res["messages"], res["snapshots"] = counters["messages"], n * T
    res["replay_msgs_per_s"] = round(counters["messages"] / t_replay)
    res["grid_snapshots_per_s"] = round(n * T / t_grid)

    (X, names, _), t_np, s_np = timed(lambda: compute_features(grid), a.repeats)
    res["features"] = len(names)
    res["numpy"] = {"snapshots_per_s": round(n * T / t_np), "seconds_median": round(t_np, 3), "runs": [round(s, 3) for s in s_np]}

    # on CUDA the book features come from their Triton kernel (kernels="auto"); timed without it too
    for key, kernels in [("torch", "auto")] + ([("torch_without_kernel", "torch")] if dev.type == "cuda" else []):
        compute_features(grid, backend="torch", device=dev, kernels=kernels)          # first call: allocator, kernels
        def run_torch():
            out = compute_features(grid, backend="torch", device=dev, as_numpy=False, kernels=kernels)
            if dev.type == "cuda": torch.cuda.synchronize()
            return out
        (Xt, _, _), t_t, s_t = timed(run_torch, a.repeats)
        Xt = Xt.cpu().numpy()
        rel = np.abs(Xt - X) / np.maximum(np.abs(X), 1e-6)
        res[key] = {"device": str(dev), "name": device_name(dev),
                    "threads": torch.get_num_threads(), "snapshots_per_s": round(n * T / t_t),
                    "seconds_median": round(t_t, 3), "runs": [round(s, 3) for s in s_t],
                    "max_rel_diff_vs_numpy": float(rel[np.isfinite(rel)].max()),
                    "speedup_vs_numpy": round(t_np / t_t, 2)}

    with tempfile.TemporaryDirectory() as d:
        stats, t_ds, _ = timed(lambda: build_dataset(grid, Path(d) / "ds", DatasetConfig(), overwrite=True), 1)
    res["dataset"] = {"seconds": round(t_ds, 2), "windows": sum(stats["counts"][f"{k}_windows"] for k in ("train", "eval", "test")),
                      "snapshots_per_s": round(n * T / t_ds), "class_balance_train": stats["class_balance"]["train"]}
    res["machine"] = machine(torch=torch.__version__)
    write_results(res, "features", a.out, gpu=res["torch"]["name"] if dev.type == "cuda" else None)


if __name__ == "__main__":
    main()
