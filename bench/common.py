"""What every benchmark script records beside its figures: the machine, the time, and where the results go.

A script run as `python bench/NAME.py` finds this module beside it (the script's folder is on sys.path)."""
import json, os, platform, time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def device_name(dev) -> str:
    "The GPU's name on CUDA, else the CPU's."
    import torch
    dev = torch.device(dev)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())


def machine(**versions) -> dict:
    "The CPU, cores, Python and the given package versions, with the load average: timings on a shared machine need it."
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            **versions, "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def write_results(res: dict, stem: str, out=None, *, gpu: str | None = None) -> Path:
    "Stamp `res` with the time, print it, write it to `out` or bench/results/<stem>[-<GPU name>].json; return the path."
    res["when_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(json.dumps(res, indent=2))
    out = Path(out) if out else RESULTS / (f"{stem}-{gpu.replace(' ', '-')}.json" if gpu else f"{stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    return out
