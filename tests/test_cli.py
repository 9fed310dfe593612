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
    p = mq("train", "--data", tmp_path / "missing", "--steps", 1, ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_demo_makes_every_report(tmp_path):
    "The main job on a small day: every report ran, its page holds its figures with plotly.js inline, the index lists them."
    import os, re
    env = {**os.environ, "MQBENCH_HOME": str(tmp_path)}          # data/ (the example inputs too) and reports/ of its own
    args = ["demo", "--n-symbols", 3, "--hours", 0.1, "--steps", 30, "--preset", "micro", "--ablation-budgets", "5,15",
            "--out", tmp_path / "data" / "demo", "--reports-root", tmp_path / "reports"]
    p = subprocess.run([str(MQBENCH), *map(str, args)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    index = (tmp_path / "reports" / "index.html").read_text()
    for name in ("train", "backtest", "stylized_facts", "ablation", "classification"):
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
