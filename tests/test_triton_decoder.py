"""The decoder on the Triton kernels (attention, RMSNorm, RoPE, SwiGLU, the fused LM head and loss) trains
like the plain PyTorch one, in float32 and under bfloat16 autocast. The kernels run on the CPU under the
interpreter, in a subprocess, since TRITON_INTERPRET must be set before triton is imported."""
import json

from mqbench.testing import run_python

COMMON = r'''
import json, torch
import mqbench.testing     # patches Triton's interpreter: bfloat16 through tl.dot
from mqbench.model import Decoder, preset

def decoder(backend, kernels, dtype=torch.float32):
    torch.manual_seed(0)
    m = Decoder(preset("tiny", vocab_size=64, block_size=40, n_embd=32, n_head=2, n_kv_head=1, n_layer=2,
                       window=24, attn_backend=backend, kernels=kernels))
    return m.to(dtype)
'''

TRAIN = COMMON + r'''
from mqbench.optim import Optimizer, OptimConfig

def run(backend, kernels):
    m = decoder(backend, kernels)
    opt = Optimizer(m, OptimConfig(use_muon=False, lr=1e-2, warmup_steps=3, total_steps=12))
    g = torch.Generator().manual_seed(1)
    losses, fused = [], []
    for _ in range(12):
        x = torch.randint(0, 64, (2, 34), generator=g)
        x[:, 1::2] = (x[:, 0::2] + 3) % 64          # a learnable pattern: every odd token follows from the last
        logits, loss = m(x[:, :-1], x[:, 1:])
        fused.append(logits is None)
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
    return losses, all(fused)

print(json.dumps({"sdpa": run("sdpa", "never"), "triton": run("triton", "always")}))
'''

AUTOCAST = COMMON + r'''
def grads(backend, kernels, autocast, dtype=torch.float32):
    m = decoder(backend, kernels, dtype)
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randint(0, 64, (2, 33), generator=g) for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = m(x, y)[1]
    loss.backward()
    return loss.item(), {n: p.grad.double() for n, p in m.named_parameters()}

truth = grads("reference", "never", False, torch.float64)
eager = grads("sdpa", "never", True)
ours = grads("triton", "always", True)
rel = lambda got: {n: ((got[1][n] - g).norm() / g.norm()).item() for n, g in truth[1].items()}
print(json.dumps({"loss": [truth[0], eager[0], ours[0]], "eager": rel(eager), "ours": rel(ours)}))
'''


def run_interpreted(script):
    return json.loads(run_python(script, interpret=True, timeout=600).strip().splitlines()[-1])


def test_triton_kernels_follow_pytorch_for_12_steps():
    r = run_interpreted(TRAIN)
    (a, a_fused), (b, b_fused) = r["sdpa"], r["triton"]
    assert not a_fused and b_fused, "the kernels' loss comes from the fused head, without logits"
    assert a[-1] < a[0] - 0.3, "the model learns"
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3, list(zip(a, b))


def test_triton_kernels_under_bfloat16_autocast():
    """Under autocast (how the trainer runs on CUDA) every kernel gets bfloat16 from the projections and
    float32 from the residual stream: the loss and every gradient must be as close to the float64 truth as
    eager PyTorch under the same autocast, within 3x (the interpreter truncates float32 to bfloat16 where
    the GPU rounds, see mqbench.testing.bf16_factor)."""
    r = run_interpreted(AUTOCAST)
    truth, eager, ours = r["loss"]
    assert abs(ours - truth) <= 3 * abs(eager - truth) + 1e-3, r["loss"]
    worse = {n: (r["ours"][n], e) for n, e in r["eager"].items() if r["ours"][n] > 3 * e + 1e-3}
    assert not worse, worse
    assert max(r["ours"].values()) < 0.05, r["ours"]


RING = COMMON + r'''
from dataclasses import replace
from mqbench.model import KVCache, stream_generate

def logits(backend, kernels):
    m = decoder(backend, kernels).eval()
    W, seq = 12, torch.randint(0, 64, (2, 70), generator=torch.Generator().manual_seed(2))   # past block_size 40
    cache, out = KVCache(m.config, 2, window=W), []
    with torch.no_grad():
        for pos, T in ((0, 17), *((p, 1) for p in range(17, 70))):
            out.append(m(seq[:, pos:pos + T], cache=cache, pos=pos)[0])
        twin = Decoder(replace(m.config, window=W, block_size=70)); twin.load_state_dict(m.state_dict())
        want = twin.eval()(seq)[0]
    tokens = torch.stack(list(stream_generate(m, seq[:, :5], window=W, max_new_tokens=60, greedy=True)), 1)
    return (torch.cat(out, 1) - want).abs().max().item(), tokens.tolist()

print(json.dumps({"sdpa": logits("sdpa", "never"), "triton": logits("triton", "always")}))
'''


def test_ring_cache_on_the_kernels():
    """The ring KV cache with the Triton kernels (RoPE past the table, RMSNorm, SwiGLU; the full forward it is
    compared with runs the attention kernel with the sliding window) gives the sliding-window forward's logits,
    and greedy streaming gives the tokens of the PyTorch path."""
    r = run_interpreted(RING)
    (gap_sdpa, tokens_sdpa), (gap_triton, tokens_triton) = r["sdpa"], r["triton"]
    assert gap_sdpa < 1e-5 and gap_triton < 1e-4, (gap_sdpa, gap_triton)
    assert tokens_triton == tokens_sdpa
