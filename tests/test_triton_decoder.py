"""The decoder on the Triton kernels (attention, RMSNorm, RoPE, SwiGLU) trains like the plain PyTorch one:
30 steps of the same tiny model on the same batches, the kernels running on the CPU under the
interpreter (in a subprocess, since TRITON_INTERPRET must be set before triton is imported)."""
import json, os, subprocess, sys

SCRIPT = r'''
import json, torch
from mqbench.model import Decoder, preset
from mqbench.optim import Optimizer, OptimConfig

def run(backend, kernels):
    torch.manual_seed(0)
    m = Decoder(preset("tiny", vocab_size=64, block_size=40, n_embd=32, n_head=2, n_kv_head=1, n_layer=2,
                       window=24, attn_backend=backend, kernels=kernels))
    opt = Optimizer(m, OptimConfig(use_muon=False, lr=3e-3, warmup_steps=3, total_steps=30))
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(30):
        x = torch.randint(0, 64, (2, 34), generator=g)
        x[:, 1::2] = (x[:, 0::2] + 3) % 64          # a learnable pattern: every odd token follows from the last
        _, loss = m(x[:, :-1], x[:, 1:])
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
    return losses

print(json.dumps({"sdpa": run("sdpa", "never"), "triton": run("triton", "always")}))
'''


def test_triton_attention_follows_sdpa_for_30_steps():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    a, b = r["sdpa"], r["triton"]
    assert a[-1] < a[0] - 0.3, "the model learns"
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3, list(zip(a, b))
