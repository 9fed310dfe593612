"""Every Triton kernel builds for a Hopper GPU (sm_90: the H100 and H200) at the project's shapes and dtypes,
with the block sizes and warps it takes there, and fits in its shared memory: compiled to PTX and cubin
by Triton's own compiler and ptxas, on a machine without a GPU (`mqbench.testing.compile_for`). The
interpreter, which runs the numerical tests on the CPU, checks none of this."""
import json

import pytest

SCRIPT = r'''
import json, time, torch
from mqbench.kernels import attention, linear_cross_entropy, microstructure_features, rms_norm, rope, rope_cache, swiglu
from mqbench.testing import compile_for
from mqbench.model import SIZES, ModelConfig

bf16, f16, f32, f64 = torch.bfloat16, torch.float16, torch.float32, torch.float64
def leaf(*shape, dtype=bf16): return torch.randn(*shape).to(dtype).requires_grad_()
def fwd_bwd(y): (y if y.ndim == 0 else y.float().sum()).backward()

t0 = time.time()
with compile_for(90) as built:
    cases = [(D, bf16, flags) for D in (16, 32, 64, 128) for flags in ({}, {"window": 256}, {"window": 256, "dilation": 2})]
    cases += [(64, bf16, {"causal": False}), (128, f16, {}), (64, f32, {}), (128, f32, {"window": 256})]
    for D, dt, flags in cases:
        q, k, v = leaf(1, 4, 512, D, dtype=dt), leaf(1, 2, 512, D, dtype=dt), leaf(1, 2, 512, D, dtype=dt)
        fwd_bwd(attention(q, k, v, **flags, backend="triton"))
    for D in (32, 64, 128):
        cos, sin = rope_cache(64, D, dtype=bf16)
        fwd_bwd(rope(leaf(2, 4, 64, D), cos, sin, backend="triton"))
    widths = sorted({ModelConfig(**SIZES[s]).hidden for s in SIZES})
    for N in widths: fwd_bwd(swiglu(leaf(8, N), leaf(8, N), backend="triton"))
    hidden = sorted({ModelConfig(**SIZES[s]).n_embd for s in SIZES} | {ModelConfig(**SIZES[s]).head_dim for s in SIZES})
    for H in hidden:
        for dt in (bf16, f32):
            fwd_bwd(rms_norm(leaf(8, H, dtype=dt), leaf(H, dtype=dt), backend="triton"))
        fwd_bwd(rms_norm(leaf(8, H), None, backend="triton"))
    for H, V in [(128, 600), (1024, 600), (1024, 32768)]:
        fwd_bwd(linear_cross_entropy(leaf(64, H), leaf(V, H), torch.randint(0, V, (64,)), backend="triton"))
    for dt in (f64, f32):
        book = [torch.rand(2, 300, 10, dtype=dt) + 1 for _ in range(4)]
        microstructure_features(*book, torch.rand(2, 300, dtype=dt), torch.rand(2, 300, dtype=dt), backend="triton")
print(json.dumps({"seconds": time.time() - t0, "kernels": [
    {"name": n, "shared": k.metadata.shared, "warps": k.metadata.num_warps, "stages": k.metadata.num_stages,
     "cubin": len(k.asm.get("cubin", b""))} for n, k in built]}))
'''

SM90_SHARED = 227 * 1024      # the most shared memory one block may take on sm_90


def test_every_kernel_builds_for_hopper():
    pytest.importorskip("triton")
    from mqbench.testing import run_python
    r = json.loads(run_python(SCRIPT, interpret=False, timeout=1200).strip().splitlines()[-1])
    kernels = r["kernels"]
    names = {k["name"] for k in kernels}
    assert names == {"_attn_fwd", "_attn_bwd_delta", "_attn_bwd_dkdv", "_attn_bwd_dq", "_rope_kernel", "_swiglu_fwd",
                     "_swiglu_bwd", "_rms_fwd", "_rms_bwd", "_ce_rows", "_micro_kernel"}, names
    assert all(k["cubin"] > 0 for k in kernels), [k for k in kernels if not k["cubin"]]
    over = [k for k in kernels if k["shared"] > SM90_SHARED]
    assert not over, over
    print(f"{len(kernels)} launches compiled for sm_90 in {r['seconds']:.0f} s; most shared memory "
          f"{max(k['shared'] for k in kernels) / 1024:.0f} KiB")
