"`mqbench prepare` end to end for every source, as a user runs it, on the real files and the synthetic day."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mqbench import sources, synth
from mqbench.book import replay
from mqbench.core import real_data_dir

MQBENCH = Path(sys.executable).parent / "mqbench"
REAL = real_data_dir()
SPLITS = ("train", "eval", "test")


def mq(*args, ok=True):
    p = subprocess.run([str(MQBENCH), *map(str, args)], capture_output=True, text=True)
    if ok: assert p.returncode == 0, p.stderr
    return p


def check_dataset(out: Path, prefix: str, features: int | None = None):
    "The files every dataset has, consistent with each other."
    m = json.loads((out / "manifest.json").read_text())
    st = json.loads((out / "stats.json").read_text())
    names = json.loads((out / "features.json").read_text())["names"]
    assert m["stage"] == "features" and st["counts"]["features"] == len(names)
    if features: assert len(names) == features
    for k in SPLITS:
        rows = np.load(out / f"{k}_rows.npy", mmap_mode="r")
        win = pd.read_parquet(out / f"{k}_windows.parquet")
        assert len(win) == m["counts"][f"{k}_windows"] > 0 and rows.shape[1] == len(names)
        assert np.isfinite(rows).all() and win.row_end.max() < len(rows)
        assert win.label.isin([0, 1, 2]).all()
        assert sum(1 for _ in open(out / f"{prefix}_{k}.jsonl")) == st["jsonl_records"][k]
    for a, b in zip(SPLITS, SPLITS[1:]):
        assert pd.read_parquet(out / f"{a}_windows.parquet").ts_ns.max() < pd.read_parquet(out / f"{b}_windows.parquet").ts_ns.min()
    return st


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("day") / "day.itch"
    synth.generate(path, symbols=3, hours=0.05, seed=2)
    return path


def test_itch_and_synth(day, tmp_path):
    out = tmp_path / "itch"
    p = mq("prepare", "itch", "--input", day, "--out", out, "--sequence-length", 50, "--horizon-ms", 500,
           "--threshold-bps", 5.0, "--symbols", "LQDA", "MIDC", "--limit", 400_000)
    assert "NEUTRAL" in p.stdout and str(out) in p.stdout
    st = check_dataset(out, "itch", 202)
    assert st["grid"]["symbols"] == ["LQDA", "MIDC"] and st["source"]["limit"] == 400_000
    home = tmp_path / "home"
    r = subprocess.run([str(MQBENCH), "prepare", "synth", "--out", str(tmp_path / "synth"), "--n-symbols", "2",
                        "--hours", "0.05", "--seed", "4"], capture_output=True, text=True,
                       env={**os.environ, "MQBENCH_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    check_dataset(tmp_path / "synth", "itch", 202)
    assert list((home / "data" / "synth").glob("*.itch")), "the day is kept under data/synth for the next run"


def test_binance_real_sample(tmp_path):
    out = tmp_path / "eth"
    mq("prepare", "binance", "--input", REAL / "ETHUSDT-trades-2023-02-02-sample.csv", "--out", out,
       "--every-ms", 1000, "--sequence-length", 10, "--horizon-ms", 5000, "--warmup", 10)
    st = check_dataset(out, "binance")
    assert st["grid"]["kind"] == "trades" and st["counts"]["train_trades"] > 500


@pytest.mark.parametrize("name,args", [("GOOG_daily.csv", []), ("EURUSD_hourly.csv", []),
                                       ("BTCUSD_monthly.csv", ["--sequence-length", 6, "--warmup", 12])])
def test_ohlc_real_files(tmp_path, name, args):
    out = tmp_path / "bars"
    mq("prepare", "ohlc", "--input", REAL / name, "--out", out, *args)
    st = check_dataset(out, "ohlc")
    assert st["grid"]["kind"] == "candles" and st["label"]["horizon_ticks"] == 1


def test_sql_sqlite_messages_and_trades(day, tmp_path):
    url = f"sqlite:///{tmp_path / 'day.db'}"
    sources.write_sql_messages(day, url, "itch_messages")
    mq("prepare", "sql", "--url", url, "--table", "itch_messages", "--out", tmp_path / "sql")
    check_dataset(tmp_path / "sql", "itch", 202)
    trades = sources.read_binance_trades(REAL / "ETHUSDT-trades-2023-02-02-sample.csv")
    import sqlalchemy as sa
    eng = sa.create_engine(url)
    trades.to_sql("trades", eng, index=False); eng.dispose()
    mq("prepare", "sql", "--url", url, "--table", "trades", "--kind", "trades", "--out", tmp_path / "sqlt",
       "--every-ms", 1000, "--sequence-length", 10, "--horizon-ms", 5000, "--warmup", 10)
    check_dataset(tmp_path / "sqlt", "sql")


def test_lobster(day, tmp_path):
    rep = replay(day, symbols=["MIDC"], levels=10, depth=True, events=True)
    paths = sources.write_lobster(rep, tmp_path / "lob", symbol="MIDC", date="2026-11-20", levels=10)
    mq("prepare", "lobster", "--input", paths["message"], "--out", tmp_path / "ds")
    st = check_dataset(tmp_path / "ds", "lobster", 62)   # one symbol: no cross-symbol group
    assert st["counts"]["train_events"] > 1000


def test_lobster_real_five_levels_with_the_defaults(tmp_path):
    "A real LOBSTER file of five levels prepares with the defaults: the book depths are cut to the levels it has."
    mq("prepare", "lobster", "--input", REAL / "AMZN_2012-06-21_34200000_34340000_message_5.csv", "--out", tmp_path / "amzn")
    check_dataset(tmp_path / "amzn", "lobster", 59)
    used = json.loads((tmp_path / "amzn" / "manifest.json").read_text())["params"]["dataset"]["features"]
    assert used["depths"] == [1, 3, 5] and used["pressure_depths"] == [5]


AMZN_DAY = REAL / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
AMZN_OPEN = REAL / "AMZN_2012-06-21_34200000_34340000_message_5.csv"


@pytest.mark.parametrize("source", ["itch", "synth", "binance", "ohlc", "sql", "lobster"])
def test_label_options_on_every_prepare(source):
    "Every prepare subcommand takes the label policy and the smoothing, with the help of their fields."
    out = mq("prepare", source, "--help").stdout
    for flag, words in [("--labels", "fixed, spread or balanced"), ("--smooth", "the mean of the K mids"),
                        ("--reference", "DeepLOB, TLOB"), ("--threshold-bps", "NEUTRAL when")]:
        assert flag in out and words in " ".join(out.split()), (source, flag)


def test_lobster_real_day_balanced_and_smoothed(tmp_path):
    "The whole AMZN day, balanced labels smoothed over 10 snapshots at a 50-snapshot horizon: thirds on train, the band recorded."
    out = tmp_path / "amzn"
    p = mq("prepare", "lobster", "--input", AMZN_DAY, "--out", out, "--labels", "balanced", "--smooth", 10, "--horizon-ticks", 50)
    assert "NEUTRAL" in p.stdout
    st = check_dataset(out, "lobster", 55)
    lab = st["label"]
    assert (lab["policy"], lab["smooth"], lab["reference"], lab["horizon_ticks"]) == ("balanced", 10, "mean", 50)
    assert 0 < lab["alpha_bps"] < 5 and lab["balance"]["fractions"] == [v["fraction"] for v in st["class_balance"]["train"].values()]
    assert all(abs(v["fraction"] - 1 / 3) < 0.02 for v in st["class_balance"]["train"].values())
    assert json.loads((out / "manifest.json").read_text())["params"]["label"] == lab
    names = json.loads((out / "features.json").read_text())["names"]
    assert names[-2:] == ["time_of_day", "since_event_ms"]
    for k in SPLITS:
        win = pd.read_parquet(out / f"{k}_windows.parquet")
        assert (win.threshold_bps == lab["alpha_bps"]).all()
        assert (win.label == np.where(win.move_bps > lab["alpha_bps"], 2, np.where(win.move_bps < -lab["alpha_bps"], 0, 1))).all()
    rows = np.load(out / "test_rows.npy", mmap_mode="r")
    tod = rows[:, names.index("time_of_day")]
    assert np.all(np.diff(tod) >= 0), "the time of day only grows through a day's one symbol"


def test_original_labels_byte_for_byte(tmp_path):
    "--threshold-bps 5 --horizon-ms 500 gives the labels, moves and thresholds of the original formula."
    from mqbench.features import grid_from_book
    out = tmp_path / "amzn"
    mq("prepare", "lobster", "--input", AMZN_OPEN, "--out", out, "--threshold-bps", 5, "--horizon-ms", 500)
    lab = json.loads((out / "stats.json").read_text())["label"]
    assert (lab["policy"], lab["alpha_bps"], lab["smooth"]) == ("fixed", 5.0, 0)
    res = sources.read_lobster(AMZN_OPEN)
    mid = grid_from_book(res.depth, res.bbo, res.trades, 100).mid
    future = np.full_like(mid, np.nan)                     # the original formula, as it was
    future[:, :-5] = mid[:, 5:]
    with np.errstate(invalid="ignore", divide="ignore"):
        move = (future / mid - 1) * 1e4
    label = np.where(move > 5.0, 2, np.where(move < -5.0, 0, 1)).astype(np.int8)
    ts = grid_from_book(res.depth, res.bbo, res.trades, 100).ts_ns
    for k in SPLITS:
        win = pd.read_parquet(out / f"{k}_windows.parquet")
        t = np.searchsorted(ts, win.ts_ns.to_numpy())
        assert win.label.to_numpy().tobytes() == label[0, t].tobytes() and win.move_bps.to_numpy().tobytes() == move[0, t].tobytes()
        assert (win.threshold_bps == 5.0).all()


def test_bad_label_options_are_one_line(day, tmp_path):
    out = tmp_path / "out"
    for args, words in [(["--labels", "thirds"], "labels must be one of"), (["--smooth", -1], "smooth must be 0"),
                        (["--smooth", 6, "--horizon-ticks", 5], "smooth (6 ticks) may not exceed the horizon (5 ticks)"),
                        (["--smooth", 6], "smooth (6 ticks) may not exceed the horizon (5 ticks)"),
                        (["--reference", "median"], "reference must be one of"),
                        (["--labels", "balanced", "--threshold-bps", 5], "chooses its band on the train split"),
                        (["--labels", "spread"], "needs spread_scale")]:
        p = mq("prepare", "lobster", "--input", AMZN_OPEN, "--out", out, *args, ok=False)
        assert p.returncode == 1 and words in p.stderr and len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
        assert not out.exists()


def test_bad_input_is_one_line_and_leaves_nothing(day, tmp_path):
    out = tmp_path / "out"
    cases = []
    bad = tmp_path / "ETHUSDT-trades-2023-02-02.csv"
    lines = (REAL / "ETHUSDT-trades-2023-02-02-sample.csv").read_text().splitlines()
    bad.write_text("\n".join(lines[:40] + [lines[40].replace("1666.", "nan")] + lines[41:]) + "\n")
    cases.append((["binance", "--input", bad], "row 41"))
    unsorted = tmp_path / "ETHUSDT-trades-2023-02-03.csv"
    unsorted.write_text("\n".join(lines[:10] + [lines[30]] + lines[11:]) + "\n")
    cases.append((["binance", "--input", unsorted], "row"))
    nocol = tmp_path / "bars.csv"
    nocol.write_text("Date,Open,High,Close\n2020-01-01,1,2,1.5\n")
    cases.append((["ohlc", "--input", nocol], "['low']"))
    cases.append((["itch", "--input", day, "--symbols", "NOPE"], "NOPE"))
    cases.append((["itch", "--input", REAL / "itch50_first1000.itch"], "no order-book activity"))
    cases.append((["sql", "--url", "mysql+pymysql://u:secret@127.0.0.1:1/db", "--table", "t"], "127.0.0.1"))
    cases.append((["binance", "--input", tmp_path / "none-*.csv"], "matches no file"))
    for args, words in cases:
        p = mq("prepare", *args, "--out", out, ok=False)
        assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
        assert "secret" not in p.stderr
        assert not out.exists() and not list(tmp_path.glob(".out.*")), "nothing half-written is left"
    mq("prepare", "itch", "--input", day, "--out", out)
    p = mq("prepare", "itch", "--input", day, "--out", out, ok=False)
    assert "already exists" in p.stderr
    mq("prepare", "itch", "--input", day, "--out", out, "--overwrite", "--sequence-length", 20)
    assert json.loads((out / "manifest.json").read_text())["params"]["dataset"]["sequence_length"] == 20
