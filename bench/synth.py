"""Speed of the synthetic market: messages per second end to end (simulate, encode, write), plain and
gzip, and what each stage costs on its own.

    python bench/synth.py --n-symbols 24 --hours 6.5 --repeats 3
"""
import argparse, statistics, tempfile, time, zlib
from pathlib import Path

import numpy as np

from mqbench import itch, synth
from common import machine, write_results


def stages(cfg: synth.SynthConfig) -> dict:
    "Each stage alone, in this thread: the simulator, events -> tables -> bytes, gzip level 1 and 6."
    profs = synth.profiles(cfg, np.random.default_rng([cfg.seed, 0]))
    names, tick = np.array([p.name for p in profs]), np.array([round(p.tick * 1e4) for p in profs])
    t_sim = t_enc = 0.0
    n_all, sample = 0, []
    steps = synth.simulate(cfg)
    while True:
        t0 = time.perf_counter()
        item = next(steps)
        t1 = time.perf_counter(); t_sim += t1 - t0
        if isinstance(item, synth.State): break
        data = itch.encode(synth.to_tables(*item, names, tick, cfg))
        t_enc += time.perf_counter() - t1
        n_all += item[1]
        if sum(map(len, sample)) < 64 << 20: sample.append(data.tobytes())
    raw = b"".join(sample)
    out = {"messages": n_all, "simulate_msgs_per_s": round(n_all / t_sim), "encode_msgs_per_s": round(n_all / t_enc)}
    for level in (1, 6):
        t0 = time.perf_counter(); z = zlib.compress(raw, level); dt = time.perf_counter() - t0
        out[f"gzip{level}_MB_per_s"] = round(len(raw) / dt / 1e6, 1)
        out[f"gzip{level}_ratio"] = round(len(raw) / len(z), 2)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-symbols", type=int, default=8, help="symbols in the synthetic day")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/synth.json)")
    a = ap.parse_args()
    res = {"symbols": a.n_symbols, "hours": a.hours}
    with tempfile.TemporaryDirectory() as d:
        synth.generate(Path(d) / "warmup.itch", hours=0.01, preopen_minutes=0.5)   # compile / load caches
        for name in ("day.itch", "day.itch.gz"):
            runs = [synth.generate(Path(d) / name, symbols=a.n_symbols, hours=a.hours) for _ in range(a.repeats)]
            res[name] = {"messages": runs[0]["messages"], "bytes": runs[0]["bytes"],
                         "seconds_median": statistics.median(r["seconds"] for r in runs),
                         "msgs_per_s_median": statistics.median(r["messages_per_s"] for r in runs),
                         "msgs_per_s_runs": [r["messages_per_s"] for r in runs]}
    res["stages_alone"] = stages(synth.SynthConfig(symbols=a.n_symbols, hours=a.hours))
    res["machine"] = machine()
    write_results(res, "synth", a.out)


if __name__ == "__main__":
    main()
