"""Speed of the evaluation path on the main job's data (8 symbols, 1 h, event tokens in windows of 256): the
baselines fitted, each predictor's held-out scoring in tokens per second (the model on this machine's device,
the baselines in numpy), generated events replayed through the book engine in events per second, and the
stylized-facts distances with their bootstrap intervals beside scipy.stats.bootstrap on the same samples.

    python bench/evaluate.py                       # reads data/demo (make demo), or builds what it lacks
    python bench/evaluate.py --run data/demo/runs/pretrain --repeats 3
"""
import argparse, json, statistics, time
from pathlib import Path

import numpy as np
import torch

from mqbench import evaluate as ev, stylized as st
from mqbench.core import data_dir, evenly_spaced
from mqbench.tokenize import load_tokenizer, load_tokens
from mqbench.runs import load_run_model
from common import device_name, machine, write_results


def timed(f, repeats):
    "(result of the last run, median seconds)."
    secs = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = f(); secs.append(time.perf_counter() - t0)
    return out, statistics.median(secs)


def demo_run(root: Path, steps: int) -> Path:
    "The main job's run folder, built here (without its reports) when `make demo` has not made it."
    from mqbench.optim import OptimConfig
    from mqbench.prepare import prepare_synth
    from mqbench.tokenize import write_token_dataset
    from mqbench.train import TrainConfig, train
    run = root / "runs" / "pretrain"
    if (run / "manifest.json").exists() and json.loads((run / "manifest.json").read_text()).get("status") == "done": return run
    if not (root / "dataset" / "manifest.json").exists(): prepare_synth(root / "dataset", overwrite=True)
    if not (root / "tokens" / "manifest.json").exists():
        write_token_dataset(root / "dataset", root / "tokens", block_size=256, overwrite=True)
    train(TrainConfig(data=str(root / "tokens"), out=str(run), overwrite=True, preset="tiny", steps=steps, batch_size=16,
                      optim=OptimConfig(use_muon=False, lr=3e-3, warmup_steps=20), eval_every=50, mlflow=False))
    return run


def score(source, fields, groups):
    sc = ev.Scorer(fields, groups)
    for logp, y in source: sc.add(logp, y)
    return sc.result()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="a training run folder (default data/demo/runs/pretrain, built if missing)")
    ap.add_argument("--windows", type=int, default=200, help="held-out windows scored (default 200)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=10_000, help="values per sample for the distances (default 10,000)")
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/evaluate[-GPU].json)")
    a = ap.parse_args()
    run = Path(a.run) if a.run else demo_run(data_dir("demo"), steps=200)
    model, info = load_run_model(run, "best")
    data, V = Path(info["data"]), info["vocab_size"]
    dev = next(model.parameters()).device
    res = {"run": str(run), "device": str(dev), "threads": torch.get_num_threads(),
           "name": device_name(dev)}

    train_w, eval_w = load_tokens(data, "train", mmap=False), load_tokens(data, "eval", mmap=False)
    bl, t_fit = timed(lambda: ev.fit_baselines(train_w, eval_w, V), 1)
    res["baselines_fit_s"] = round(t_fit, 2)
    res["train_tokens"] = int(len(ev.scored_targets(train_w)[0]))
    test = load_tokens(data, "test", mmap=False)
    w = test[evenly_spaced(len(test), a.windows)].astype(np.int64)
    n_tok = len(ev.scored_targets(w)[0])
    fields, groups = ev.field_digits(data, V), np.zeros(n_tok, np.int64)
    res["scored_tokens"] = n_tok
    res["scoring_tokens_per_s"] = {}
    for name, src in [("model", lambda: ev.model_log_probs(model, w, 16)), *((k, (lambda b=b: b.log_probs(w))) for k, b in bl.items())]:
        _, t = timed(lambda: score(src(), fields, groups), a.repeats)
        res["scoring_tokens_per_s"][name] = round(n_tok / t)
        print(f"score {name:14} {n_tok / t:>12,.0f} tokens/s (with per-field marginals)")

    ro = ev.rollouts(run, "test", n_contexts=32, context=128, horizon=256)
    tok = load_tokenizer(data)
    events = ro.generated[ro.generated["special"].isna()]
    _, t_rep = timed(lambda: ev.replay_events(events, tok), a.repeats)
    res["replay_events_per_s"] = round(len(events) / t_rep)
    print(f"replay {len(events):,} generated events through the book engine: {len(events) / t_rep:,.0f} events/s")

    rng = np.random.default_rng(0)
    real = {q: rng.standard_t(4, a.n) for q in ("returns", "inter_arrival", "size", "spread")}
    gen = {q: rng.standard_t(3, a.n) * 1.1 for q in real}
    _, t_cmp = timed(lambda: st.compare(real, gen, n_boot=200, seed=0), a.repeats)
    from scipy import stats
    def scipy_ks():
        stats.bootstrap((real["returns"], gen["returns"]), lambda x, y: stats.ks_2samp(x, y).statistic, n_resamples=200,
                        confidence_level=0.99, method="percentile", vectorized=False, random_state=0)
    _, t_sp = timed(scipy_ks, 1)
    res["compare_4_quantities_s"] = round(t_cmp, 3)
    res["scipy_bootstrap_ks_1_quantity_s"] = round(t_sp, 3)
    res["compare_speedup_per_distance"] = round(t_sp / (t_cmp / 4 / 3), 1)
    print(f"compare: 4 quantities x (KS, W1, L1) with 200 resamples at n={a.n:,}: {t_cmp:.2f} s; "
          f"scipy.stats.bootstrap of KS alone: {t_sp:.2f} s ({res['compare_speedup_per_distance']}x per distance)")

    res["machine"] = machine(torch=torch.__version__)
    print(f"recorded in {write_results(res, 'evaluate', a.out, gpu=res['name'] if dev.type == 'cuda' else None)}")


if __name__ == "__main__":
    main()
