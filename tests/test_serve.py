"`mqbench serve` as a real uvicorn process on loopback: every endpoint, bad requests it survives, and a bounded load test."
import http.client
import json
import time
import warnings

import numpy as np
import pytest

from mqbench.demo import example_inputs
from mqbench.features import load_dataset
from mqbench.optim import OptimConfig
from mqbench.runs import load_run_model
from mqbench.serve import load_test, server_process
from mqbench.train import TrainConfig, train

MAX_BODY = 3_000_000


@pytest.fixture(scope="module")
def inputs():
    return example_inputs()


@pytest.fixture(scope="module")
def clf_run(inputs, tmp_path_factory):
    "A micro MLP trained for five steps on the example dataset (windows of 100 x 202)."
    out = tmp_path_factory.mktemp("serve") / "mlp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(TrainConfig(data=str(inputs["dataset"]), task="classify", preset="micro", steps=5, batch_size=16, eval_every=5,
                                 eval_batches=2, checkpoint_every=5, mlflow=False, out=str(out),
                                 optim=OptimConfig(use_muon=False, warmup_steps=1)))["run_dir"]


@pytest.fixture(scope="module")
def clf_server(clf_run, tmp_path_factory):
    "The classifier's server, a child process on a free loopback port; server_process ends it whatever happens."
    log = tmp_path_factory.mktemp("log") / "server.log"
    with server_process(clf_run, max_batch=8, max_body_bytes=MAX_BODY, log_path=log, deadline_s=90) as url:
        yield url


@pytest.fixture(scope="module")
def windows(inputs):
    x, _ = load_dataset(inputs["dataset"])["test"].arrays(np.arange(4))   # (4, 100, 202)
    return x


def call(url, method, path, body=None, headers=None, chunked=False):
    "(status, JSON) of one request on a connection of its own."
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})}, encode_chunked=chunked)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def test_endpoints(clf_server, clf_run, windows):
    import torch
    assert call(clf_server, "GET", "/health") == (200, {"status": "ok"})
    assert call(clf_server, "GET", "/ready") == (200, {"ready": True})
    status, meta = call(clf_server, "GET", "/metadata")
    assert status == 200 and meta["model"]["name"] == "mlp" and meta["input"]["window"]["sequence_length"] == 100
    assert meta["label_map"] == {"0": "DOWN", "1": "NEUTRAL", "2": "UP"} and meta["limits"]["max_body_bytes"] == MAX_BODY
    status, ans = call(clf_server, "POST", "/predict", json.dumps({"windows": windows.tolist()}))
    model, _ = load_run_model(clf_run)
    with torch.no_grad(): want = torch.softmax(model(torch.from_numpy(windows)), -1).numpy()
    assert status == 200 and np.allclose(ans["probabilities"], want, atol=1e-6) and ans["labels"] == want.argmax(1).tolist()
    status, ans = call(clf_server, "POST", "/generate", "{}")
    assert status == 400 and "answers /predict" in ans["detail"]


def test_feed_the_day(clf_server, clf_run, inputs):
    "The day's first 120 KB through /feed in 16 KiB chunks: the signals a Predictor of the same run gives the same bytes."
    from pathlib import Path
    from mqbench.stream import Predictor
    day = Path(inputs["day"]).read_bytes()[:120_000]
    want = [(s.symbol, s.ts_ns, list(s.probabilities)) for s in Predictor.from_run(clf_run).feed(day)]
    assert call(clf_server, "POST", "/reset") == (200, {"reset": True})
    got, octets = [], {"content-type": "application/octet-stream"}
    for i in range(0, len(day), 1 << 14):
        status, ans = call(clf_server, "POST", "/feed", day[i:i + (1 << 14)], octets)
        assert status == 200, ans
        got += [(g["symbol"], g["ts_ns"], g["probabilities"]) for g in ans["signals"]]
    assert ans["fed_bytes"] == len(day) and len(got) > 100 and got == want


def test_bad_requests_then_still_serving(clf_server, windows):
    w = windows[:1].tolist()
    big = json.dumps({"windows": windows.tolist() * 4}).encode()                # 16 windows: over the body limit and the batch
    assert len(big) > MAX_BODY
    cases = [
        (json.dumps({"windows": [w[0][:50]]}), 422, "window 0: 50 snapshots of 202 values; expected (100, 202)", {}, False),
        (json.dumps({"windows": w}).replace(repr(w[0][0][0]), "NaN", 1), 422, "NaN and infinity are refused", {}, False),
        (json.dumps({"windows": windows.tolist() * 2 + w}), 413, "9 windows in one request; this server takes at most 8", {}, False),
        (big, 413, f"a body of {len(big):,} bytes (Content-Length)", {}, False),
        (iter([big[i:i + (1 << 16)] for i in range(0, len(big), 1 << 16)]), 413, "a body of more than 3,000,000 bytes", {}, True),
        (b'{"windows": [[[1.0,', 400, "malformed JSON: EOF while parsing", {}, False),
        (json.dumps({"messages": [{}], "symbol": "ZZZZ"}), 422, "unknown symbol 'ZZZZ'", {}, False),
    ]
    for body, status, says, headers, chunked in cases:
        got, ans = call(clf_server, "POST", "/predict", body, headers, chunked)
        assert got == status and says in ans["detail"] and ans.get("expected"), (says, got, ans)
    status, ans = call(clf_server, "POST", "/predict", json.dumps({"windows": w}))
    assert status == 200 and len(ans["probabilities"]) == 1, "the server goes on serving"


@pytest.mark.parametrize("clients,requests", [(1, 60), (8, 15)])
def test_bounded_load(clf_server, windows, clients, requests, record_property):
    "N concurrent clients, a fixed number of requests each, zero errors; p50 and p99 recorded; stops by itself."
    body = json.dumps({"windows": windows[:1].tolist()}).encode()
    t0 = time.monotonic()
    res = load_test(clf_server, "/predict", body, clients=clients, requests=requests, deadline_s=25)
    print(json.dumps(res))
    for k in ("requests_per_s", "p50_ms", "p99_ms"): record_property(f"{k}_{clients}", res[k])
    assert res["errors"] == 0 and res["requests"] == clients * requests and res["p50_ms"] <= res["p99_ms"], res
    assert time.monotonic() - t0 < 30


def test_generate(inputs):
    "A decoder run's server: /generate from a symbol, seeded; /predict refused."
    with server_process(inputs["run"], max_new_tokens=32, deadline_s=90) as url:
        body = json.dumps({"symbol": "MIDC", "max_new_tokens": 12, "seed": 5})
        s1, a1 = call(url, "POST", "/generate", body)
        s2, a2 = call(url, "POST", "/generate", body)
        assert s1 == s2 == 200 and a1 == a2 and len(a1["tokens"]) == len(a1["events"]) == 12 and a1["symbol"] == "MIDC"
        status, ans = call(url, "POST", "/generate", json.dumps({"max_new_tokens": 33}))
        assert status == 422 and "from 1 to 32" in ans["expected"]
        status, ans = call(url, "POST", "/predict", json.dumps({"windows": [[[0.0]]]}))
        assert status == 400 and "answers /generate" in ans["detail"]
