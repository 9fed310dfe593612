"""The ITCH .gz read path: isal's igzip against the standard library's gzip (zlib), in the same run.

    .venv/bin/python bench/gzip_read.py                    # a synthetic day of >= 3M messages, gzip level 6, cached in data/bench/
    .venv/bin/python bench/gzip_read.py --input day.gz     # your own file (a NASDAQ day: MMDDYYYY.NASDAQ_ITCH50.gz)

Two measurements per library, each the median of `--runs` passes, the libraries alternating so that the machine's
load falls on both alike: `read` decompresses the whole file in 16 MiB reads (MB/s of ITCH bytes out), `frames`
runs `itch.iter_frames` over it, the read path of every ITCH consumer (messages/s). The ratio is isal over zlib.
Results go to bench/results/gzip_read.json.
"""
from __future__ import annotations
import argparse, gzip, json, os, shutil, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 24


def bench_file(messages: int) -> Path:
    "A cached synthetic day compressed at gzip level 6 (NASDAQ's files are ordinary gzip)."
    from mqbench import synth
    out = ROOT / "data" / "bench" / f"gzip_{messages}.itch.gz"
    if out.exists(): return out
    out.parent.mkdir(parents=True, exist_ok=True)
    plain = out.with_suffix("")
    s = synth.generate(plain, symbols=max(4, messages // 300_000), hours=1.0, seed=0)
    with open(plain, "rb") as f, gzip.open(out, "wb", compresslevel=6) as g: shutil.copyfileobj(f, g, CHUNK)
    plain.unlink()
    print(f"{out}: {s['messages']:,} messages", file=sys.stderr)
    return out


def read_all(opener, path) -> int:
    n = 0
    with opener(path, "rb") as f:
        while b := f.read(CHUNK): n += len(b)
    return n


def frame_all(opener, path) -> int:
    from mqbench import itch
    with opener(path, "rb") as f:
        return sum(len(fr.starts) for fr in itch.iter_frames(f))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, help="a gzip ITCH file (default: a synthetic day)")
    ap.add_argument("--messages", type=int, default=3_000_000, help="messages of the synthetic day")
    ap.add_argument("--runs", type=int, default=3, help="timed passes per library and measurement (the median is kept)")
    ap.add_argument("--out", type=Path, help="results file (default bench/results/gzip_read.json)")
    a = ap.parse_args()
    import isal
    from isal import igzip
    path = a.input or bench_file(a.messages)
    libs = {"zlib": gzip.open, "isal": igzip.open}
    frame_all(gzip.open, path)                                   # numba's compiled framer loaded before timing
    times = {(lib, m): [] for lib in libs for m in ("read", "frames")}
    size = msgs = 0
    for _ in range(a.runs):
        for lib, opener in libs.items():
            t = time.perf_counter(); size = read_all(opener, path); times[lib, "read"].append(time.perf_counter() - t)
            t = time.perf_counter(); msgs = frame_all(opener, path); times[lib, "frames"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"file": str(path), "compressed_bytes": path.stat().st_size, "bytes": size, "messages": msgs, "runs": a.runs,
           "machine": machine(isal=isal.__version__), "pid": os.getpid()}
    for lib in libs:
        res[lib] = {"read_MB_s": round(size / med[lib, "read"] / 1e6, 1), "frames_msg_s": round(msgs / med[lib, "frames"]),
                    "read_s": round(med[lib, "read"], 3), "frames_s": round(med[lib, "frames"], 3)}
    res["ratio_isal_over_zlib"] = {"read": round(med["zlib", "read"] / med["isal", "read"], 2),
                                   "frames": round(med["zlib", "frames"] / med["isal", "frames"], 2)}
    res.pop("pid")
    write_results(res, "gzip_read", a.out)
    print(json.dumps(res["ratio_isal_over_zlib"]))


if __name__ == "__main__":
    main()
