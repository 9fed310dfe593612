"""Where the book engine's time goes: a sampling profile of one replay, down to the instructions of the compiled loop.

    .venv/bin/python bench/itch_profile.py                    # the cached synthetic day of bench/itch.py
    .venv/bin/python bench/itch_profile.py --input day.itch --top 20

Needs Linux `perf` and `objdump`. The replay runs under `perf record -e cpu-clock` (a software clock: virtual
machines often have no hardware counters). numba's compiled code has no symbols perf can resolve, so the
replayed process writes the machine code of `book.replay_bytes` from its address (ctypes) and the address itself;
the samples that fall inside it are matched to the `objdump` disassembly. Printed: the share of samples per
shared object (the loop is "[JIT]"), the loop's share, and its hottest instructions with the ones before them
(a sample lands on the instruction after the one that waited). Results go to bench/results/itch_profile.txt.
"""
from __future__ import annotations
import argparse, collections, ctypes, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE_BYTES = 1 << 16          # the loop's machine code is about 20 KB


def replay(path: str, dump: str):
    "Run in the profiled process: warm the loop up, dump its code, replay the day (BBO and trades)."
    import os
    os.environ["MQBENCH_AOT"] = "0"     # numba's build of the loop, whose address ctypes can read; the AOT build is the same code
    from mqbench import book
    from mqbench.core import real_data_dir
    for _ in book.BookEngine().stream(real_data_dir() / "itch50_orderflow_200msgs.itch"): pass
    loop = book.loops.replay_bytes
    ov = loop.overloads[loop.signatures[0]]
    addr = ov.library.get_pointer_to_function(ov.fndesc.llvm_func_name)
    Path(dump).write_bytes(ctypes.string_at(addr, CODE_BYTES))
    Path(dump + ".addr").write_text(hex(addr))
    for _ in book.BookEngine(bbo=True, trades=True).stream(path): pass


def main(argv=None):
    p = argparse.ArgumentParser(description="perf samples of a replay, attributed to the compiled loop's instructions.")
    p.add_argument("--input", help="an ITCH file (default: bench/itch.py's cached synthetic day)")
    p.add_argument("--top", type=int, default=12, help="hottest instructions shown (default 12)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "itch_profile.txt"))
    p.add_argument("--replay", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.replay: return replay(*a.replay)
    for tool in ("perf", "objdump"):
        if not shutil.which(tool): sys.exit(f"{tool} is not installed: this profile needs Linux perf and binutils")
    if a.input: path = a.input
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from itch import synthetic_day
        path = str(synthetic_day(20_000_000)[0])
    tmp = Path(tempfile.mkdtemp())
    data, dump = tmp / "perf.data", str(tmp / "loop.bin")
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-o", str(data), sys.executable, __file__,
                    "--replay", path, dump], check=True, capture_output=True)
    base = int(Path(dump + ".addr").read_text(), 16)
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,dso"], check=True, capture_output=True, text=True).stdout
    by_dso, inside = collections.Counter(), collections.Counter()
    for line in script.splitlines():
        parts = line.split(None, 1)
        if len(parts) < 2: continue
        ip, dso = int(parts[0], 16), parts[1].strip("() ")
        name = Path(dso).name
        by_dso["[JIT] (numba's code)" if "JIT" in name or name.startswith("perf-") else name] += 1
        if base <= ip < base + CODE_BYTES: inside[ip - base] += 1
    total, loop = sum(by_dso.values()), sum(inside.values())
    asm = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", dump], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    at = {int(m.group(1), 16): i for i, line in enumerate(asm) if (m := re.match(r"\s*([0-9a-f]+):\s", line))}
    out = [f"input {path}; {total:,} samples at 2 kHz", "", "share of samples by shared object:"]
    out += [f"  {n * 100 / total:5.1f}%  {dso}" for dso, n in by_dso.most_common(12)]
    out += ["", f"replay_bytes (the compiled loop): {loop * 100 / max(total, 1):.1f}% of all samples; its hottest instructions"
            " (share of the loop's samples), each after the 6 instructions before it:"]
    for off, n in inside.most_common(a.top):
        i = at.get(off)
        if i is None: continue
        out.append(f"--- +{off:#x}: {n * 100 / loop:.1f}%")
        for line in asm[max(0, i - 6):i + 1]:
            m = re.match(r"\s*([0-9a-f]+):", line)
            share = inside.get(int(m.group(1), 16), 0) * 100 / loop if m else 0
            out.append(f"  {share:5.1f}  {line.strip()[:110]}" if share else f"         {line.strip()[:110]}")
    text = "\n".join(out)
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
