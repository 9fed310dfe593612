"The `mqbench` command end to end, as a user runs it: a synthetic day, its stats, BBO and book tables."
import json, subprocess, sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

BBO_COLUMNS = ["ts_ns", "locate", "symbol", "bid_px", "bid_sz", "ask_px", "ask_sz"]


MQBENCH = Path(sys.executable).parent / "mqbench"   # the console script installed beside this python


def mq(*args, ok=True):
    p = subprocess.run([str(MQBENCH), *map(str, args)], capture_output=True, text=True)
    if ok: assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "day.itch.gz"
    mq("synth", "--out", path, "--n-symbols", 3, "--hours", 0.05, "--seed", 3)
    return path


def test_stats(day):
    st = json.loads(mq("itch", "stats", day).stdout)
    assert st["total"] == sum(st["by_type"].values()) > 10_000
    assert len(st["symbols"]) == 3
    assert {"S", "R", "A", "D", "U", "E"} <= set(st["by_type"])
    assert st["first_timestamp_ns"] <= st["last_timestamp_ns"]


def test_bbo(day, tmp_path):
    sym = json.loads(mq("itch", "stats", day).stdout)["symbols"][1]
    out = tmp_path / "bbo.parquet"
    mq("itch", "bbo", day, "--out", out, "--symbols", sym)
    t = pq.read_table(out).to_pandas()
    assert list(t.columns) == BBO_COLUMNS and len(t) > 100
    assert set(t["symbol"]) == {sym}
    assert t["ts_ns"].is_monotonic_increasing
    both = (t.bid_px > 0) & (t.ask_px > 0)
    assert (t.bid_px[both] < t.ask_px[both]).all(), "a valid day never gives a crossed book"
    assert ((t.bid_sz >= 0) & (t.ask_sz >= 0)).all()


def test_book(day, tmp_path):
    out = tmp_path / "book"
    mq("itch", "book", day, "--out", out, "--levels", 5, "--every-ms", 100)
    files = sorted(p.name for p in out.glob("*.parquet"))
    assert len(files) >= 3, files
    for f in files: assert pq.read_metadata(out / f).num_rows > 0, f


def test_errors_are_one_line_and_leave_nothing(day, tmp_path):
    p = mq("itch", "stats", tmp_path / "missing.itch", ok=False)
    assert p.returncode != 0 and "no such file" in p.stderr and "Traceback" not in p.stderr
    cut = tmp_path / "cut.itch"
    cut.write_bytes(__import__("gzip").decompress(day.read_bytes())[:-7])
    out = tmp_path / "bbo.parquet"
    p = mq("itch", "bbo", cut, "--out", out, ok=False)
    assert p.returncode != 0 and "truncated" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and not list(tmp_path.glob(".bbo.parquet*")), "nothing half-written is left"


def test_help():
    for args in (["--help"], ["itch", "bbo", "--help"], ["synth", "--help"], ["demo", "--help"], ["train", "--help"]):
        assert "usage: mqbench" in mq(*args).stdout
    assert mq("--version").stdout.startswith("mqbench ")


def test_old_spellings_still_work_and_say_what_to_use(day, tmp_path):
    "One release of grace: --output, --symbol, --symbols N (a count) and --warmup work and name their replacement."
    p = mq("synth", "--out", tmp_path / "d.itch", "--symbols", 2, "--hours", 0.01)
    assert "--symbols is deprecated and will be removed; use --n-symbols" in p.stderr and len(json.loads(p.stdout)["symbols"]) == 2
    sym = json.loads(mq("itch", "stats", day).stdout)["symbols"][0]
    p = mq("itch", "bbo", day, "--out", tmp_path / "b.parquet", "--symbol", sym)
    assert "use --symbols" in p.stderr and set(pq.read_table(tmp_path / "b.parquet").to_pandas()["symbol"]) == {sym}
    p = mq("prepare", "itch", "--input", day, "--output", tmp_path / "ds", "--sequence-length", 20, "--limit", 100_000)
    assert "--output is deprecated" in p.stderr and (tmp_path / "ds" / "manifest.json").exists()


def test_prepare_tokenize_train_generate(day, tmp_path):
    "The path from a day to generated events, through the command line only."
    mq("prepare", "itch", "--input", day, "--out", tmp_path / "ds", "--sequence-length", 20)
    mq("tokenize", "events", "--input", tmp_path / "ds", "--out", tmp_path / "tok", "--block-size", 64)
    assert json.loads((tmp_path / "tok" / "manifest.json").read_text())["stage"] == "tokens"
    out = mq("train", "--data", tmp_path / "tok", "--steps", 12, "--eval-every", 6, "--no-muon", "--out", tmp_path / "run",
             "--set", "n_embd=64", "--set", "n_layer=2", "--set", "n_head=2", "--set", "n_kv_head=1").stdout
    summary = json.loads(out[out.index("{"):])
    assert summary["steps"] == 12 and summary["final_val_loss"] < summary["start_val_loss"]
    gen = mq("generate", "--run", tmp_path / "run", "--n", 25, "--show", 3).stdout
    assert "25 tokens" in gen and "action" in gen
    gen = mq("generate", "--run", tmp_path / "run", "--n", 150, "--window", 32, "--show", 3).stdout   # past the 64-token context
    assert "150 tokens" in gen and "action" in gen
    p = mq("train", "--data", tmp_path / "missing", "--steps", 1, ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_demo_makes_every_report(tmp_path):
    "The main job on a small day: every report ran, its page holds its figures with plotly.js inline, the index lists them."
    import os, re
    env = {**os.environ, "MQBENCH_HOME": str(tmp_path)}          # data/ (the example inputs too) and reports/ of its own
    args = ["demo", "--n-symbols", 3, "--hours", 0.1, "--steps", 30, "--preset", "micro", "--ablation-budgets", "5,15",
            "--leaderboard-param", "seeds", 1, "--leaderboard-param", "steps", 20, "--leaderboard-param", "eval_windows", 64,
            "--leaderboard-param", "n_boot", 200, "--leaderboard-param", "latency_calls", 20,
            "--leaderboard-param", "finetune_steps", 10, "--leaderboard-param", "finetune_n_events", 32,
            "--leaderboard-param", "models", "mlp,xgboost,logistic_regression",   # the other families train in 09c-09e
            "--out", tmp_path / "data" / "demo", "--reports-root", tmp_path / "reports"]
    p = subprocess.run([str(MQBENCH), *map(str, args)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    index = (tmp_path / "reports" / "index.html").read_text()
    for name in ("train", "backtest", "stylized_facts", "ablation", "leaderboard"):
        runs = list((tmp_path / "reports" / name).glob("*/run.json"))
        assert len(runs) == 1, name
        run = json.loads(runs[0].read_text())
        assert run["status"] == "ok" and run["headline"], name
        page = (runs[0].parent / "report.html").read_text()
        assert page.count("Plotly.newPlot(") >= 1 and "plotly.js v" in page, name
        assert not re.search(r"<script[^>]+src=[\"']https?:", page), name
        assert runs[0].parent.name in index, name
    bt = json.loads(next((tmp_path / "reports" / "backtest").glob("*/run.json")).read_text())["headline"]
    assert bt["beats_every_baseline"] == (bt["model_loss"] < bt["baseline_loss"])
    assert "the main job took" in p.stdout
    board = json.loads(next((tmp_path / "reports" / "leaderboard").glob("*/run.json")).read_text())["headline"]
    assert "lora_events_macro_f1" in board, "the order-flow base fine-tuned with LoRA is a leaderboard row"


@pytest.fixture(scope="module")
def example_dataset():
    "The example day's dataset (mqbench.demo.example_inputs, built once and cached)."
    from mqbench.demo import example_inputs
    return example_inputs()["dataset"]


def summary_of(p) -> dict:
    return json.loads(p.stdout[p.stdout.index("{"):])


def test_train_classify_xgboost(example_dataset, tmp_path):
    "The command of the issue on the example day: a tabular run folder whose models load back and score what the run logged."
    import numpy as np, torch
    from sklearn.metrics import f1_score
    from mqbench.core import evenly_spaced
    from mqbench.features import WindowSplit
    from mqbench.runs import load_run_model
    run = tmp_path / "RUN"
    s = summary_of(mq("train", "--task", "classify", "--model", "xgboost", "--data", example_dataset, "--out", run))
    for k in ("val_accuracy", "val_macro_f1", "best_val_macro_f1", "params", "train_seconds", "windows_per_s", "best_step"):
        assert s[k] is not None, k
    assert s["task"] == "classify" and 0 <= s["val_macro_f1"] <= s["best_val_macro_f1"] <= 1 and s["params"] > 0
    assert {p.name for p in run.iterdir()} == {"config.json", "manifest.json", "metrics.jsonl", "best", "final"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["classifier"] == "xgboost" and cfg["train"]["preset"] == "tiny" and cfg["model"]["max_depth"] == 4
    assert json.loads((run / "manifest.json").read_text())["status"] == "done"
    ev = WindowSplit(example_dataset, "eval")
    ids = evenly_spaced(len(ev), cfg["train"]["eval_batches"] * cfg["train"]["batch_size"])   # the run's validation windows
    x, y = ev.arrays(ids)
    for which, key in (("best", "best_val_macro_f1"), ("final", "val_macro_f1")):
        model, info = load_run_model(run, which, task="classify")
        assert info["kind"] == "tabular" and info["classifier"] == "xgboost"
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
        assert abs(f1_score(y, pred, average="macro") - s[key]) < 1e-12, which
    log = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    f1s = [r["val_macro_f1"] for r in log if r["event"] == "eval"]
    assert max(f1s) == s["best_val_macro_f1"] and int(np.argmax(f1s)) + 1 == s["best_step"]
    p = mq("train", "--task", "classify", "--model", "xgboost", "--data", example_dataset, "--out", run, ok=False)
    assert p.returncode == 1 and "a run is already there" in p.stderr


def test_train_classify_bad_input_one_line(example_dataset, tmp_path):
    "An unknown model, a train split without a class: one line on stderr, exit 1, nothing written."
    import shutil
    import pandas as pd
    p = mq("train", "--task", "classify", "--model", "forest", "--data", example_dataset, "--out", tmp_path / "a", ok=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    assert "unknown model 'forest'" in p.stderr and "xgboost" in p.stderr and "logistic_regression" in p.stderr and "mlp" in p.stderr
    ds = tmp_path / "no_down"
    shutil.copytree(example_dataset, ds)
    w = pd.read_parquet(ds / "train_windows.parquet")
    w.loc[w.label == 0, "label"] = 1
    w.to_parquet(ds / "train_windows.parquet")
    for model in ("xgboost", "mlp"):
        p = mq("train", "--task", "classify", "--model", model, "--data", ds, "--out", tmp_path / model, ok=False)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / model).exists(), model
        assert "the train split has no DOWN windows" in p.stderr and str(ds) in p.stderr and "--labels balanced" in p.stderr


def test_train_help_lists_the_models():
    out = " ".join(mq("train", "--help").stdout.split())
    assert "--classifier CLASSIFIER, --model CLASSIFIER" in out and "tabular: logistic_regression, xgboost" in out and "mlp" in out


def test_export_onnx_and_hf(example_dataset, tmp_path):
    "A classifier trained on the example day to ONNX, and the example decoder to a Hugging Face folder, by the commands a user types."
    import numpy as np, onnxruntime as ort, torch
    from transformers import AutoModelForCausalLM
    from mqbench.demo import example_inputs
    from mqbench.features import WindowSplit
    from mqbench.runs import load_run_model
    run = tmp_path / "mlp"
    mq("train", "--task", "classify", "--model", "mlp", "--preset", "micro", "--data", example_dataset, "--steps", 5, "--eval-every", 5,
       "--checkpoint-every", 5, "--no-mlflow", "--out", run)
    r = json.loads(mq("export", "onnx", "--run", run, "--out", tmp_path / "onnx").stdout)
    assert r["kind"] == "classifier" and {f["name"] if isinstance(f, dict) else f for f in r["files"]} >= {"model.onnx", "model_b1.onnx"}
    contract = json.loads((tmp_path / "onnx" / "contract.json").read_text())
    x, _ = WindowSplit(example_dataset, "test").arrays(np.arange(5))
    assert contract["input"]["shape"][1:] == list(x.shape[1:]) and contract["label_map"] == {"0": "DOWN", "1": "NEUTRAL", "2": "UP"}
    got = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx")).run(["probabilities"], {"windows": x})[0]
    model, _ = load_run_model(run)
    with torch.no_grad(): want = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    assert np.abs(got - want).max() < 1e-4
    p = mq("export", "onnx", "--run", run, "--out", tmp_path / "onnx", ok=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    ex = example_inputs()
    mq("export", "hf", "--run", ex["run"], "--out", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    dec, _ = load_run_model(ex["run"])
    ids = torch.arange(1, 17)[None] % hf.config.vocab_size
    with torch.no_grad(): assert (hf(ids).logits - dec(ids)[0]).abs().max() < 1e-4


def test_stream_a_day_to_signals(example_dataset, tmp_path):
    "The first half of the example day streamed by the command: a signal per symbol and tick, equal to the model on the offline windows."
    import numpy as np, pandas as pd, torch
    from mqbench.demo import example_inputs
    from mqbench.features import WindowSplit
    from mqbench.runs import load_run_model
    run, day, half = tmp_path / "mlp", example_inputs()["day"].read_bytes(), tmp_path / "half.itch"
    end = 0
    while end < len(day) // 2: end += 2 + int.from_bytes(day[end:end + 2], "big")   # whole length-prefixed messages
    half.write_bytes(day[:end])
    mq("train", "--task", "classify", "--model", "mlp", "--preset", "micro", "--data", example_dataset, "--steps", 5, "--eval-every", 5,
       "--checkpoint-every", 5, "--no-mlflow", "--out", run)
    s = json.loads(mq("stream", "--run", run, "--input", half, "--out", tmp_path / "signals.parquet").stdout)
    sig = pd.read_parquet(tmp_path / "signals.parquet")
    assert s["signals"] == len(sig) > 500 and s["symbols"] == ["LQDA", "MIDC", "PNNY"] and s["latency_us"]["p50"] > 0
    assert np.allclose(sig[["p_down", "p_neutral", "p_up"]].sum(axis=1), 1, atol=1e-5)
    w = pd.read_parquet(example_dataset / "train_windows.parquet")
    ids = np.flatnonzero(w["ts_ns"] < sig["ts_ns"].max())[::25]        # windows that end before the half's last signal
    assert len(ids) >= 10
    x, _ = WindowSplit(example_dataset, "train").arrays(ids)
    model, _ = load_run_model(run)
    with torch.no_grad(): want = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    got = w.iloc[ids][["symbol", "ts_ns"]].merge(sig, on=["symbol", "ts_ns"], how="left")
    assert got["p_up"].notna().all(), "a signal at every offline window's end"
    assert np.abs(got[["p_down", "p_neutral", "p_up"]].to_numpy() - want).max() < 1e-5
    p = mq("stream", "--run", example_inputs()["run"], "--input", half, ok=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_prepare_many_days_then_train(tmp_path):
    "Three synthetic days split by day through the command line: a rerun reuses every day, a classifier trains on them."
    args = ["prepare", "synth", "--days", 3, "--start", "2026-03-02", "--n-symbols", 2, "--hours", 0.05, "--sequence-length", 20,
            "--out", tmp_path / "ds"]
    first = mq(*args).stdout
    assert "3 days (train 1, eval 1, test 1)" in first and "days computed 3, reused 0" in first, first
    assert "days computed 0, reused 3" in mq(*args).stdout
    days = json.loads((tmp_path / "ds" / "stats.json").read_text())["days"]
    assert days == {"train": ["2026-03-02"], "eval": ["2026-03-03"], "test": ["2026-03-04"]}
    out = mq("train", "--task", "classify", "--data", tmp_path / "ds", "--steps", 3, "--preset", "micro", "--out", tmp_path / "run").stdout
    assert json.loads(out[out.index("{"):])["steps"] == 3
    p = mq("prepare", "synth", "--days", 3, "--split-by", "time", "--out", tmp_path / "x", ok=False)
    assert p.returncode == 1 and "3 days split by time" in p.stderr and "Traceback" not in p.stderr
    p = mq(*args[:-1], tmp_path / "y", "--train-days", "2026-03-02", ok=False)
    assert p.returncode == 1 and "--eval-days, --test-days missing" in p.stderr


def test_binance_depth_book_and_dataset(tmp_path):
    "The real USD-M ETHUSDT capture: its book rebuilt (every comparable bookTicker equal), then a dataset of it."
    from mqbench.core import real_data_dir
    capture = real_data_dir() / "binance_usdm_ethusdt_20240808_streams.gz"
    out = mq("binance", "book", capture, "--out", tmp_path / "book").stdout
    summary = json.loads(out[out.index("{"):])
    assert summary["book_tickers"]["pairs"] > 500 and summary["book_tickers"]["mismatches"] == 0 and summary["gaps"] == 0
    bbo = pq.read_table(tmp_path / "book" / "bbo.parquet").to_pandas()
    assert {"update_id", "bid_px", "bid_sz", "ask_px", "ask_sz"} <= set(bbo.columns) and (bbo["ask_px"] > bbo["bid_px"]).all()
    out = mq("prepare", "binance-depth", "--input", capture, "--out", tmp_path / "ds", "--sequence-length", 20).stdout
    assert "1 symbol(s)" in out and json.loads((tmp_path / "ds" / "stats.json").read_text())["counts"]["train_windows"] > 1000
    p = mq("binance", "book", tmp_path / "none.gz", "--out", tmp_path / "x", ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_finetune_tiny_llama4(example_dataset, tmp_path):
    "`mqbench finetune` on a tiny random Llama 4 (saved locally): LoRA on the routed experts too, adapter and merged checkpoint."
    from mqbench.finetune import tiny_base
    base = tiny_base("llama4", tmp_path / "base")
    out = mq("finetune", "--base", base, "--data", example_dataset, "--input", "numbers", "--steps", 4, "--eval-every", 4,
             "--lora-r", 4, "--lora-alpha", 8, "--out", tmp_path / "run").stdout
    summary = json.loads(out[out.index("{"):])
    assert summary["steps"] == 4 and 0 < summary["params"] < summary["total_params"], summary
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists() and (tmp_path / "run" / "merged" / "config.json").exists()
    assert "experts" in json.dumps(json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())["target_parameters"])
    p = mq("finetune", "--base", tmp_path / "nowhere", "--data", example_dataset, "--out", tmp_path / "x", ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "nowhere" in p.stderr
