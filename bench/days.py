"""Days per hour for `prepare` over many days (mqbench.days.prepare_days) at 1 and 2 workers, and the time of one day
there against the single-file path (mqbench.prepare.prepare_itch) on the same file.

    .venv/bin/python bench/days.py                                   # 4 synthetic days of 4 symbols x 30 min, cached in data/bench/days/
    .venv/bin/python bench/days.py --days 6 --symbols 8 --hours 1    # bigger days
    .venv/bin/python bench/days.py --gz                              # the days gzip-compressed, as NASDAQ ships them

Every run starts from an empty output folder (no shard reused); its wall time includes starting the LocalCluster
and hashing the inputs, as a user's run does. Days per hour = days / wall seconds * 3600. The per-day figure is
the median of the day tasks' own seconds, against prepare_itch's seconds on the first day (which writes the
single-file dataset: splits, JSONL, streams). Results go to bench/results/days.json.
"""
from __future__ import annotations
import argparse, gzip, shutil, statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def bench_days(n: int, symbols: int, hours: float, gz: bool) -> list[Path]:
    "`n` dated synthetic days, generated once into data/bench/days/."
    from mqbench import synth
    from mqbench.days import synth_days
    dates = [f"2026-11-{16 + i:02d}" for i in range(n)]
    plain = synth_days(dates, symbols=symbols, hours=hours, seed=0, dir=ROOT / "data" / "bench" / "days" / f"{symbols}sym-{hours:g}h")
    if not gz: return plain
    out = []
    for p, d in zip(plain, dates):
        g = p.parent / "gz" / synth.day_file_name(d, gz=True)
        if not g.exists():
            g.parent.mkdir(exist_ok=True)
            with open(p, "rb") as f, gzip.open(g, "wb", compresslevel=6) as w: shutil.copyfileobj(f, w, 1 << 24)
        out.append(g)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=4, help="synthetic days")
    ap.add_argument("--symbols", type=int, default=4, help="symbols per day")
    ap.add_argument("--hours", type=float, default=0.5, help="hours of trading per day")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="LocalCluster sizes to time")
    ap.add_argument("--gz", action="store_true", help="gzip the days (level 6)")
    ap.add_argument("--out", type=Path, help="results file (default bench/results/days.json)")
    a = ap.parse_args()
    import dask, distributed
    from mqbench.days import prepare_days
    from mqbench.features import DatasetConfig
    from mqbench.prepare import prepare_itch, synthetic_day
    files = bench_days(a.days, a.symbols, a.hours, a.gz)
    cfg = DatasetConfig()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_itch(synthetic_day(symbols=2, hours=0.02, seed=1, path=tmp / "warm.itch"), tmp / "warm", cfg)   # numba's cache loaded
        t = time.perf_counter(); one = prepare_itch(files[0], tmp / "single", cfg); single_s = time.perf_counter() - t
        runs = {}
        for w in a.workers:
            t = time.perf_counter(); st = prepare_days(files, tmp / f"days-{w}", cfg, workers=w); wall = time.perf_counter() - t
            day_s = list(st["day_seconds"].values())
            runs[str(w)] = {"wall_s": round(wall, 2), "days_per_hour": round(len(files) / wall * 3600, 1),
                            "day_s_median": round(statistics.median(day_s), 2), "day_s": st["day_seconds"],
                            "windows": {k: st["counts"][f"{k}_windows"] for k in ("train", "eval", "test")}}
            print(f"workers={w}: {wall:.1f} s for {len(files)} days, {runs[str(w)]['days_per_hour']} days/hour", file=sys.stderr)
    res = {"days": len(files), "day": {"symbols": a.symbols, "hours": a.hours, "gz": a.gz, "messages": one["source"]["messages"],
                                       "bytes": files[0].stat().st_size},
           "single_file_s": round(single_s, 2), "runs": runs,
           "day_task_over_single_file": {w: round(r["day_s_median"] / single_s, 2) for w, r in runs.items()},
           "machine": machine(dask=dask.__version__, distributed=distributed.__version__)}
    write_results(res, "days", a.out)


if __name__ == "__main__":
    main()
