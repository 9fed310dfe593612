"""Many days on Dask: a 2-worker LocalCluster gives the one-process dataset byte for byte, a worker killed mid-day
changes nothing, and a model trains on the many-day dataset read from its memory-mapped shards."""
import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from mqbench.days import prepare_days, synth_days
from mqbench.features import DatasetConfig, load_dataset

DATES = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"]
TINY = dict(symbols=3, hours=0.035, seed=2, preopen_minutes=1)
CFG = DatasetConfig(sequence_length=50)


def dataset_files(out: Path) -> dict:
    "Every file of a dataset by its path inside it: bytes, and the manifest without its creation time."
    files = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file(): continue
        if p.name == "manifest.json":
            m = json.loads(p.read_text()); m.pop("created_utc")
            files[str(p.relative_to(out))] = json.dumps(m, sort_keys=True).encode()
        else:
            files[str(p.relative_to(out))] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    "Four tiny dated synthetic days, and their dataset made in this process (workers=1)."
    root = tmp_path_factory.mktemp("days")
    files = synth_days(DATES, dir=root / "itch", **TINY)
    st = prepare_days(files, root / "one", CFG, workers=1)
    assert st["days"] == {"train": DATES[:2], "eval": [DATES[2]], "test": [DATES[3]]}
    return {"root": root, "files": files, "one": root / "one"}


def test_two_workers_equal_one_process(days):
    out = days["root"] / "two"
    st = prepare_days([str(f) for f in days["files"]], out, CFG, workers=2)
    assert sorted(st["computed"]) == DATES
    one, two = dataset_files(days["one"]), dataset_files(out)
    assert sorted(one) == sorted(two) and len(one) > 20
    assert [k for k in one if one[k] != two[k]] == []


def _executing_day(dask_worker):
    "(this worker's process id, the day tasks it is running)."
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing if str(ts.key).startswith("prepare-day-")]


def test_killed_worker_changes_nothing(days):
    """A worker process of a real LocalCluster is killed (SIGKILL) while it runs a day; the scheduler runs the day
    again and the dataset is the uninterrupted one."""
    from distributed import Client, LocalCluster
    out, result, killed = days["root"] / "killed", {}, []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as watch:
        def run():
            try: result["stats"] = prepare_days(days["files"], out, CFG, scheduler=cluster.scheduler_address)
            except BaseException as e: result["error"] = e
        job = threading.Thread(target=run); job.start()
        deadline = time.monotonic() + 60
        while not killed and job.is_alive() and time.monotonic() < deadline:
            busy = [(pid, keys) for pid, keys in watch.run(_executing_day).values() if keys]
            if busy:
                pid, keys = busy[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(keys[0])
            else:
                time.sleep(0.02)
        job.join(120)
    assert killed, "no day was seen running: nothing was killed"
    assert "error" not in result, result.get("error")
    assert sorted(result["stats"]["computed"]) == DATES
    one, again = dataset_files(days["one"]), dataset_files(out)
    assert sorted(one) == sorted(again) and [k for k in one if one[k] != again[k]] == []
    assert not list((out / "days").glob(".*"))                    # the killed task's temporary shard is gone


def test_model_trains_on_many_days(days, tmp_path):
    from mqbench.optim import OptimConfig
    from mqbench.train import TrainConfig, train
    ds = load_dataset(days["one"])
    assert len(ds["train"].rows.parts) == 2 and isinstance(ds["train"].rows.parts[0], np.memmap)
    x, y = ds["train"].arrays(np.arange(0, len(ds["train"]), 97))
    assert x.shape[1:] == (50, len(ds["train"].names)) and np.isfinite(x).all() and np.abs(x).max() <= 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = train(TrainConfig(data=str(days["one"]), task="classify", preset="micro", steps=4, batch_size=16, eval_every=4,
                              eval_batches=2, checkpoint_every=4, mlflow=False, out=str(tmp_path / "run"),
                              optim=OptimConfig(use_muon=False, warmup_steps=1)))
    metrics = [json.loads(line) for line in (Path(s["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in m and np.isfinite(m["val_loss"]) for m in metrics)


def test_tokens_of_many_days(days, tmp_path):
    "Event tokens of a many-day dataset: fitted on the train days, each day's windows on their own, read memory-mapped."
    import pandas as pd
    from mqbench.tokenize import PAD, EventTokenizer, load_tokens, write_token_dataset
    st = write_token_dataset(days["one"], tmp_path / "tok", block_size=64)
    tk = EventTokenizer.load(tmp_path / "tok")
    for k, ds in (("train", DATES[:2]), ("test", DATES[3:])):
        ix = pd.read_parquet(tmp_path / "tok" / f"{k}_windows.parquet")
        events = sum(len(pd.read_parquet(days["one"] / "days" / d / "events.parquet")) for d in ds)
        w = load_tokens(tmp_path / "tok", k)
        assert isinstance(w, np.memmap) and sorted(set(ix["day"])) == ds and st["splits"][k]["rows"] == events
        assert ((w >= tk.offset) & (w != PAD)).sum() == events               # every event of the split's days, once
