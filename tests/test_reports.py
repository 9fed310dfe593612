"`mqbench report` end to end, as a user runs it: tiny templates, their folders and pages, and the page drawn by a browser offline."
import json, re, struct, subprocess, sys, tempfile, zlib
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

MQBENCH = Path(sys.executable).parent / "mqbench"   # the console script installed beside this python
CHROMIUM = "/usr/bin/chromium"
PLOTLY_BLUE = (0x63, 0x6E, 0xFA)                     # the first colour of plotly's default colorway


def mq(*args, ok=True):
    p = subprocess.run([str(MQBENCH), *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok: assert p.returncode == 0, p.stderr
    return p


def template(path, params, *cells):
    nb = new_notebook(cells=[new_markdown_cell(f"# {path.stem}"), new_code_cell(params, metadata={"tags": ["parameters"]}),
                             *map(new_code_cell, cells)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    walk = template(d / "walk.ipynb", 'points: int = 100  # steps\nlabel: str = "walk"  # legend\nnoisy: bool = False  # unused',
                    "import numpy as np, pandas as pd, plotly.graph_objects as go\n"
                    "from mqbench.reports import headline, show, show_table\n"
                    "y = np.cumsum(np.random.default_rng(0).normal(size=points))  # code-only-marker",
                    "show(go.Figure(go.Scatter(y=y, name=label), layout=dict(title=label)))",
                    "show(go.Figure(go.Histogram(x=np.diff(y))))",
                    "show_table(pd.DataFrame({'y': y}).describe().T, caption='summary')\n"
                    "print('progress-marker')\nheadline(points=points, last=float(y[-1]))")
    boom = template(d / "boom.ipynb", "n: int = 1  # anything", "x = n + 1", "raise ValueError(f'bad n {n}')", "print('never')")
    root = d / "reports"
    ok = mq("report", walk, "-p", "points", 60, "-p", "label", "up", "-p", "noisy", "true", "--run-id", "r1", "--reports-root", root)
    bad = mq("report", boom, "-p", "n", 5, "--run-id", "b1", "--reports-root", root, ok=False)
    return SimpleNamespace(root=root, walk=walk, boom=boom, ok=ok, bad=bad)


def test_report_ok(runs):
    run_dir = runs.root / "walk" / "r1"
    assert f"report   {run_dir / 'report.html'}" in runs.ok.stdout and f"index    {runs.root / 'index.html'}" in runs.ok.stdout
    assert "Executing Cell" not in runs.ok.stderr and "Ending Cell" not in runs.ok.stderr and "progress-marker" not in runs.ok.stderr
    said = [line for line in runs.ok.stderr.splitlines() if line.startswith("report walk r1: ")]
    assert said[0] == "report walk r1: running" and said[1].startswith("report walk r1: ok in"), runs.ok.stderr
    assert said[1].endswith(f"; points 60, last {json.loads((run_dir / 'headline.json').read_text())['last']:,.4g}"), said
    assert sorted(p.name for p in run_dir.iterdir()) == ["headline.json", "report.html", "run.json", "walk.ipynb"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "ok" and run["overrides"] == {"points": 60, "label": "up", "noisy": True}
    assert run["headline"]["points"] == 60
    nb = nbformat.read(run_dir / "walk.ipynb", 4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "points = 60" in injected.source and 'label = "up"' in injected.source and "noisy = True" in injected.source
    page = (run_dir / "report.html").read_text()
    assert "code-only-marker" not in page and "summary" in page
    assert page.count("* plotly.js v") == 1 and page.count("Plotly.newPlot(") == 2
    assert not re.search(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)


def test_verbose_report_logs_every_cell(runs, tmp_path):
    "`verbose=True`: papermill's log of each cell and what it prints, as the cells run, and the headline after."
    code = ("import sys; from mqbench.reports import run_report; "
            "run_report(sys.argv[1], {'points': 5}, run_id='v1', reports_root=sys.argv[2], verbose=True)")
    p = subprocess.run([sys.executable, "-c", code, str(runs.walk), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Executing Cell 1-" in p.stderr and "Ending Cell 6-" in p.stderr and "progress-marker" in p.stderr, p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("report walk v1: ok in") and "running" not in p.stderr


def test_failing_report_is_one_line_and_kept(runs):
    bdir = runs.root / "boom" / "b1"
    assert runs.bad.returncode == 1 and "Traceback" not in runs.bad.stderr
    last = runs.bad.stderr.strip().splitlines()[-1]
    assert last == f"mqbench: error: report boom failed in cell 4: ValueError: bad n 5; see {bdir / 'boom.ipynb'}", last
    run = json.loads((bdir / "run.json").read_text())
    assert run["status"] == "failed" and "bad n 5" in run["error"]
    assert "bad n 5" in (bdir / "report.html").read_text()
    index = (runs.root / "index.html").read_text()
    assert index.find('href="boom/b1/report.html"') < index.find('href="walk/r1/report.html"') != -1, "newest first"
    assert "mq-status failed" in index and "mq-status ok" in index


def test_bad_parameters_run_nothing(runs, tmp_path):
    p = mq("report", runs.walk, "-p", "points", "many", "--reports-root", tmp_path, ok=False)
    assert p.returncode == 1 and "parameter points='many' is not a valid int" in p.stderr
    p = mq("report", runs.walk, "-p", "pionts", "3", "--reports-root", tmp_path, ok=False)
    assert p.returncode == 1 and "unknown parameter(s) pionts; known: points (int), label (str), noisy (bool)" in p.stderr
    assert list(tmp_path.iterdir()) == [], "nothing was written"


def test_list(runs):
    out = mq("report", runs.walk, "--list").stdout
    assert "points: int = 100  # steps" in out and "noisy: bool = False  # unused" in out


def png_pixels(path) -> np.ndarray:
    "An 8-bit RGB(A) PNG, as Chromium writes it, decoded to (H, W, C) without an imaging library."
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk, pos = data[pos + 8:pos + 8 + n], pos + 12 + n
        if kind == b"IHDR": w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT": idat += chunk
    assert depth == 8 and ctype in (2, 6) and not interlace, (depth, ctype, interlace)
    c = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    out, prev = np.zeros((h, w * c), np.int32), np.zeros(w * c, np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0: cur = line
        elif f == 2: cur = (line + prev) & 255
        else:   # Sub, Average, Paeth: each byte depends on the one to its left
            cur = np.zeros_like(line)
            for i in range(len(line)):
                a, b, d = (cur[i - c] if i >= c else 0), prev[i], (prev[i - c] if i >= c else 0)
                if f == 1: p = a
                elif f == 3: p = (a + b) >> 1
                else:
                    pa, pb, pc = abs(b - d), abs(a - d), abs(a + b - 2 * d)
                    p = a if pa <= pb and pa <= pc else b if pb <= pc else d
                cur[i] = (line[i] + p) & 255
        out[y] = prev = cur
    return out.reshape(h, w, c)[..., :3].astype(np.uint8)


def test_chart_renders_offline_in_a_browser(runs, tmp_path):
    """Headless Chromium, every network request sent to a dead proxy: the page still draws its plotly charts.
    Skipped where Debian's chromium is not installed, unless MQBENCH_REQUIRE_CHROMIUM=1 (as in CI)."""
    import os
    if not Path(CHROMIUM).exists():
        if os.environ.get("MQBENCH_REQUIRE_CHROMIUM") == "1": pytest.fail(f"MQBENCH_REQUIRE_CHROMIUM=1 but there is no {CHROMIUM}")
        pytest.skip(f"no headless browser at {CHROMIUM}")
    page = (runs.root / "walk" / "r1" / "report.html").as_uri()
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--proxy-server=http://127.0.0.1:9",
               "--window-size=1200,1600"]
    png = tmp_path / "report.png"
    subprocess.run([*browser, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", f"--screenshot={png}", page],
                   capture_output=True, timeout=120, check=True)
    px = png_pixels(png)
    assert px.shape == (1600, 1200, 3)
    colours = len(np.unique(px.reshape(-1, 3), axis=0))
    blue = int((np.abs(px.astype(int) - PLOTLY_BLUE).sum(-1) < 30).sum())
    assert colours > 200, f"the screenshot looks blank: {colours} colours"
    assert blue > 2000, f"no plotly trace drawn: {blue} pixels of the trace colour"
    dom = subprocess.run([*browser, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count('class="main-svg"') >= 4 and "scatterlayer" in dom, "plotly.js ran and drew both figures"


def test_leaderboard_report(tmp_path):
    """The leaderboard template from the command line on the example dataset, two seeds of the MLP: its table, intervals,
    verdicts and figures; an unknown model is one line and trains nothing."""
    root, runs = tmp_path / "reports", tmp_path / "runs"
    mq("report", "leaderboard", "-p", "models", "mlp", "-p", "seeds", 2, "-p", "steps", 10, "-p", "eval_every", 5, "-p", "n_boot", 200,
       "-p", "latency_calls", 10, "-p", "out", runs, "--run-id", "l1", "--reports-root", root)
    run = json.loads((root / "leaderboard" / "l1" / "run.json").read_text())
    h = run["headline"]
    assert run["status"] == "ok" and h["best_neural"] == "mlp" and h["best_model"] in ("mlp", "majority", "persistence")
    assert h["vs_persistence"] in ("beats", "below", "not resolved") and h["vs_majority"] in ("beats", "below", "not resolved")
    assert h["best_macro_f1_lo"] <= h["best_macro_f1"] and isinstance(h["meets_targets"], bool) and h["windows"] > 0
    assert sorted(p.name for p in (runs / "mlp").iterdir()) == ["seed0", "seed1"]
    page = (root / "leaderboard" / "l1" / "report.html").read_text()
    for text in ("Label balance", "macro-F1 [99%]", "p50 ms", "published targets", "Confusion matrices"):
        assert text in page, text
    assert page.count("* plotly.js v") == 1 and page.count("Plotly.newPlot(") == 2
    bad = mq("report", "leaderboard", "-p", "models", "mlp,nope", "-p", "out", tmp_path / "bad", "--reports-root", root, ok=False)
    last = bad.stderr.strip().splitlines()[-1]
    assert bad.returncode == 1 and "MqbenchError: unknown model(s) nope; known: mlp" in last and "Traceback" not in bad.stderr, last
    assert not (tmp_path / "bad").exists(), "nothing trained"
