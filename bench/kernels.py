"""Speed and memory of the Triton kernels in mqbench.kernels against what a user would pick instead, at the
project's shapes: attention (causal GQA, sliding window, dilated window) against PyTorch SDPA and
FlexAttention; RoPE, SwiGLU and RMSNorm against eager PyTorch, torch.compile of the same eager code and
Liger-Kernel; the fused LM head + cross-entropy against the unfused computation (eager and compiled) and
Liger's fused one; the order-book features against the PyTorch reference; and a whole training step of the
decoder with the kernels on against PyTorch throughout.

    python bench/kernels.py                          # CUDA: every op at every shape (tens of minutes)
    python bench/kernels.py --ops attention --presets base --lengths 8192
    python bench/kernels.py --tune                   # CUDA: also sweep the attention block sizes
    python bench/kernels.py --device cpu             # the small CPU path (what runs without CUDA)
    bash bench/gpu.sh                                # on a GPU machine: the CUDA tests, then a 5-minute selection

On CUDA each case is timed with triton.testing.do_bench (median), forward and forward+backward, and
reported as TFLOP/s (matmul-bound ops) or GB/s (memory-bound ops) with the peak memory of one call,
and as a ratio against each alternative. The targets below are checked and printed. Without CUDA the
script runs a small CPU path: the PyTorch references against the eager alternatives at tiny shapes,
timed with time.perf_counter (the Triton kernels themselves run there only in the interpreter, which
measures nothing), so that the script is known to work.

Results: printed as JSON, written to bench/results/kernels[-<GPU name>].json and a markdown table beside it.
"""
import argparse, json, os, platform, signal, statistics, sys, time, traceback
from pathlib import Path

import torch
import torch.nn.functional as F

PRESETS = {   # name -> (hidden, query heads, key/value heads, head dim)
    "tiny": (128, 4, 2, 32), "small": (512, 8, 2, 64), "base": (1024, 16, 4, 64), "base-d128": (2048, 16, 4, 128),
}
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
VOCABS = (600, 32768)
TOKENS = 16384          # batch x length per step at every length (batch = TOKENS // T, at least 1)
WINDOW, DILATION = 256, 2

TARGETS = [   # (what, checked by `check_targets`)
    "causal GQA attention fwd+bwd >= 1.0x SDPA (flash) at D 64 and 128",
    "sliding window W=256 at T=8192 fwd+bwd >= 3x faster than dense causal SDPA",
    "sliding window W=256 at T=8192 fwd+bwd >= 1.0x FlexAttention with a sliding-window block mask",
    "fused linear cross-entropy at V=32k: peak memory <= 1/4 of unfused, time <= 1.2x unfused",
    "fused linear cross-entropy at V=600: faster than unfused",
    "RoPE, SwiGLU, RMSNorm fwd+bwd >= 1.5x eager",
]


# ---------------------------------------------------------------- timing

def cuda_time(fn, peak=True):
    "(median ms by triton.testing.do_bench, peak MiB of one call above what was allocated before)."
    from triton.testing import do_bench
    fn(); torch.cuda.synchronize()
    mem = None
    if peak:
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(); torch.cuda.synchronize()
        mem = (torch.cuda.max_memory_allocated() - base) / 2**20
    return do_bench(fn, warmup=25, rep=100, return_mode="median"), mem


def cpu_time(fn, repeats):
    "(median ms by time.perf_counter over `repeats` calls after one warm-up, None)."
    fn()
    secs = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); secs.append(time.perf_counter() - t0)
    return statistics.median(secs) * 1e3, None


class Bench:
    "Collects rows: op, case, mode, impl, ms, rate (TFLOP/s or GB/s), peak MiB, note."
    def __init__(self, device, repeats, max_seconds=None):
        self.device, self.repeats, self.rows = device, repeats, []
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.skipped = 0

    def run(self, op, case, mode, impl, fn, *, flops=None, nbytes=None, note=""):
        """Time fn; `mode` 'fwd' runs it without autograd (as inference does), 'fwd+bwd' with. Past the
        deadline nothing more is timed (counted in `skipped`), so that what was measured is still written."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.skipped += 1
            return None
        row = {"op": op, "case": case, "mode": mode, "impl": impl}
        try:
            with torch.set_grad_enabled(mode != "fwd"):
                ms, mem = cuda_time(fn) if self.device.type == "cuda" else cpu_time(fn, self.repeats)
            row.update(ms=round(ms, 4), peak_mib=None if mem is None else round(mem, 1))
            if flops: row["tflops"] = round(flops / ms / 1e9, 2)
            if nbytes: row["gbps"] = round(nbytes / ms / 1e6, 1)
        except Exception as e:                       # an alternative that does not run here is a note, not a failure
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        if note: row["note"] = note
        self.rows.append(row)
        rate = f"{row['tflops']:7.2f} TFLOP/s" if "tflops" in row else f"{row['gbps']:8.1f} GB/s" if "gbps" in row else ""
        print(f"  {op:12s} {case:34s} {mode:8s} {impl:22s} " +
              (f"{row['ms']:10.4f} ms {rate}" + (f"  peak {row['peak_mib']:.0f} MiB" if row.get("peak_mib") is not None else "")
               if "ms" in row else f"-- {row['error']}"), flush=True)
        if torch.cuda.is_available(): torch.cuda.empty_cache()
        return row


def fwd_bwd(f, inputs, grads=None):
    "A closure: f() (a tensor or a tuple of them), then the backward pass of its outputs by `grads` (none for a scalar)."
    def step():
        for x in inputs: x.grad = None
        ys = f()
        ys = ys if isinstance(ys, (tuple, list)) else (ys,)
        gs = grads if isinstance(grads, (tuple, list)) else (grads,)
        torch.autograd.backward(list(ys), None if grads is None else list(gs))
    return step


def liger():
    "The liger_kernel module, or None (the comparisons are then skipped with a note)."
    try:
        import liger_kernel
        return liger_kernel
    except Exception:
        return None


# ---------------------------------------------------------------- ops

def visible_pairs(T, window=None, dilation=1):
    "Number of (query, key) pairs a causal query sees: the work attention does."
    i = torch.arange(T, dtype=torch.float64)
    n = i + 1 if window is None else torch.clamp(i + 1, max=window)
    return float(torch.ceil(n / dilation).sum())


def bench_attention(b, dev, dt, presets, lengths, compile_ok, WIN=WINDOW):
    from mqbench.kernels import attention, attention_mask, attention_reference
    from torch.nn.attention import SDPBackend, sdpa_kernel
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention) if compile_ok else flex_attention
    except Exception:
        flex = None
    cuda = dev.type == "cuda"
    for preset in presets:
        _, H, Hkv, D = PRESETS[preset]
        for T in lengths:
            B = max(1, TOKENS // T)
            g = torch.Generator(device=dev).manual_seed(0)
            q = torch.randn(B, H, T, D, device=dev, dtype=dt, generator=g).requires_grad_()
            k, v = (torch.randn(B, Hkv, T, D, device=dev, dtype=dt, generator=g).requires_grad_() for _ in range(2))
            do = torch.randn_like(q)
            for window, dil in [(None, 1), (WIN, 1), (WIN, DILATION)]:
                if window is not None and window >= T: continue
                case = f"{preset} B{B} T{T} H{H}/{Hkv} D{D}" + (f" W{window}" if window else "") + (f" d{dil}" if dil > 1 else "")
                pairs = visible_pairs(T, window, dil)
                fl = 4 * B * H * D * pairs
                impls = []
                if cuda:
                    impls.append(("mqbench triton", lambda: attention(q, k, v, window=window, dilation=dil)))
                else:
                    impls.append(("mqbench reference", lambda: attention_reference(q, k, v, window=window, dilation=dil)))
                if window is None:
                    def sdpa():
                        if not cuda: return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
                    impls.append(("sdpa flash" if cuda else "sdpa", sdpa))
                else:
                    impls.append(("sdpa dense causal", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)))
                    if T <= 8192:
                        mask = attention_mask(T, window=window, dilation=dil, device=dev)
                        impls.append(("sdpa bool mask", lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)))
                if flex is not None:
                    w_, d_ = window or T, dil
                    def mask_mod(b_, h_, qi, ki): return (qi >= ki) & (qi - ki < w_) & ((qi - ki) % d_ == 0)
                    try:
                        bm = create_block_mask(mask_mod, None, None, T, T, device=str(dev))
                        impls.append(("flex" + (" compiled" if compile_ok else " eager"),
                                      lambda bm=bm: flex(*(x if torch.is_grad_enabled() else x.detach() for x in (q, k, v)),
                                                         block_mask=bm, enable_gqa=True)))
                    except Exception as e:
                        b.rows.append({"op": "attention", "case": case, "impl": "flex", "error": str(e)[:200]})
                for impl, f in impls:
                    b.run("attention", case, "fwd", impl, f, flops=fl)
                    b.run("attention", case, "fwd+bwd", impl, fwd_bwd(f, (q, k, v), do), flops=3.5 * fl)


def bench_rope(b, dev, dt, presets, lengths, compile_ok, L):
    from mqbench.kernels import rope, rope_cache, rope_reference
    def hf(x, cos, sin):                          # Hugging Face's apply_rotary_pos_emb, as a user writes it
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin
    hfc = torch.compile(hf) if compile_ok else None
    for preset in presets:
        _, H, Hkv, D = PRESETS[preset]
        for T in lengths:
            B = max(1, TOKENS // T)
            q = torch.randn(B, H, T, D, device=dev, dtype=dt).requires_grad_()
            k = torch.randn(B, Hkv, T, D, device=dev, dtype=dt).requires_grad_()
            grads = (torch.randn_like(q), torch.randn_like(k))
            cos, sin = rope_cache(T, D, device=dev, dtype=dt)
            case, nb = f"{preset} B{B} T{T} H{H}/{Hkv} D{D} (q and k)", 2 * (q.numel() + k.numel()) * q.element_size()
            ours = rope if dev.type == "cuda" else rope_reference
            impls = [("mqbench triton" if dev.type == "cuda" else "mqbench reference", lambda: (ours(q, cos, sin), ours(k, cos, sin))),
                     ("eager", lambda: (hf(q, cos, sin), hf(k, cos, sin)))]
            if hfc: impls.append(("torch.compile", lambda: (hfc(q, cos, sin), hfc(k, cos, sin))))
            if L and dev.type == "cuda":
                from liger_kernel.ops.rope import LigerRopeFunction
                impls.append(("liger", lambda: LigerRopeFunction.apply(q, k, cos[None], sin[None])))
            for impl, f in impls:
                b.run("rope", case, "fwd", impl, f, nbytes=nb)
                b.run("rope", case, "fwd+bwd", impl, fwd_bwd(f, (q, k), grads), nbytes=2 * nb)


def bench_swiglu(b, dev, dt, presets, lengths, compile_ok, L):
    from mqbench.kernels import swiglu, swiglu_reference
    eager = lambda g, u: F.silu(g) * u
    comp = torch.compile(eager) if compile_ok else None
    for preset in presets:
        hidden = PRESETS[preset][0]
        inter = (8 * hidden // 3 + 63) // 64 * 64
        for T in lengths:
            B = max(1, TOKENS // T)
            g, u = (torch.randn(B, T, inter, device=dev, dtype=dt).requires_grad_() for _ in range(2))
            do = torch.randn_like(g)
            case, nb = f"{preset} B{B} T{T} I{inter}", 3 * g.numel() * g.element_size()
            impls = [("mqbench triton" if dev.type == "cuda" else "mqbench reference",
                      lambda: swiglu(g, u) if dev.type == "cuda" else swiglu_reference(g, u)), ("eager", lambda: eager(g, u))]
            if comp: impls.append(("torch.compile", lambda: comp(g, u)))
            if L and dev.type == "cuda":
                from liger_kernel.ops.swiglu import LigerSiLUMulFunction
                impls.append(("liger", lambda: LigerSiLUMulFunction.apply(g, u)))
            for impl, f in impls:
                b.run("swiglu", case, "fwd", impl, f, nbytes=nb)
                b.run("swiglu", case, "fwd+bwd", impl, fwd_bwd(f, (g, u), do), nbytes=8 / 3 * nb)


def bench_rms_norm(b, dev, dt, presets, lengths, compile_ok, L):
    from mqbench.kernels import rms_norm, rms_norm_reference
    def llama(x, w, eps=1e-6):                    # LlamaRMSNorm.forward, as a user writes it
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    comp = torch.compile(llama) if compile_ok else None
    for preset in presets:
        hidden = PRESETS[preset][0]
        for T in lengths:
            B = max(1, TOKENS // T)
            x = torch.randn(B, T, hidden, device=dev, dtype=dt).requires_grad_()
            w = torch.randn(hidden, device=dev, dtype=dt).requires_grad_()
            dy = torch.randn_like(x)
            case, nb = f"{preset} B{B} T{T} H{hidden}", 2 * x.numel() * x.element_size()
            impls = [("mqbench triton" if dev.type == "cuda" else "mqbench reference",
                      lambda: rms_norm(x, w) if dev.type == "cuda" else rms_norm_reference(x, w)),
                     ("eager", lambda: llama(x, w)), ("F.rms_norm", lambda: F.rms_norm(x, (hidden,), w, 1e-6))]
            if comp: impls.append(("torch.compile", lambda: comp(x, w)))
            if L and dev.type == "cuda":
                from liger_kernel.ops.rms_norm import LigerRMSNormFunction
                # not in place: its backward would write dx over the dy that every timed call reuses
                impls.append(("liger", lambda: LigerRMSNormFunction.apply(x, w, 1e-6, 0.0, "llama", False)))
            for impl, f in impls:
                b.run("rms_norm", case, "fwd", impl, f, nbytes=nb)
                b.run("rms_norm", case, "fwd+bwd", impl, fwd_bwd(f, (x, w), dy), nbytes=2.5 * nb)


def bench_lce(b, dev, dt, presets, vocabs, compile_ok, L, tokens):
    from mqbench.kernels import linear_cross_entropy, linear_cross_entropy_reference
    comp = torch.compile(linear_cross_entropy_reference) if compile_ok else None
    for preset in presets:
        H = PRESETS[preset][0]
        for V in vocabs:
            N = tokens
            h = torch.randn(N, H, device=dev, dtype=dt).requires_grad_()
            w = (torch.randn(V, H, device=dev) / H ** 0.5).to(dt).requires_grad_()
            t = torch.randint(0, V, (N,), device=dev)
            case, fl = f"{preset} N{N} H{H} V{V}", 2 * N * H * V
            impls = [("mqbench fused" if dev.type == "cuda" else "mqbench reference",
                      lambda: linear_cross_entropy(h, w, t) if dev.type == "cuda" else linear_cross_entropy_reference(h, w, t)),
                     ("unfused eager", lambda: linear_cross_entropy_reference(h, w, t))]
            if comp: impls.append(("unfused torch.compile", lambda: comp(h, w, t)))
            if L and dev.type == "cuda":
                from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction
                # the Function returns (loss, z_loss, accuracy, tokens)
                impls.append(("liger fused", lambda: LigerFusedLinearCrossEntropyFunction.apply(h, w, t)[0]))
            for impl, f in impls:
                b.run("lce", case, "fwd", impl, f, flops=fl)
                b.run("lce", case, "fwd+bwd", impl, fwd_bwd(f, (h, w)), flops=3 * fl)


def bench_microstructure(b, dev, N, T):
    from mqbench.kernels import microstructure_features
    g = torch.Generator(device=dev).manual_seed(0)
    L = 10
    bp = 100 + torch.randn(N, T, 1, device=dev, dtype=torch.float64, generator=g).cumsum(1) * 0.01 - 0.01 * torch.arange(L, device=dev)
    ap = bp[..., :1] + 0.02 + 0.01 * torch.arange(L, device=dev)
    bs, as_ = (torch.randint(1, 500, (N, T, L), device=dev, generator=g).double() for _ in range(2))
    vol = torch.randint(0, 300, (N, T), device=dev, generator=g).double()
    for dt in (torch.float64, torch.float32):
        args = [x.to(dt) for x in (bp, bs, ap, as_, vol, vol * bp[..., 0])]
        nb = sum(x.numel() * x.element_size() for x in args) + N * T * 13 * args[0].element_size()
        case = f"N{N} T{T} L{L} {str(dt)[6:]}"
        impls = [("torch reference", "torch")] + ([("mqbench triton", "triton")] if dev.type == "cuda" else [])
        for impl, backend in impls:
            b.run("features", case, "fwd", impl, lambda backend=backend: microstructure_features(*args, backend=backend), nbytes=nb)
    if dev.type != "cuda":                       # beside mqbench.features in numpy on the same (small) grid
        import numpy as np
        from mqbench.features import FeatureConfig, Grid, compute_features
        z = np.zeros((N, T))
        mid = ((bp[..., 0] + ap[..., 0]) / 2).cpu().numpy()
        grid = Grid("book", np.arange(T), [f"S{i}" for i in range(N)], 1, mid, mid, mid, vol.cpu().numpy(),
                    (vol * bp[..., 0]).cpu().numpy(), z, z, z, *(x.cpu().numpy() for x in (bp, bs, ap, as_)),
                    ofi=z, has=frozenset({"book", "ofi"}))
        cfg = FeatureConfig(volume_windows=(10, 50, 100, 300))
        b.run("features", f"N{N} T{T} L{L} float64", "fwd", "mqbench.features numpy",
              lambda: compute_features(grid, cfg, groups=("spread", "imbalance", "volume", "volatility")),
              note="whole groups (more features than the kernel)")


def bench_decoder(b, dev, dt, presets, T=512, tokens=TOKENS):
    """A training step's forward and backward of the decoder (loss at a 600-token vocabulary), under
    autocast in `dt` as the trainer runs on CUDA: PyTorch throughout, the Triton attention alone, and
    every kernel (attention, RMSNorm, RoPE, SwiGLU, the fused head). The figure that decides the
    decoder's defaults."""
    from mqbench.model import SIZES, Decoder, preset
    cuda = dev.type == "cuda"
    configs = [("all triton kernels", dict(attn_backend="triton", kernels="cuda")),
               ("triton attention", dict(attn_backend="triton", kernels="never"))] if cuda else []
    configs.append(("pytorch", dict(attn_backend="sdpa", kernels="never")))
    for size in [p for p in presets if p in SIZES] or ["tiny"]:
        for window in (None, 256):
            if window is not None and window >= T: continue
            B = max(1, tokens // T)
            g = torch.Generator(device=dev).manual_seed(0)
            x = torch.randint(0, 600, (B, T + 1), device=dev, generator=g)
            case = f"{size} B{B} T{T} V600" + (f" W{window}" if window else "")
            for impl, kw in configs:
                torch.manual_seed(0)
                m = Decoder(preset(size, vocab_size=600, block_size=T, window=window, **kw)).to(dev)
                def step(m=m):
                    for p in m.parameters(): p.grad = None
                    with torch.autocast(dev.type, dtype=dt, enabled=cuda):
                        loss = m(x[:, :-1], x[:, 1:])[1]
                    loss.backward()
                b.run("decoder", case, "fwd+bwd", impl, step, nbytes=None,
                      note=f"{sum(p.numel() for p in m.parameters()) / 1e6:.0f}M parameters")
                del m


# ---------------------------------------------------------------- attention block sizes

def tune_attention(dev, dt, lengths):
    "Time the attention kernels under candidate block sizes; print the best per head dim."
    from mqbench.kernels import attention
    from mqbench.kernels.attention import CONFIGS
    fwd_c = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4), (64, 32, 4, 4)]
    dkdv_c = [(32, 128, 4, 3), (64, 128, 8, 2), (32, 64, 4, 3), (64, 64, 4, 3), (32, 128, 8, 2)]
    dq_c = [(128, 32, 4, 3), (128, 64, 8, 2), (64, 64, 4, 3), (64, 32, 4, 3), (128, 32, 8, 2)]
    best = {}
    for D in (64, 128):
        T = max(lengths)
        B = max(1, TOKENS // T)
        q = torch.randn(B, 16, T, D, device=dev, dtype=dt, requires_grad=True)
        k, v = (torch.randn(B, 4, T, D, device=dev, dtype=dt, requires_grad=True) for _ in range(2))
        do = torch.randn_like(q)
        base = dict(CONFIGS[("cuda", D)])
        pick = {}
        for part, cands in (("fwd", fwd_c), ("dkdv", dkdv_c), ("dq", dq_c)):
            times = {}
            for c in cands:
                cfg = {**base, **pick, part: c}
                run = lambda: attention(q, k, v, config=cfg)
                f = run if part == "fwd" else fwd_bwd(run, (q, k, v), do)
                try: times[c] = cuda_time(f, peak=False)[0]
                except Exception as e: print(f"  {part} {c}: {type(e).__name__}")
            pick[part] = min(times, key=times.get)
            print(f"  D{D} T{T} {part}: " + ", ".join(f"{c}: {t:.3f} ms" for c, t in sorted(times.items(), key=lambda x: x[1])))
        best[D] = pick
    print("suggested CONFIGS entries:", json.dumps({f"('cuda', {D})": p for D, p in best.items()}))
    return {str(D): p for D, p in best.items()}


# ---------------------------------------------------------------- targets and output

def _ms(rows, op, mode, impl, case_has=()):
    return {r["case"]: r["ms"] for r in rows if r["op"] == op and r["mode"] == mode and r["impl"] == impl and "ms" in r
            and all(s in r["case"] for s in case_has)}


def check_targets(rows):
    "Each target: the cases it was measured on, the worst ratio, pass or fail."
    out = []
    dense = lambda c: " W" not in c
    a_ours = {c: t for c, t in _ms(rows, "attention", "fwd+bwd", "mqbench triton").items() if dense(c) and (" D64" in c or " D128" in c)}
    a_sdpa = _ms(rows, "attention", "fwd+bwd", "sdpa flash")
    r = {c: a_sdpa[c] / a_ours[c] for c in a_ours if c in a_sdpa}
    out.append({"target": TARGETS[0], "cases": len(r), **({"worst_case": min(r, key=r.get), "worst_speedup": round(min(r.values()), 3),
                "pass": min(r.values()) >= 1.0} if r else {"pass": None, "note": "not measured"})})
    win = lambda c: f" W{WINDOW}" in c and " T8192 " in c and " d" not in c
    ours = {c: t for c, t in _ms(rows, "attention", "fwd+bwd", "mqbench triton").items() if win(c)}
    for i, (alt, need) in enumerate([("sdpa dense causal", 3.0), ("flex compiled", 1.0)]):
        altt = _ms(rows, "attention", "fwd+bwd", alt)
        r = {c: altt[c] / ours[c] for c in ours if c in altt}
        out.append({"target": TARGETS[1 + i], "cases": len(r),
                    **({"worst_case": min(r, key=r.get), "worst_speedup": round(min(r.values()), 3),
                        "need": need, "pass": min(r.values()) >= need} if r else {"pass": None, "note": "not measured"})})
    lce = [r_ for r_ in rows if r_["op"] == "lce" and r_["mode"] == "fwd+bwd" and "ms" in r_]
    fused = {r_["case"]: r_ for r_ in lce if r_["impl"] == "mqbench fused"}
    plain = {r_["case"]: r_ for r_ in lce if r_["impl"] == "unfused eager"}
    big = [c for c in fused if c.endswith("V32768") and c in plain]
    out.append({"target": TARGETS[3], "cases": len(big), **({
        "worst_memory_ratio": round(max(fused[c]["peak_mib"] / plain[c]["peak_mib"] for c in big), 3),
        "worst_time_ratio": round(max(fused[c]["ms"] / plain[c]["ms"] for c in big), 3),
        "pass": all(fused[c]["peak_mib"] <= plain[c]["peak_mib"] / 4 and fused[c]["ms"] <= 1.2 * plain[c]["ms"] for c in big)}
        if big else {"pass": None, "note": "not measured"})})
    small = [c for c in fused if c.endswith("V600") and c in plain]
    out.append({"target": TARGETS[4], "cases": len(small), **({
        "worst_speedup": round(min(plain[c]["ms"] / fused[c]["ms"] for c in small), 3),
        "pass": all(fused[c]["ms"] < plain[c]["ms"] for c in small)} if small else {"pass": None, "note": "not measured"})})
    r = {}
    for op in ("rope", "swiglu", "rms_norm"):
        o, e = _ms(rows, op, "fwd+bwd", "mqbench triton"), _ms(rows, op, "fwd+bwd", "eager")
        r.update({f"{op} {c}": e[c] / o[c] for c in o if c in e})
    out.append({"target": TARGETS[5], "cases": len(r), **({"worst_case": min(r, key=r.get), "worst_speedup": round(min(r.values()), 3),
                "pass": min(r.values()) >= 1.5} if r else {"pass": None, "note": "not measured"})})
    return out


def markdown(res) -> str:
    "The results as markdown: per op and case, each implementation beside the first (ours)."
    lines = [f"# mqbench.kernels on {res['device_name']}", "",
             f"{res['when_utc']}, torch {res['machine']['torch']}, triton {res['machine']['triton']}, dtype {res['dtype']}; "
             "times are medians. `speedup of ours`: this row's time over the first row's of its case and mode (ours), "
             "so above 1 means ours is faster.", ""]
    lines += ["| op | case | mode | impl | ms | TFLOP/s or GB/s | peak MiB | speedup of ours |", "|---|---|---|---|---|---|---|---|"]
    first = {}
    for r in res["results"]:
        key = (r["op"], r["case"], r.get("mode"))
        if "ms" not in r:
            lines.append(f"| {r['op']} | {r['case']} | {r.get('mode', '')} | {r['impl']} | – | | | {r.get('error', '')[:80]} |")
            continue
        first.setdefault(key, r["ms"])
        rate = f"{r['tflops']} TFLOP/s" if "tflops" in r else f"{r['gbps']} GB/s" if "gbps" in r else ""
        lines.append(f"| {r['op']} | {r['case']} | {r['mode']} | {r['impl']} | {r['ms']:.4g} | {rate} | "
                     f"{'' if r.get('peak_mib') is None else r['peak_mib']} | {r['ms'] / first[key]:.2f} |")
    lines += ["", "## Targets", "", "| target | result |", "|---|---|"]
    for t in res["targets"]:
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[t["pass"]]
        detail = ", ".join(f"{k} {v}" for k, v in t.items() if k not in ("target", "pass"))
        lines.append(f"| {t['target']} | {verdict}: {detail} |")
    if res.get("notes"): lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    ap.add_argument("--ops", default="attention,lce,decoder,rope,swiglu,rms_norm,features")
    ap.add_argument("--presets", default=None, help=f"comma-separated of {list(PRESETS)} (default: all on CUDA, tiny on the CPU)")
    ap.add_argument("--lengths", default=None, help="comma-separated sequence lengths (default 512..16384 on CUDA, 128,256 on the CPU)")
    ap.add_argument("--dtype", default="bfloat16", help="bfloat16 or float16 on CUDA (the CPU path uses float32)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile alternatives (they compile once per shape)")
    ap.add_argument("--tune", action="store_true", help="CUDA: sweep the attention block sizes first")
    ap.add_argument("--window", type=int, default=None, help=f"attention window (default {WINDOW} on CUDA, 64 on the CPU)")
    ap.add_argument("--repeats", type=int, default=5, help="CPU path: timed calls per case (median)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="time nothing more after this many seconds; the ops run in the order of --ops")
    ap.add_argument("--out", default=None, help="where to record (default bench/results/kernels[-GPU].json, and .md beside it)")
    a = ap.parse_args()
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available(): sys.exit("no CUDA device")
    torch.manual_seed(0)
    dt = getattr(torch, a.dtype) if cuda else torch.float32
    presets = a.presets.split(",") if a.presets else (list(PRESETS) if cuda else ["tiny"])
    lengths = [int(x) for x in a.lengths.split(",")] if a.lengths else (list(LENGTHS) if cuda else [128, 256])
    compile_ok = cuda and not a.no_compile
    L = liger() if cuda else None
    import triton
    notes = []
    if cuda and L is None: notes.append("liger_kernel is not installed: the Liger-Kernel comparisons are skipped")
    if not cuda:
        notes.append("CPU path: the PyTorch references against eager alternatives at tiny shapes, timed with "
                     "time.perf_counter; the Triton kernels are measured only on CUDA")
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    name = torch.cuda.get_device_name(dev) if cuda else (platform.processor() or platform.machine())
    print(f"device: {name}; dtype {dt}; presets {presets}; lengths {lengths}; torch.compile {compile_ok}; "
          f"liger {'yes' if L else 'no'}", flush=True)
    b = Bench(dev, a.repeats, a.max_seconds)
    res = {"device": str(dev), "device_name": name, "dtype": str(dt), "presets": presets, "lengths": lengths}
    if a.tune and cuda: res["tuned"] = tune_attention(dev, dt, lengths)
    ops = a.ops.split(",")
    runs = {"attention": lambda: bench_attention(b, dev, dt, presets, lengths, compile_ok, a.window or (WINDOW if cuda else 64)),
            "rope": lambda: bench_rope(b, dev, dt, presets, lengths, compile_ok, L),
            "swiglu": lambda: bench_swiglu(b, dev, dt, presets, lengths, compile_ok, L),
            "rms_norm": lambda: bench_rms_norm(b, dev, dt, presets, lengths, compile_ok, L),
            "lce": lambda: bench_lce(b, dev, dt, presets, VOCABS if cuda else (600, 4096), compile_ok, L, TOKENS if cuda else 512),
            "features": lambda: bench_microstructure(b, dev, *((64, 234_000) if cuda else (4, 3000))),
            "decoder": lambda: bench_decoder(b, dev, dt, presets, *((512, TOKENS) if cuda else (128, 512)))}
    for op in ops:
        if op not in runs: ap.error(f"unknown op {op!r}; known: {list(runs)}")
    gpu = name.replace(" ", "-") if cuda else None
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / (f"kernels-{gpu}.json" if gpu else "kernels.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        "Write what was measured so far (after every op, and when stopped)."
        res["results"] = b.rows
        res["targets"] = check_targets(b.rows) if cuda else []
        res["notes"] = notes + ([f"{b.skipped} measurements skipped: past --max-seconds {a.max_seconds:g}"] if b.skipped else [])
        res["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__}
        res["when_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out.write_text(json.dumps(res, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(res))

    # `timeout` (or a killed job) ends the run with SIGTERM: the measurements so far are written on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for op in ops:
            print(f"{op}:", flush=True)
            try: runs[op]()
            except Exception:
                traceback.print_exc()
                notes.append(f"{op}: failed, see the console")
            save()
    finally:
        save()
    print(json.dumps(res, indent=2))
    if cuda:
        print("\ntargets:")
        for t in res["targets"]:
            print(f"  [{ {True: 'pass', False: 'FAIL', None: ' -- '}[t['pass']] }] {t['target']}: "
                  + ", ".join(f"{k} {v}" for k, v in t.items() if k not in ("target", "pass")))
    print(f"written: {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
