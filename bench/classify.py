"""Speed of the classifiers. Training windows per second of the sparse-attention classifier (`ma_transformer`) at its
default configuration beside the same model with dense attention (`dense=True`: every snapshot sees the whole window),
measured in the same run on the same batch: whole optimizer steps (forward, cross-entropy, backward, AdamW step), the
two models timed in turn, round after round, each figure the median of the rounds. On the CPU the sparse patterns run
as masked SDPA; on CUDA the Triton attention kernel runs them, and masked and dense SDPA are timed beside it.

Then the batch-1 inference latency of every classifier (`mqbench.evaluate.latency`: one window at a time on one CPU
thread, under torch.inference_mode, p50 and p99 of the calls after warm-up): the torch models of the registry at
`--preset`, freshly initialised (their latency does not depend on the weights), and the tabular models fitted through
the trainer on the example dataset (`data/examples`, built the first time). The streaming target of the next stage is
a p50 below one millisecond for the default classifier.

    python bench/classify.py --rounds 3
"""
import argparse, platform, statistics, tempfile, time, warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from mqbench.classifiers import CLASSIFIERS, build_classifier, classifier_config
from mqbench.core import torch_device
from mqbench.evaluate import latency
from common import machine, write_results

L, NF = 100, 202                                                  # a window: 100 snapshots of 200 features and 2 time features
NAMES = [f"f{i}" for i in range(NF - 2)] + ["time_of_day", "since_event_ms"]


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()


def step_fn(model, opt, x, y, autocast):
    "One optimizer step; returns the loss (float)."
    def run():
        with autocast():
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return run


def bench_training(dev, rounds, steps, batch, preset):
    "Windows/s of ma_transformer's training steps, sparse against dense (and, on CUDA, the SDPA paths beside the kernel)."
    cuda = dev.type == "cuda"
    variants = {"sparse": {}, "dense": {"dense": True}}
    if cuda: variants.update({"sparse_sdpa": {"attn_backend": "sdpa"}, "dense_sdpa": {"dense": True, "attn_backend": "sdpa"}})
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, L, NF, generator=g).to(dev)
    y = torch.randint(0, 3, (batch,), generator=g).to(dev)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else (lambda: torch.autocast("cpu", enabled=False))
    runs, cfgs = {}, {}
    for k, over in variants.items():
        torch.manual_seed(0)                                      # the same weights in every variant
        cfg = classifier_config("ma_transformer", n_features=NF, sequence_length=L, feature_names=NAMES, preset=preset, **over)
        model = build_classifier("ma_transformer", cfg).to(dev).train()
        runs[k], cfgs[k] = step_fn(model, torch.optim.AdamW(model.parameters(), lr=1e-3), x, y, autocast), cfg
    for f in runs.values(): f(); sync(dev)                         # first steps: allocator, optimizer state, kernels
    secs = {k: [] for k in runs}
    for _ in range(rounds):
        for k, f in runs.items():
            sync(dev); t0 = time.perf_counter()
            for _ in range(steps): f()
            sync(dev); secs[k].append((time.perf_counter() - t0) / steps)
    c = cfgs["sparse"]
    res = {"config": {k: getattr(c, k) for k in ("n_embd", "n_layer", "n_head", "window", "dilation", "attn_backend")},
           "params": sum(p.numel() for p in build_classifier("ma_transformer", c).parameters()),
           "batch": batch, "window_shape": [L, NF], "steps_per_round": steps}
    for k, s in secs.items():
        med = statistics.median(s)
        res[k] = {"windows_per_s": round(batch / med, 1), "step_ms_median": round(med * 1e3, 2),
                  "step_ms_rounds": [round(v * 1e3, 2) for v in s]}
    res["sparse_vs_dense"] = round(res["sparse"]["windows_per_s"] / res["dense"]["windows_per_s"], 3)
    # the ratio within each round too: both ran back to back there, under the same load
    res["sparse_vs_dense_per_round"] = [round(d / s, 3) for s, d in zip(secs["sparse"], secs["dense"])]
    return res


def tabular_models(preset, threads):
    "{name: fitted model} of every tabular model, trained by the trainer on the example dataset."
    try: from mqbench.tabular import TABULAR
    except ImportError: return {}
    from mqbench.demo import example_inputs
    from mqbench.runs import load_run_model
    from mqbench.train import TrainConfig, train
    data, out, models = example_inputs()["dataset"], Path(tempfile.mkdtemp(prefix="bench-classify-")), {}
    keep = torch.get_num_threads(); torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")   # float32 probabilities, per round
            for name in TABULAR:
                run = train(TrainConfig(task="classify", classifier=name, data=str(data), out=str(out / name), preset=preset, mlflow=False))
                models[name] = load_run_model(run["run_dir"], "best", "cpu", task="classify")[0]
    finally: torch.set_num_threads(keep)
    return models


def bench_latency(preset, calls, threads):
    "Batch-1 CPU latency of every classifier: p50 and p99 in ms, and its parameters."
    res, window = {}, torch.randn(L, NF).numpy()
    models = {}
    for name in CLASSIFIERS:
        torch.manual_seed(0)
        cfg = classifier_config(name, n_features=NF, sequence_length=L, feature_names=NAMES, preset=preset)
        models[name] = build_classifier(name, cfg)
    tab = tabular_models(preset or "micro", threads)
    for name, m in {**models, **tab}.items():
        w = window if name in models else window[:, :m.config.n_features]
        lat = latency(m.eval(), w[: m.config.sequence_length], calls=calls, threads=threads)
        res[name] = {"p50_ms": round(lat["p50_ms"], 4), "p99_ms": round(lat["p99_ms"], 4), "mean_ms": round(lat["mean_ms"], 4),
                     "params": int(m.num_params()), "kind": "torch" if name in models else "tabular",
                     "window_shape": [m.config.sequence_length, m.config.n_features]}
        r = res[name]
        print(f"latency {name:20} p50 {r['p50_ms']:8.3f} ms  p99 {r['p99_ms']:8.3f} ms  ({r['params']:,} parameters)", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=None, help="the models' preset (default: each class's defaults; tabular models: micro)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="training steps per round (default: 3 on the CPU, 20 on CUDA)")
    ap.add_argument("--batch", type=int, default=None, help="windows per training step (default: 32 on the CPU, 256 on CUDA)")
    ap.add_argument("--calls", type=int, default=200, help="timed batch-1 calls per model")
    ap.add_argument("--latency-threads", type=int, default=1, help="CPU threads for the latency (1: a process on one core)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for training (default: torch's)")
    ap.add_argument("--device", default=None, help="torch device for training (default: cuda when present, else cpu)")
    ap.add_argument("--skip-latency", action="store_true", help="only the training speed")
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/classify[-GPU].json)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch_device(a.device)
    cuda = dev.type == "cuda"
    res = {"device": str(dev), "name": torch.cuda.get_device_name(dev) if cuda else (platform.processor() or platform.machine()),
           "threads": torch.get_num_threads(), "precision": "bf16 autocast" if cuda else "float32", "rounds": a.rounds,
           "preset": a.preset or "defaults"}
    r = bench_training(dev, a.rounds, a.steps or (20 if cuda else 3), a.batch or (256 if cuda else 32), a.preset)
    res["training"] = r
    extra = "".join(f", {k} {r[k]['windows_per_s']:,} windows/s" for k in ("sparse_sdpa", "dense_sdpa") if k in r)
    print(f"ma_transformer training ({r['params']:,} parameters, batch {r['batch']}): sparse {r['sparse']['windows_per_s']:,} windows/s, "
          f"dense {r['dense']['windows_per_s']:,} windows/s ({r['sparse_vs_dense']}x){extra}", flush=True)
    if not a.skip_latency:
        res["latency"] = bench_latency(a.preset, a.calls, a.latency_threads)
        p50 = res["latency"]["ma_transformer"]["p50_ms"]
        res["streaming_target_p50_below_1ms"] = bool(p50 < 1.0)
        print(f"the default classifier (ma_transformer): p50 {p50:.3f} ms, {'below' if p50 < 1 else 'above'} the 1 ms streaming target")
    res["machine"] = machine(torch=torch.__version__)
    write_results(res, "classify", a.out, gpu=res["name"] if cuda else None)


if __name__ == "__main__":
    main()
