"Streaming in bounded memory: peak RSS of a full pass must not grow with the file's size."
import subprocess, sys, textwrap

import numpy as np

from mqbench import itch


def _peak_rss_mb(path, chunk_bytes=1 << 20) -> float:
    code = textwrap.dedent(f"""
        import resource
        from mqbench import itch
        for tables in itch.iter_tables({str(path)!r}, chunk_bytes={chunk_bytes}): pass
        s = itch.stats({str(path)!r}, chunk_bytes={chunk_bytes})
        print(s["total"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1])


def test_peak_rss_does_not_grow(tmp_path):
    n = 20_000
    tab = np.zeros(n, itch.DTYPES["A"])
    tab["seq"] = np.arange(n); tab["stock"] = "MQB"; tab["side"] = "B"; tab["shares"] = 100
    tab["order_ref"] = np.arange(n); tab["price"] = 1_000_000; tab["timestamp"] = np.arange(n)
    block = itch.encode({"A": tab}).tobytes()        # 760 kB
    small, big = tmp_path / "small.itch", tmp_path / "big.itch"
    small.write_bytes(block * 4)
    with open(big, "wb") as f:
        for _ in range(160): f.write(block)          # 120 MB
    n_small, rss_small = _peak_rss_mb(small)
    n_big, rss_big = _peak_rss_mb(big)
    assert (n_small, n_big) == (4 * n, 160 * n)
    assert rss_big - rss_small < 40, (rss_small, rss_big)
