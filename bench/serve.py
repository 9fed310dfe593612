"""Speed of the model server (`mqbench.serve`): requests/s and latency percentiles of `/predict` at 1 and 8 concurrent
clients against a real uvicorn process on loopback, each client on its own keep-alive connection, a fixed number of
requests each (`serve.load_test`); every figure the median of `--rounds` rounds. A request carries `--batch` windows of
the example dataset (100 snapshots x 202 features: about 240 kB of JSON a window). Beside it, in this process, where one
batch-1 request's time goes: parsing the body (pydantic's JSON parser), the float32 array, the model. Then `/generate`:
requests/s and tokens/s of the example decoder at one client.

The classifier is a micro MLP trained for five steps on the example dataset (`data/examples`, built the first time),
unless `--run` names one.

    python bench/serve.py --rounds 3
"""
import argparse, json, statistics, tempfile, time, warnings
from pathlib import Path

import numpy as np
import torch

from mqbench.demo import example_inputs
from mqbench.features import load_dataset
from common import machine, write_results
from mqbench.optim import OptimConfig
from mqbench.serve import PredictRequest, ServedModel, load_test, parse_body, server_process, windows_array
from mqbench.train import TrainConfig, train


def micro_mlp(dataset, out) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = TrainConfig(data=str(dataset), task="classify", preset="micro", steps=5, batch_size=16, eval_every=5, eval_batches=2,
                          checkpoint_every=5, mlflow=False, out=str(out), optim=OptimConfig(use_muon=False, warmup_steps=1))
        return train(cfg)["run_dir"]


def median_ms(f, n: int) -> float:
    f()
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    return round(statistics.median(t) * 1e3, 3)


def breakdown(run, body: bytes, n: int = 50) -> dict:
    "Median ms of each step of one /predict request, in this process."
    served = ServedModel(run)
    req = parse_body(PredictRequest, body)
    x = windows_array(req.windows, served.shape)
    return {"parse_ms": median_ms(lambda: parse_body(PredictRequest, body), n),
            "array_ms": median_ms(lambda: windows_array(req.windows, served.shape, served.names), n),
            "model_ms": median_ms(lambda: served.predict(x), n)}


def rounds_of(url, path, body, clients, requests, rounds) -> dict:
    runs = [load_test(url, path, body, clients=clients, requests=requests, deadline_s=120) for _ in range(rounds)]
    if any(r["errors"] for r in runs): raise SystemExit(f"errors under load: {runs}")
    return {"clients": clients, "requests": requests * clients, "rounds": rounds,
            **{k: round(statistics.median(r[k] for r in runs), 3) for k in ("requests_per_s", "p50_ms", "p99_ms")}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a classifier run (default: a micro MLP trained here on the example dataset)")
    ap.add_argument("--batch", type=int, default=1, help="windows a /predict request")
    ap.add_argument("--requests", type=int, default=200, help="requests a round, all clients together")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens a /generate request")
    ap.add_argument("--out", default=None, help="where to record the results (default bench/results/serve.json)")
    a = ap.parse_args()
    ex = example_inputs()
    tmp = Path(tempfile.mkdtemp())
    run = a.run or micro_mlp(ex["dataset"], tmp / "mlp")
    x, _ = load_dataset(ex["dataset"])["test"].arrays(np.arange(a.batch))
    body = json.dumps({"windows": x.tolist()}).encode()
    res = {"machine": machine(torch=torch.__version__), "threads": torch.get_num_threads(), "batch": a.batch,
           "body_bytes": len(body), "in_process": breakdown(run, body), "predict": []}
    print(json.dumps(res["in_process"]))
    with server_process(run) as url:
        load_test(url, "/predict", body, clients=2, requests=10)                                  # warm connections and paths
        for clients in (1, 8):
            r = rounds_of(url, "/predict", body, clients, max(1, a.requests // clients), a.rounds)
            res["predict"].append(r); print(json.dumps(r))
    gen = json.dumps({"max_new_tokens": a.new_tokens, "seed": 0}).encode()
    with server_process(ex["run"]) as url:
        load_test(url, "/generate", gen, clients=1, requests=2)
        g = rounds_of(url, "/generate", gen, 1, 10, a.rounds)
        res["generate"] = {**g, "new_tokens": a.new_tokens, "tokens_per_s": round(g["requests_per_s"] * a.new_tokens, 1)}
        print(json.dumps(res["generate"]))
    print(f"wrote {write_results(res, 'serve', a.out)}")


if __name__ == "__main__":
    main()
