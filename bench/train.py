"""Training speed of our decoder beside Hugging Face's LlamaForCausalLM of the identical configuration
(`mqbench.model.to_hf_llama`: the same weights), measured in the same run on the same batch: tokens per
second of whole optimizer steps (forward, cross-entropy, backward, AdamW step) for the tiny and small
presets in the llama3 style. Both models train with the same AdamW (mqbench.optim.Optimizer with
use_muon=False), so the comparison is of the models; our model with Muon (its default) is reported beside.
The models are timed in turn, round after round, and each figure is the median of the rounds.

    python bench/train.py --sizes tiny small --rounds 3
"""
import argparse, platform, statistics, time

import torch
import torch.nn.functional as F

from mqbench.core import torch_device
from mqbench.model import Decoder, preset, to_hf_llama
from mqbench.optim import OptimConfig, Optimizer
from common import machine, write_results

SHAPES = {"tiny": (8, 256), "small": (4, 512), "base": (4, 512)}     # (batch, positions) per step on the CPU


def step_fn(model, opt, x, y, hf: bool, autocast):
    "One optimizer step; returns the loss (float)."
    def run():
        with autocast():
            logits = model(input_ids=x, use_cache=False).logits if hf else model(x)[0]
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return run


def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()


def bench_size(size, dev, rounds, steps, muon_steps, batch, positions, vocab):
    torch.manual_seed(0)
    cfg = preset(size, "llama3", vocab_size=vocab, block_size=positions)
    ours = Decoder(cfg)
    hf = to_hf_llama(ours).train()                                   # the same weights, before any step
    muon = Decoder(cfg); muon.load_state_dict(ours.state_dict())
    ours, hf, muon = ours.to(dev).train(), hf.to(dev), muon.to(dev).train()
    g = torch.Generator().manual_seed(1)
    tok = torch.randint(0, vocab, (batch, positions + 1), generator=g).to(dev)
    x, y = tok[:, :-1], tok[:, 1:]
    if dev.type == "cuda": autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    else: autocast = lambda: torch.autocast("cpu", enabled=False)
    with torch.no_grad(), autocast():
        l_ours = F.cross_entropy(ours(x)[0].float().flatten(0, 1), y.flatten()).item()
        l_hf = F.cross_entropy(hf(input_ids=x, use_cache=False).logits.float().flatten(0, 1), y.flatten()).item()
    adamw = OptimConfig(use_muon=False, warmup_steps=1, total_steps=10**6)
    runs = {"ours_adamw": (step_fn(ours, Optimizer(ours, adamw), x, y, False, autocast), steps),
            "hf_llama_adamw": (step_fn(hf, Optimizer(hf, adamw), x, y, True, autocast), steps)}
    if muon_steps:
        muon_opt = Optimizer(muon, OptimConfig(warmup_steps=1, total_steps=10**6))
        runs["ours_muon"] = (step_fn(muon, muon_opt, x, y, False, autocast), muon_steps)
    for f, _ in runs.values(): f(); sync(dev)                          # first steps: allocator, optimizer state, kernels
    secs = {k: [] for k in runs}
    for _ in range(rounds):
        for k, (f, n) in runs.items():
            sync(dev); t0 = time.perf_counter()
            for _ in range(n): f()
            sync(dev); secs[k].append((time.perf_counter() - t0) / n)
    tokens = batch * positions
    res = {"config": {"n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "n_kv_head": cfg.n_kv_head,
                      "mlp_hidden": cfg.hidden, "vocab_size": vocab, "params": ours.num_params()},
           "batch": batch, "positions": positions, "tokens_per_step": tokens,
           "loss_at_init": {"ours": round(l_ours, 6), "hf": round(l_hf, 6)},
           "hf_attn_implementation": getattr(hf.config, "_attn_implementation", None)}
    for k, s in secs.items():
        med = statistics.median(s)
        res[k] = {"tokens_per_s": round(tokens / med), "step_ms_median": round(med * 1e3, 1),
                  "step_ms_rounds": [round(v * 1e3, 1) for v in s]}
    res["ours_vs_hf"] = round(res["ours_adamw"]["tokens_per_s"] / res["hf_llama_adamw"]["tokens_per_s"], 3)
    # the ratio within each round too: both models ran back to back there, under the same load
    res["ours_vs_hf_per_round"] = [round(h / o, 3) for o, h in zip(secs["ours_adamw"], secs["hf_llama_adamw"])]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="steps per round (default: 5 for tiny, 2 for larger; 20 on CUDA)")
    ap.add_argument("--muon-steps", type=int, default=None, help="steps per round with Muon (default: as --steps, 1 for small on the CPU)")
    ap.add_argument("--batch", type=int, default=None, help="windows per step (default: 8 for tiny, 4 for larger; x4 on CUDA)")
    ap.add_argument("--vocab", type=int, default=600)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/train[-GPU].json)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch_device(a.device)
    cuda = dev.type == "cuda"
    res = {"device": str(dev), "name": torch.cuda.get_device_name(dev) if cuda else (platform.processor() or platform.machine()),
           "threads": torch.get_num_threads(), "precision": "bf16 autocast" if cuda else "float32", "rounds": a.rounds, "sizes": {}}
    for size in a.sizes:
        b, t = SHAPES[size]
        steps = a.steps or (20 if cuda else 5 if size == "tiny" else 2)
        muon_steps = a.muon_steps if a.muon_steps is not None else (steps if cuda or size == "tiny" else 1)
        r = bench_size(size, dev, a.rounds, steps, muon_steps, a.batch or (b * 4 if cuda else b), t, a.vocab)
        res["sizes"][size] = r
        print(f"{size}: ours {r['ours_adamw']['tokens_per_s']:,} tok/s, HF Llama {r['hf_llama_adamw']['tokens_per_s']:,} tok/s "
              f"({r['ours_vs_hf']}x), ours+Muon {r.get('ours_muon', {}).get('tokens_per_s', '-'):,} tok/s", flush=True)
    res["machine"] = machine(torch=torch.__version__, transformers=__import__("transformers").__version__)
    write_results(res, "train", a.out, gpu=res["name"] if cuda else None)


if __name__ == "__main__":
    main()
