"""Training as a user runs it: a real process killed by SIGKILL and resumed ends bit for bit where an
uninterrupted run ends; two DDP processes under torchrun take the same steps as one process with the
same global batch; an RL run resumed from a checkpoint samples and ends as one never stopped."""
import json, os, signal, subprocess, sys, time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

PY = sys.executable
TORCHRUN = Path(sys.executable).parent / "torchrun"
SMALL = ["--set", "n_embd=64", "--set", "n_layer=2", "--set", "n_head=2", "--set", "n_kv_head=1", "--no-mlflow"]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    "Event tokens of a three-symbol, three-minute synthetic day, windows of 64."
    from mqbench.prepare import prepare_itch, synthetic_day
    from mqbench.tokenize import write_token_dataset
    d = tmp_path_factory.mktemp("train")
    prepare_itch(synthetic_day(symbols=3, hours=0.05, seed=2, path=d / "d.itch"), d / "ds")
    write_token_dataset(d / "ds", d / "tok", block_size=64)
    return d / "tok"


def env():
    "One thread per process (two cores; the bitwise comparison needs the same threads in every run)."
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(tokens, out, *args):
    return [PY, "-m", "mqbench.train", "--data", str(tokens), "--out", str(out), *SMALL, *args]


def records(run: Path) -> list:
    "metrics.jsonl, skipping a line that a killed process left half-written."
    out = []
    p = run / "metrics.jsonl"
    if not p.exists(): return out
    for line in p.read_text().splitlines():
        try: out.append(json.loads(line))
        except json.JSONDecodeError: pass
    return out


def final_checkpoint(run: Path) -> Path:
    return run / "checkpoints" / json.loads((run / "checkpoints" / "latest.json").read_text())["name"]


def kill_at_first_checkpoint(cmd: list, run: Path, poll: float = 0.01):
    "Start the training command `cmd` writing `run`, and SIGKILL it as soon as its first checkpoint is logged."
    p = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not any(r["event"] == "checkpoint" for r in records(run)):
        assert p.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(poll)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_killed_process_resumes_bitwise(tokens, tmp_path):
    # Muon on, as a real run has it: its momentum buffers are part of what must come back
    args = ["--steps", "60", "--batch-size", "8", "--checkpoint-every", "5", "--eval-every", "10", "--log-every", "1",
            "--warmup-steps", "5", "--device", "cpu"]
    ref = subprocess.run(train_cmd(tokens, tmp_path / "ref", *args), env=env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr

    run = tmp_path / "killed"
    kill_at_first_checkpoint(train_cmd(tokens, run, *args), run)
    killed = records(run)
    ck_steps = [r["step"] for r in killed if r["event"] == "checkpoint"]
    assert not any(r["event"] == "done" for r in killed) and max(ck_steps) < 60, "killed mid-run"

    res = subprocess.run(train_cmd(tokens, run, *args, "--resume"), env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    a = load_file(str(final_checkpoint(tmp_path / "ref") / "model.safetensors"))
    b = load_file(str(final_checkpoint(run) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run's"
    oa = torch.load(final_checkpoint(tmp_path / "ref") / "optimizer.pt", weights_only=True)
    ob = torch.load(final_checkpoint(run) / "optimizer.pt", weights_only=True)
    for k in ("muon", "adamw"):
        for i, st in oa[k]["state"].items():
            assert all(torch.equal(v, ob[k]["state"][i][n]) for n, v in st.items() if torch.is_tensor(v))
    # the log of the resumed run reads as the uninterrupted one: the same losses step by step, one record per step
    la = [(r["step"], r["loss"]) for r in records(tmp_path / "ref") if r["event"] == "train"]
    lb = [(r["step"], r["loss"]) for r in records(run) if r["event"] == "train"]
    assert la == lb and len(lb) == 60
    assert [r["step"] for r in records(run) if r["event"] == "done"] == [60]
    assert not list((run / "checkpoints").glob(".step-*")), "no half-written checkpoint left behind"


def test_torchrun_two_ranks_match_one_process(tokens, tmp_path):
    args = ["--steps", "4", "--batch-size", "8", "--eval-every", "2", "--log-every", "1", "--no-muon", "--warmup-steps", "2",
            "--device", "cpu"]
    one = subprocess.run(train_cmd(tokens, tmp_path / "one", *args, "--grad-accum", "2"), env=env(), capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "mqbench.train", "--data", str(tokens),
                          "--out", str(tmp_path / "two"), *SMALL, *args], env=env(), capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stdout + two.stderr
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    r1, r2 = records(tmp_path / "one"), records(tmp_path / "two")
    for event, key in (("train", "loss"), ("train", "grad_norm"), ("eval", "val_loss")):
        a = [(r["step"], r[key]) for r in r1 if r["event"] == event]
        b = [(r["step"], r[key]) for r in r2 if r["event"] == event]
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 3
        assert all(abs(x - y) <= 1e-5 * abs(x) for (_, x), (_, y) in zip(a, b)), (key, a, b)
    wa = load_file(str(final_checkpoint(tmp_path / "one") / "model.safetensors"))
    wb = load_file(str(final_checkpoint(tmp_path / "two") / "model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5, rtol=0) for k in wa)
    assert sum(r["event"] == "done" for r in r2) == 1, "rank 0 alone writes the log"


def test_rl_resume_and_generation(tokens, tmp_path):
    from mqbench.optim import OptimConfig
    from mqbench.runs import checkpoint_path, generate_from_run
    from mqbench.train import TrainConfig, train
    torch.set_num_threads(1)
    cfg = TrainConfig(data=str(tokens), stage="rl", model={"n_embd": 64, "n_layer": 1, "n_head": 2, "n_kv_head": 1},
                      optim=OptimConfig(use_muon=False, warmup_steps=2), steps=6, batch_size=4, rl_samples=3, eval_every=3,
                      checkpoint_every=3, reward="return_mse", mlflow=False, out=str(tmp_path / "rl"))
    s = train(cfg)
    final = load_file(str(checkpoint_path(s["run_dir"]) / "model.safetensors"))
    (tmp_path / "rl" / "checkpoints" / "latest.json").write_text(json.dumps({"name": "step-0000003", "step": 3}))
    s2 = train(replace(cfg, resume=True))
    again = load_file(str(checkpoint_path(s2["run_dir"]) / "model.safetensors"))
    assert all(torch.equal(final[k], again[k]) for k in final), "RL sampling is seeded by step: a resumed run samples the same"
    assert s2["final_val_loss"] == s["final_val_loss"] and 0 <= s["traj_acc"] <= 1
    g = generate_from_run(s["run_dir"], n=50, top_k=8, seed=3)
    assert len(g["tokens"]) == 50 and list(g["decoded"].columns[:2]) == ["token", "action"]


def test_bad_input_is_a_message_not_a_traceback(tokens, tmp_path):
    p = subprocess.run(train_cmd(tmp_path, tmp_path / "x", "--steps", "1"), env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "not a token dataset" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run(train_cmd(tokens, tmp_path / "y", "--steps", "1", "--set", "block_size=128"), env=env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "come from the data" in p.stderr


def classify_cmd(data, out, *args):
    return [PY, "-m", "mqbench.train", "--task", "classify", "--data", str(data), "--out", str(out), "--set", "hidden=32", "--no-mlflow",
            *args]


def test_killed_classify_run_resumes_bitwise(tokens, tmp_path):
    "A classifier run (class weights on, best/ by macro-F1) killed by SIGKILL and resumed ends where an uninterrupted run ends."
    data = tokens.parent / "ds"
    args = ["--steps", "300", "--batch-size", "16", "--checkpoint-every", "5", "--eval-every", "25", "--log-every", "1",
            "--warmup-steps", "5", "--device", "cpu"]
    ref = subprocess.run(classify_cmd(data, tmp_path / "ref", *args), env=env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    kill_at_first_checkpoint(classify_cmd(data, run, *args), run, poll=0.005)
    assert not any(r["event"] == "done" for r in records(run)), "killed mid-run"
    res = subprocess.run(classify_cmd(data, run, *args, "--resume"), env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    for which in ("final", "best"):
        a = load_file(str((final_checkpoint(tmp_path / "ref") if which == "final" else tmp_path / "ref" / "best") / "model.safetensors"))
        b = load_file(str((final_checkpoint(run) if which == "final" else run / "best") / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), which
    sa, sb = (json.loads(res.stdout[res.stdout.index("{"):]), json.loads(ref.stdout[ref.stdout.index("{"):]))
    for k in ("best_val_macro_f1", "best_step", "val_macro_f1", "val_accuracy", "final_val_loss"):
        assert sa[k] == sb[k], k
    assert [r["step"] for r in records(run) if r["event"] == "done"] == [300]


def test_window_summaries_from_running_sums_match_the_windows():
    "split_summaries (prefix sums restarted every L rows, sliding min/max) equals the direct computation on random splits."
    import numpy as np, pandas as pd, types
    from hypothesis import given, settings, strategies as st
    from mqbench.tabular import split_summaries, window_summaries

    @settings(max_examples=60, deadline=None)
    @given(st.integers(1, 12), st.integers(0, 60), st.integers(1, 4), st.integers(0, 2**31), st.floats(0.01, 1e3))
    def check(L, extra, F, seed, scale):
        rng = np.random.default_rng(seed)
        rows = (rng.normal(size=(L + extra, F)) * scale).astype(np.float32)
        rows[:, 0] = np.round(rows[:, 0])                                   # runs of equal values: constant windows
        ends = rng.integers(L - 1, L + extra, size=20)
        s = types.SimpleNamespace(rows=rows, sequence_length=L, windows=pd.DataFrame({"row_end": ends}))
        wins = np.stack([rows[e - L + 1:e + 1] for e in ends])
        got, want = split_summaries(s, chunk=3), window_summaries(torch.from_numpy(wins)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
        const = wins.min(1) == wins.max(1)                                  # (n, F)
        assert (got[:, 2 * F:3 * F][const] == 0).all() and (want[:, 2 * F:3 * F][const] == 0).all()
    check()
