"""Throughput of the ITCH framer and the order-book engine, on one core.

    .venv/bin/python bench/itch.py                       # a synthetic day of >= 20M messages, cached in data/bench/
    .venv/bin/python bench/itch.py --messages 5000000    # a smaller day
    .venv/bin/python bench/itch.py --input day.itch.gz   # your own file (plain or gzip)

Each mode runs in its own process, so that its peak RSS (ru_maxrss) is its own; each process loads the
compiled code on a tiny stream first, then times `--runs` passes over the whole file and reports the
median. Modes:

  frames  framing only: itch.iter_frames over the file (read + frame every message)
  books   framing + full books for every symbol, emitting BBO changes and trades
  full    books + depth (10 levels every 100 ms) + the event table
  depth   books + depth after every book event (10 levels) + events: the most output there is

The rows the engine emits are built as Arrow tables and dropped, as a consumer that writes them would
receive them; writing parquet is not timed. Results are printed and written to bench/results/itch.json.

    .venv/bin/python bench/itch.py --peer     # against itch-book (pip install itch-book), the C++ reference

`--peer` times whole processes (start the interpreter, import, replay, exit), BBO and trades for every
symbol, for our engine (`BookEngine.stream`) and for itch-book's Python package (`itch_book.Feed.batches`,
whose C++ core replays beside a reader thread), in turns, `--runs` times each, on three inputs: the big
synthetic day, a smaller one, and the 1,000 real messages of ../shared/data/real. The marginal rate is
(big - small messages) / (big - small seconds), which leaves out what a process pays once; start-up is the
whole process on the 1,000 messages. Written to bench/results/itch_peer.json.
"""
from __future__ import annotations
import argparse, json, math, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "frames": None,
    "books": dict(bbo=True, trades=True),
    "full": dict(bbo=True, trades=True, depth=True, levels=10, every_ms=100, events=True),
    "depth": dict(bbo=True, trades=True, depth=True, levels=10, every_ms=None, events=True),
}


def synthetic_day(messages: int) -> tuple[Path, str]:
    """A cached synthetic day of at least `messages` messages. A symbol gives 0.6M to 1M messages over
    6.5 hours, so the day gets as many symbols as that needs."""
    from mqbench import synth
    out_dir = ROOT / "data" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    path, meta = out_dir / f"synth_{messages}.itch", out_dir / f"synth_{messages}.json"
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["generator"]
    symbols = max(8, math.ceil(messages / 0.6e6))
    s = synth.generate(path, symbols=symbols, hours=6.5, seed=0)
    if s["messages"] < messages:
        sys.exit(f"the synthetic day has {s['messages']:,} messages, fewer than the {messages:,} asked for")
    generator = f"mqbench.synth.generate(symbols={symbols}, hours=6.5, seed=0): {s['messages']:,} messages"
    meta.write_text(json.dumps({"generator": generator, "seconds": s["seconds"]}) + "\n")
    return path, generator


def _one_pass(mode: str, path) -> int:
    from mqbench import book, itch
    if mode == "frames":
        return sum(len(fr.starts) for fr in itch.iter_frames(path))
    eng = book.BookEngine(**MODES[mode])
    for _ in eng.stream(path): pass
    return eng.counters["messages"]


def worker(mode: str, path: str, runs: int) -> dict:
    "Time `runs` passes of one mode in this process; peak RSS is this process's."
    import io
    import numpy as np
    from mqbench import itch
    warm = itch.encode({"S": np.zeros(1, itch.DTYPES["S"])}).tobytes()
    _one_pass(mode, io.BytesIO(warm))                   # load the compiled code (or compile it) first
    rates, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        n = _one_pass(mode, path)
        wall, proc = time.perf_counter() - t0, time.process_time() - c0
        rates.append(n / wall); cpu.append(n / proc)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024      # KiB on Linux
    return {"mode": mode, "messages": n, "runs": runs, "msgs_per_s": round(statistics.median(rates)),
            "msgs_per_s_cpu": round(statistics.median(cpu)), "all_msgs_per_s": [round(r) for r in rates],
            "peak_rss_mib": round(rss / 2**20, 1)}


def _process(engine: str, path: str) -> int:
    "One whole replay of `path`, BBO and trades for every symbol, as a process of its own would do it."
    if engine == "mqbench":
        from mqbench import book
        eng = book.BookEngine(bbo=True, trades=True)
        for _ in eng.stream(path): pass
        return eng.counters["messages"]
    import datetime as dt
    import itch_book
    feed = itch_book.Feed(path, date=dt.date(2019, 12, 30))       # synthetic days carry no date in their name
    for _ in feed.batches(tables=("bbo", "trades")): pass
    return feed.stats["messages"]


def peer(big: Path, small: Path, tiny: Path, runs: int) -> dict:
    "Whole-process seconds of both engines on the three inputs, in turns; medians, marginal rates and ratios."
    times = {(e, k): [] for e in ("mqbench", "itch-book") for k in ("big", "small", "tiny")}
    counts = {}
    for r in range(runs):
        for engine in (("mqbench", "itch-book") if r % 2 == 0 else ("itch-book", "mqbench")):
            for key, path in (("big", big), ("small", small), ("tiny", tiny)):
                t0 = time.perf_counter()
                run = subprocess.run([sys.executable, __file__, "--process", engine, "--input", str(path)],
                                     capture_output=True, text=True)
                seconds = time.perf_counter() - t0
                if run.returncode: sys.exit(f"{engine} on {path} failed:\n{run.stderr}")
                counts[(engine, key)] = int(run.stdout.split()[-1])
                times[(engine, key)].append(seconds)
    out = {}
    for engine in ("mqbench", "itch-book"):
        med = {k: statistics.median(times[(engine, k)]) for k in ("big", "small", "tiny")}
        n_big, n_small = counts[(engine, "big")], counts[(engine, "small")]
        out[engine] = {"seconds": {k: round(v, 3) for k, v in med.items()},
                       "all_seconds": {k: [round(x, 3) for x in times[(engine, k)]] for k in ("big", "small", "tiny")},
                       "marginal_msgs_per_s": round((n_big - n_small) / (med["big"] - med["small"])),
                       "whole_msgs_per_s_big": round(n_big / med["big"]), "startup_s": round(med["tiny"], 3)}
    if counts[("mqbench", "big")] != counts[("itch-book", "big")]: sys.exit(f"the engines counted different messages: {counts}")
    ours, theirs = out["mqbench"], out["itch-book"]
    out["ratio_marginal"] = round(ours["marginal_msgs_per_s"] / theirs["marginal_msgs_per_s"], 3)
    out["ratio_whole_big"] = round(theirs["seconds"]["big"] / ours["seconds"]["big"], 3)
    out["messages"] = {k: counts[("mqbench", k)] for k in ("big", "small", "tiny")}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Messages per second of the ITCH framer and the book engine.")
    p.add_argument("--input", help="an ITCH 5.0 file (plain or .gz); default: a cached synthetic day")
    p.add_argument("--messages", type=int, default=20_000_000, help="size of the synthetic day (default 20M)")
    p.add_argument("--runs", type=int, default=5, help="timed passes per mode; the median is reported (default 5)")
    p.add_argument("--modes", default="frames,books,full", help=f"comma-separated, of {','.join(MODES)} (default frames,books,full)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "itch.json"), help="where to record the results")
    p.add_argument("--peer", action="store_true", help="whole processes against itch-book instead of the modes")
    p.add_argument("--small", type=int, default=3_000_000, help="with --peer: size of the smaller synthetic day (default 3M)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--process", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.process:
        print(_process(a.process, a.input))
        return
    if a.peer:
        big, generator = (Path(a.input), "user file") if a.input else synthetic_day(a.messages)
        small, _ = synthetic_day(a.small)
        from mqbench.core import real_data_dir
        res = peer(big, small, real_data_dir() / "itch50_first1000.itch", a.runs)
        for engine in ("mqbench", "itch-book"):
            r = res[engine]
            print(f"{engine:9s} marginal {r['marginal_msgs_per_s'] / 1e6:6.2f} M msg/s   whole big day {r['seconds']['big']:6.2f} s"
                  f" ({r['whole_msgs_per_s_big'] / 1e6:.2f} M msg/s)   start-up {r['startup_s']:.2f} s")
        print(f"ours / itch-book: marginal rate {res['ratio_marginal']:.2f}x, whole big day {res['ratio_whole_big']:.2f}x "
              f"(median of {a.runs} runs, in turns)")
        res.update(big=str(big), generator=generator, small=str(small), runs=a.runs,
                   machine={"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                            "load_average": os.getloadavg()},
                   when_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        out = Path(a.out).with_name("itch_peer.json") if a.out == p.get_default("out") else Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        return
    if a.worker:
        print(json.dumps(worker(a.worker, a.input, a.runs)))
        return
    modes = a.modes.split(",")
    if bad := [m for m in modes if m not in MODES]: p.error(f"unknown mode(s) {bad}; known: {list(MODES)}")
    if a.input: path, generator = Path(a.input), "user file"
    else: path, generator = synthetic_day(a.messages)
    print(f"input: {path} ({path.stat().st_size / 2**20:,.0f} MiB; {generator})")
    results = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--worker", mode, "--input", str(path), "--runs", str(a.runs)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode: sys.exit(f"mode {mode} failed:\n{run.stderr}")
        r = json.loads(run.stdout)
        results.append(r)
        print(f"{mode:7s} {r['msgs_per_s'] / 1e6:6.2f} M msg/s (median of {r['runs']}; cpu {r['msgs_per_s_cpu'] / 1e6:.2f})"
              f"  peak RSS {r['peak_rss_mib']:7.1f} MiB  [{r['messages']:,} messages]")
    record = {"input": str(path), "bytes": path.stat().st_size, "generator": generator, "results": results,
              "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
              "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=2) + "\n")


def _cpu() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
