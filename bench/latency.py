"""Tick-to-signal latency of the streaming predictor (`mqbench.stream`). A synthetic day (the example day of
`mqbench.demo.example_inputs` unless `--day`) is fed one ITCH message per call, as from a socket, into a `Predictor`
of a classifier run (by default an `mlp`, the default classifier, trained a few steps on the example dataset: the
latency does not depend on the weights). For every tick with a signal: the book update (the call's replay), the
feature update, the model and the total from the start of the call to the signal; p50, p99 and p99.9, for PyTorch
eager, `torch.compile` and ONNX Runtime (through `mqbench.export` when it is installed), on one intra-op thread, with the
features of the compiled tape (`StreamFeatures(engine="compiled")`, the default); `eager-numpy` is PyTorch eager with the
numpy reference features (`engine="numpy"`), measured in the same run for the ratio.

Then the per-message cost of the book plus the grid and feature update against the offline engine's rate
(`book.BookEngine` over the same bytes in 16 MiB chunks), and, with `--trace PATH`, a `torch.profiler` Chrome trace of
the hot path (a few thousand messages), with one range per stage.

    python bench/latency.py [--run RUN] [--runtimes eager,compile,onnx,eager-numpy] [--messages N] [--trace trace.json]
"""
import argparse, tempfile, time
from pathlib import Path

import numpy as np
import torch

from mqbench import itch
from mqbench.book import BookEngine
from mqbench.stream import ItchFramer, Predictor
from common import machine, write_results


def messages_of(day: bytes, limit=None) -> list:
    "The day cut into one bytes object per message (length prefix included)."
    fr = ItchFramer()
    f = fr.push(day)
    starts = f.starts - 2
    ends = np.r_[starts[1:], fr.offset]
    out = [day[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
    return out[:limit] if limit else out


def pct(xs, q): return float(np.percentile(np.asarray(xs, np.float64), q)) / 1e3   # ns -> µs


def replay(pred: Predictor, msgs: list) -> tuple:
    "(signals, seconds): every message fed on its own, then finish."
    signals, t0 = [], time.perf_counter()
    for m in msgs: signals += pred.feed(m)
    signals += pred.finish()
    return signals, time.perf_counter() - t0


def report(name: str, signals: list, seconds: float, n_msgs: int) -> dict:
    "Percentiles per tick (the first signal of each tick: one model call serves every symbol of a tick)."
    first = {}
    for s in signals: first.setdefault(s.ts_ns, s)
    ticks = list(first.values())
    row = {"runtime": name, "ticks": len(ticks), "us_per_message": seconds / n_msgs * 1e6}
    for stage in ("book", "features", "model", "total"):
        xs = [s.latency_ns if stage == "total" else s.stages_ns[stage] for s in ticks]
        row.update({f"{stage}_p50": pct(xs, 50), f"{stage}_p99": pct(xs, 99), f"{stage}_p99.9": pct(xs, 99.9)})
    cols = [f"{st} {row[st + '_p50']:8.1f} / {row[st + '_p99']:8.1f} / {row[st + '_p99.9']:8.1f}"
            for st in ("book", "features", "model", "total")]
    print(f"{name:8s} {len(ticks):6,} ticks  " + "  ".join(cols) + "   (µs p50 / p99 / p99.9)")
    return row


def onnx_predict(run, tmp: Path):
    "A predict function on ONNX Runtime, or None (with one line saying why)."
    try:
        import onnxruntime as ort
        from mqbench import export
    except ImportError as e:
        print(f"onnx     skipped: {e.name} is not installed"); return None
    try:
        export.export_onnx(run, tmp / "onnx", overwrite=True)
        paths = sorted((tmp / "onnx").rglob("*.onnx"), key=lambda p: "b1" in p.name)     # the dynamic-batch graph first
        path = paths[0]
    except Exception as e:                                     # the export piece may differ; say so and go on
        print(f"onnx     skipped: export failed ({type(e).__name__}: {e})"); return None
    opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name, outs = sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]
    want = ["probabilities"] if "probabilities" in outs else outs[:1]

    def predict(windows):
        out = sess.run(want, {name: np.ascontiguousarray(windows, np.float32)})[0]
        if want == ["probabilities"]: return out
        e = np.exp(out - out.max(-1, keepdims=True))                  # logits
        return e / e.sum(-1, keepdims=True)
    return predict


def trace(run, msgs: list, path: str):
    "A Chrome trace of the hot path: the stages as ranges."
    from torch.profiler import ProfilerActivity, profile, record_function
    pred = Predictor.from_run(run)
    for m in msgs[:len(msgs) // 2]: pred.feed(m)                         # past the warm-up: windows are complete
    wrap = lambda name, f: (lambda *a, **k: _ranged(record_function, name, f, *a, **k))
    pred.book.feed = wrap("book", pred.book.feed)
    pred.features.push = wrap("features", pred.features.push)
    pred.predict = wrap("model", pred.predict)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        for m in msgs[len(msgs) // 2:len(msgs) // 2 + 3000]:
            with record_function("feed"): pred.feed(m)
    prof.export_chrome_trace(path)
    print(f"trace of 3,000 messages written to {path}")


def _ranged(record_function, name, f, *a, **k):
    with record_function(name): return f(*a, **k)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="a classifier run (default: an mlp trained 5 steps on the example dataset)")
    ap.add_argument("--day", help="an ITCH file (default: the example day of the run's dataset)")
    ap.add_argument("--runtimes", default="eager,compile,onnx,eager-numpy",
                    help="eager, compile, onnx (the compiled feature tape), eager-numpy (the numpy reference features)")
    ap.add_argument("--messages", type=int, default=None, help="feed only the first N messages")
    ap.add_argument("--trace", help="write a torch.profiler Chrome trace of the hot path here")
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/latency.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    from mqbench.demo import example_inputs
    ex = example_inputs()
    run = args.run
    if run is None:
        from mqbench.train import TrainConfig, train
        run = str(tmp / "mlp")
        train(TrainConfig(data=str(ex["dataset"]), out=run, task="classify", steps=5, batch_size=16, eval_every=5,
                          checkpoint_every=5, mlflow=False))
    day = Path(args.day or ex["day"]).read_bytes()
    msgs = messages_of(day, args.messages)
    print(f"{len(msgs):,} messages; torch {torch.__version__}, {torch.get_num_threads()} thread")

    t0 = time.perf_counter()
    eng = BookEngine(bbo=True, trades=True, depth=True, every_ms=100.0)
    for fr in itch.iter_frames(b"".join(msgs)): eng.feed(fr)
    eng.finish()
    offline_us = (time.perf_counter() - t0) / len(msgs) * 1e6
    replay(Predictor.from_run(run), msgs[:5000])          # numba's compiled functions loaded (or compiled) before timing
    rows = []
    for name in args.runtimes.split(","):
        pred = Predictor.from_run(run, engine="numpy" if name.endswith("-numpy") else "compiled")
        if name == "compile": pred.model = torch.compile(pred.model, dynamic=True)
        elif name == "onnx":
            if (f := onnx_predict(run, tmp)) is None: continue
            pred.predict = f
        elif name not in ("eager", "eager-numpy"):
            raise SystemExit(f"unknown runtime {name!r}; expected eager, compile, onnx or eager-numpy")
        if name == "compile": replay(Predictor.from_run(run), msgs[:len(msgs) // 3])         # nothing to warm in eager
        signals, seconds = replay(pred, msgs)
        rows.append(report(name, signals, seconds, len(msgs)))
    per_msg = rows[0]["us_per_message"] if rows else float("nan")
    print(f"per message, book + grid + features + model, streamed one at a time: {per_msg:.1f} µs; "
          f"the offline engine (book only, 16 MiB chunks): {offline_us:.2f} µs ({1 / offline_us * 1e6:,.0f} messages/s)")
    res = {"messages": len(msgs), "offline_engine_us_per_message": offline_us, "runtimes": rows,
           "machine": machine(torch=torch.__version__, threads=torch.get_num_threads())}
    write_results(res, "latency", args.out)
    if args.trace: trace(run, msgs, args.trace)


if __name__ == "__main__":
    main()
