"""Throughput of the Binance depth-stream book: reading captures and rebuilding books, on one core.

    .venv/bin/python bench/depth.py                     # the real ETHUSDT capture and a synthetic 200,000-diff one
    .venv/bin/python bench/depth.py --diffs 50000       # a smaller synthetic capture
    .venv/bin/python bench/depth.py --input cap.gz      # your own capture or historical depth CSV (or several)

For each input, in one process that first compiles the loops on a tiny capture, the median of `--runs` passes of:

  read      read_depth: gunzip, split lines, depthUpdate lines through the compiled scanner and the rest through
            orjson, decimal strings to exact digits; for comparison also without the scanner (all lines through
            orjson, then through the standard library's json)
  rebuild   rebuild from the messages read: ticks, Binance's sync rules, the book, BBO, depth (10 levels every
            100 ms) and events, as DataFrames
  total     both: what `depth_book` spends before writing parquet

messages/s counts every line of the input (snapshots, diffs, bookTickers, trades); diffs/s and levels/s count the
diffs applied to the book and the price levels they carry. Results are printed and written to bench/results/depth.json.
"""
from __future__ import annotations
import argparse, json, os, statistics, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from common import machine, write_results


def synthetic(diffs: int) -> Path:
    "A cached synthetic USD-M capture of `diffs` diffs (with a bookTicker each and trades), under data/bench/."
    from mqbench.sources.binance_depth import synthetic_capture
    path = ROOT / "data" / "bench" / f"depth_synth_{diffs}.gz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic_capture(path, diffs=diffs, snapshot_every=max(diffs // 4, 1), seed=0)
    return path


def median_time(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t)
    return statistics.median(times), out


def measure(files: list, runs: int) -> dict:
    from mqbench.sources import binance_depth as bd
    t_read, msgs = median_time(lambda: bd.read_depth(files), runs)
    t_orjson, _ = median_time(lambda: bd.read_depth(files, scan=False), max(1, runs // 2))
    saved = bd.loads
    bd.loads = json.loads
    try: t_json, _ = median_time(lambda: bd.read_depth(files, scan=False), max(1, runs // 2))
    finally: bd.loads = saved
    t_book, res = median_time(lambda: bd.rebuild(msgs, levels=10, every_ms=100), runs)
    n = msgs.messages
    applied = res.applied
    levels = int(sum(((msgs.diffs[o][1:] - msgs.diffs[o][:-1])[applied]).sum() for o in ("b_off", "a_off")))
    return {"input": [str(f) for f in files], "bytes": sum(os.path.getsize(f) for f in files), "messages": n,
            "diffs_applied": int(applied.sum()), "levels_applied": levels, "gaps": res.counters["gaps"],
            "read_s": round(t_read, 3), "read_no_scanner_s": round(t_orjson, 3), "read_no_scanner_stdlib_json_s": round(t_json, 3),
            "rebuild_s": round(t_book, 3), "read_msgs_per_s": round(n / t_read), "read_msgs_per_s_no_scanner": round(n / t_orjson),
            "read_msgs_per_s_no_scanner_stdlib_json": round(n / t_json), "rebuild_msgs_per_s": round(n / t_book),
            "rebuild_diffs_per_s": round(applied.sum() / t_book), "rebuild_levels_per_s": round(levels / t_book),
            "total_msgs_per_s": round(n / (t_read + t_book)),
            "book_tickers": {k: v for k, v in bd.check_book_tickers(res).items() if k != "examples"}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", nargs="*", help="captures or historical depth CSVs, measured together")
    p.add_argument("--diffs", type=int, default=200_000, help="diffs in the synthetic capture")
    p.add_argument("--runs", type=int, default=5, help="passes per measure; the median is reported")
    p.add_argument("--out", help="results file (default bench/results/depth.json)")
    a = p.parse_args()
    from mqbench.core import real_data_dir
    from mqbench.sources import binance_depth as bd
    warm = ROOT / "data" / "bench" / "depth_warm.gz"
    warm.parent.mkdir(parents=True, exist_ok=True)
    bd.synthetic_capture(warm, diffs=50)
    bd.rebuild(bd.read_depth(warm))                  # loads (or compiles) the loops before anything is timed
    inputs = {"input": a.input} if a.input else {
        "real ETHUSDT capture": [real_data_dir() / "binance_usdm_ethusdt_20240808_streams.gz"],
        f"synthetic, {a.diffs:,} diffs": [synthetic(a.diffs)]}
    import orjson
    res = {"machine": machine(orjson=orjson.__version__, json_lib=bd.JSON_LIB), "runs": a.runs,
           "results": {name: measure(files, a.runs) for name, files in inputs.items()}}
    cols = [("messages", 10), ("read_msgs_per_s", 16), ("read_msgs_per_s_no_scanner", 27),
            ("read_msgs_per_s_no_scanner_stdlib_json", 39), ("rebuild_msgs_per_s", 19),
            ("rebuild_diffs_per_s", 20), ("rebuild_levels_per_s", 21), ("total_msgs_per_s", 17)]
    print(f"{'input':<28}" + "".join(f" {c:>{w}}" for c, w in cols))
    for name, r in res["results"].items():
        print(f"{name:<28}" + "".join(f" {r[c]:>{w},}" for c, w in cols))
    write_results(res, "depth", a.out)


if __name__ == "__main__":
    main()
