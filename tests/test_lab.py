"""The explore widgets as a person uses them: a real JupyterLab on loopback, headless Chromium driven by playwright, a
notebook run in the browser, a slider moved with the mouse, the figure's data seen to change, no JavaScript errors."""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "nbs" / "images" / "book_replay.png"
WIDGET_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "anywidget")   # prebuilt lab extensions the widgets need


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("MQBENCH_REQUIRE_CHROMIUM") == "1": pytest.fail(f"MQBENCH_REQUIRE_CHROMIUM=1 but there is no {CHROMIUM}")
        pytest.skip(f"no headless browser at {CHROMIUM}")


def get_json(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as r: return json.loads(r.read())


def stop(proc: subprocess.Popen, api: str):
    "Shut the server down through its API (it shuts its kernels down), then make sure: the server's and its kernels' processes."
    import psutil
    try: kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error: kids = []
    try: urllib.request.urlopen(urllib.request.Request(api, method="POST"), timeout=5)
    except OSError: pass
    try: proc.wait(timeout=10)
    except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)
    for k in kids:
        try: k.kill()
        except psutil.Error: pass


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 at a free port with a known token; its config, data, runtime, settings and workspaces
    under tmp_path; the explore notebook (a small one, on the example day) in its root folder."""
    from mqbench.demo import example_inputs
    ex = example_inputs()                     # built here, outside the browser's timeouts (reused when it exists)
    nb = new_notebook(cells=[new_code_cell(f"from mqbench import explore\nday = {str(ex['day'])!r}   # the example day"),
                             new_code_cell('r = explore.BookReplay(day, "LQDA", span="1min")\nr')],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "explore.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JUPYTER_PLATFORM_DIRS": "1", "IPYTHONDIR": str(tmp_path / "ipython")}
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")):
        env[var] = str(tmp_path / sub)
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))   # no question about news over the page
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None"],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base, started = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get_json(f"{base}/api/status?token={token}"); break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield type("Lab", (), dict(base=base, token=token, root=tmp_path, example=ex, startup=time.monotonic() - started))
    finally:
        stop(proc, f"{base}/api/shutdown?token={token}")
        log.close()


KERNEL_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}"""
PLOTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
  traces: (el.data || []).map(t => ({name: t.name, n: t.x ? t.x.length : 0, x0: t.x && t.x.length ? String(t.x[0]) : null,
                                     x: t.x ? Array.from(t.x).map(String) : []})),
  cursor: el.layout && el.layout.shapes && el.layout.shapes.length ? String(el.layout.shapes[0].x0) : null}))"""
PLAYED = """n => Array.from(document.querySelectorAll('.widget-html')).some(e => {
  const m = e.textContent.match(/change ([0-9,]+) of/); return m && parseInt(m[1].replace(/,/g, '')) > n + 2; })"""
MOVED = """cursor => !Array.from(document.querySelectorAll('.widget-html')).some(e => e.textContent.includes('change 1 of'))
  && String(document.querySelectorAll('.js-plotly-plot')[0].layout.shapes[0].x0) !== cursor"""


def test_book_replay_in_jupyterlab(lab):
    "The notebook run in the browser: the widgets draw, a slider moved with the mouse changes the figures, nothing logged as an error."
    need_chromium()
    from playwright.sync_api import sync_playwright
    t0 = time.monotonic()
    errors, outside, extensions = [], [], set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"], timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("response", lambda r: "/lab/extensions/" in r.url and r.ok and extensions.add(r.url.split("/lab/extensions/")[1]))

            def route(r):
                if r.request.url.startswith(lab.base) or r.request.url.startswith(("data:", "blob:")): return r.continue_()
                outside.append(r.request.url); return r.abort()
            page.route("**/*", route)
            page.goto(f"{lab.base}/lab/tree/explore.ipynb?token={lab.token}")
            page.wait_for_function(KERNEL_READY, timeout=90_000)        # the kernel idle, and its websocket connected
            times = {"lab open, kernel idle": time.monotonic() - t0}
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            readout = page.locator(".widget-html", has_text="change 1 of")
            readout.wait_for(timeout=90_000)
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2 && "
                                   "Array.from(document.querySelectorAll('.js-plotly-plot')).every(el => el.data && el.data.length)")
            times["cells run, widgets drawn"] = time.monotonic() - t0
            before = page.evaluate(PLOTS)
            main, ladder = before[0], before[1]
            assert main["traces"][0]["name"] == "bid" and 0 < sum(t["n"] for t in main["traces"]) <= 4000
            assert ladder["traces"][0]["n"] > 0 and main["cursor"] is not None
            # drag the scrubber: a click at 3/4 of its track
            track = page.locator(".widget-hslider", has_text="BBO change").locator(".noUi-target, .slider").first
            box = track.bounding_box()
            page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
            page.wait_for_function(MOVED, arg=main["cursor"], timeout=30_000)
            page.wait_for_timeout(500)                               # the batch of trace updates lands together
            after = page.evaluate(PLOTS)
            times["slider moved, figures changed"] = time.monotonic() - t0
            text = page.locator(".widget-html", has_text="change ").first.text_content()
            n = int(text.split("change ")[1].split(" of")[0].replace(",", ""))
            assert n > 5000, text                                    # 3/4 of 13,659 BBO changes
            assert after[0]["cursor"] > main["cursor"]
            assert after[0]["traces"][2]["x0"] != main["traces"][2]["x0"], "the 1-minute view followed the cursor"
            assert after[0]["traces"][2]["x0"] <= after[0]["cursor"].replace(" ", "T") <= after[0]["traces"][2]["x"][-1]
            assert after[1]["traces"][0]["x"] != ladder["traces"][0]["x"] or after[1]["traces"][1]["x"] != ladder["traces"][1]["x"]
            # play: the Play control runs in the browser, linked to the scrubber; the kernel follows and redraws
            page.locator(".widget-play button").first.click()
            page.wait_for_function(PLAYED, arg=n, timeout=30_000)
            page.locator(".widget-play button").nth(1).click()      # stop
            times["played"] = time.monotonic() - t0
            manager = page.evaluate("() => window.jupyterapp.isPluginActivated('@jupyter-widgets/jupyterlab-manager:plugin')")
            out = page.locator(".jp-OutputArea-output", has=page.locator(".js-plotly-plot")).first
            shot = lab.root / "book_replay.png"
            out.screenshot(path=str(shot))
        finally:
            browser.close()
    assert manager, "the widget manager is not activated"
    names = {"/".join(e.split("/")[:2]) if e.startswith("@") else e.split("/")[0] for e in extensions}
    assert names >= set(WIDGET_EXTENSIONS), f"widget extensions not loaded from the server: {sorted(names)}"
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not errors, f"JavaScript errors: {errors[:5]}"
    assert shot.stat().st_size > 20_000
    if os.environ.get("MQBENCH_UPDATE_SCREENSHOTS") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    print(f"JupyterLab server up in {lab.startup:.1f} s; seconds since the browser started:", {k: round(v, 1) for k, v in times.items()})
