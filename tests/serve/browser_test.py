#!/usr/bin/env python3
"""browser_test.py MKWS ARTIFACTS [--demo] - the dashboard end to end in headless
Chromium, driven through chromedriver's WebDriver protocol (plain HTTP, so
nothing beyond Debian's chromium and chromium-driver is needed).

Against a workspace made by `tend init` and filled by MKWS (the C helper
serve_mkws, through the store API): the run chart renders with points,
incident markers and the promotion line; a proposal opens with its diff and
gate table; approving it shows the promotion in the audit timeline, whose
chain verifies. Screenshots go to ARTIFACTS. Exits 77 (skip) when chromium
or chromedriver is missing.

With --demo, TEND_DEMO_WS=DIR (a workspace `tend demo` left) or
TEND_SERVE_DEMO=1 (the last two run `tend demo` first, about a minute;
skipped for a sanitizer build, whose trainer is too slow), the same walk goes over the demo's
workspace instead: its run "demo", its first proposal (approved in the page
when it awaits approval; the demo's gates usually promote it themselves),
and the promotion in the audit timeline.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Driver:
    """The few WebDriver calls the test needs."""

    def __init__(self, port, profile):
        self.base = "http://127.0.0.1:%d" % port
        for _ in range(100):
            try:
                if self._call("GET", "/status")["value"].get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--window-size=1400,1000",
                "--user-data-dir=" + profile]},
        }}}
        self.sid = self._call("POST", "/session", caps)["value"]["sessionId"]

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError("webdriver %s %s: %s" % (method, path, e.read()[:500]))

    def s(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.sid, path), body)["value"]

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, what, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)

    def click(self, css):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        eid = list(el.values())[0]
        self.s("POST", "/element/%s/click" % eid, {})

    def shot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        try:
            self._call("DELETE", "/session/" + self.sid)
        except Exception:
            pass


def start_server(tend, ws):
    p = subprocess.Popen([tend, "--workspace", ws, "serve", "--listen",
                          "127.0.0.1:0", "--writable"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = p.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if not m:
        p.kill()
        raise AssertionError("tend serve did not start: " + line + p.stdout.read())
    return p, m.group(1)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  ", what)


def ready(d, route):
    d.wait("return document.body.dataset.ready === %s" % json.dumps(route),
           "page " + route)
    err = d.js("var e = document.querySelector('[data-testid=error]');"
               "return e ? e.textContent : null")
    check(err is None, "%s renders without error (%s)" % (route, err))


def attr(d, css, name):
    return d.js("var e = document.querySelector(arguments[0]);"
                "return e ? e.getAttribute(arguments[1]) : null", css, name)


def sanitized(tend):
    """True for a tend built with AddressSanitizer (slower by design)."""
    out = subprocess.run(["ldd", tend], stdout=subprocess.PIPE, text=True).stdout
    return "libasan" in out


def scenario(d, url, shots, grow, slow):
    d.go(url + "/#/run/live")
    ready(d, "#/run/live")
    before = int(attr(d, "[data-chart=loss]", "data-points"))
    time.sleep(2.5)  # the page's first poll notes where the run is
    grow()
    d.wait("return +document.querySelector('[data-chart=loss]').getAttribute('data-points') > %d"
           % before, "the live chart to grow", timeout=15)
    check(d.js("return document.querySelector('[data-testid=run-step]').textContent") == "149",
          "the live run's chart and step follow new steps (%d points before)" % before)

    # a run of 1,000,000 steps: the first view reads them all on the server
    d.go(url + "/#/run/big")
    ready(d, "#/run/big")
    ms = int(d.js("return document.body.dataset.renderMs"))
    pts = int(attr(d, "[data-chart=loss]", "data-points"))
    # under a second on a quiet machine (bench_downsample measures it); here
    # only a bound that a loaded 2-core machine or ASan still meets
    check(0 < pts <= 6000 and ms < (30000 if slow else 5000),
          "1,000,000-step run: %d points drawn, page rendered in %d ms" % (pts, ms))
    d.go(url + "/#/runs")
    ready(d, "#/runs")
    d.go(url + "/#/run/big")
    ready(d, "#/run/big")
    check(True, "again, with the series kept on the server: %s ms"
          % d.js("return document.body.dataset.renderMs"))
    d.shot(os.path.join(shots, "big.png"))

    d.go(url + "/#/run/baseline")
    ready(d, "#/run/baseline")
    loss = "[data-chart=loss]"
    d.wait("var e = document.querySelector('%s');"
           "return e && e.getAttribute('data-incident-markers') !== null" % loss,
           "the loss chart drawn")
    check(int(attr(d, loss, "data-points")) > 100, "loss chart has points")
    check(attr(d, loss, "data-incident-markers") == "2", "2 incident markers on it")
    check(attr(d, loss, "data-promotion-lines") == "1", "the promotion line on it")
    check(int(attr(d, "[data-chart='tokens/s']", "data-points")) > 100,
          "tokens/s chart has points")
    d.wait("return document.querySelectorAll('[data-testid=moe-heatmap]').length == 2",
           "two MoE heatmaps")
    check(d.js("return document.querySelectorAll('[data-testid=incidents] tr').length") == 3,
          "the incident table lists 2 incidents")
    d.shot(os.path.join(shots, "run.png"))

    d.go(url + "/#/proposal/3")
    ready(d, "#/proposal/3")
    diff = d.js("return document.querySelector('[data-testid=diff]').textContent")
    check("(tuned)" in diff, "the proposal's diff is shown")
    check(d.js("return document.querySelectorAll('[data-testid=diff] td.del').length") == 1 and
          d.js("return document.querySelectorAll('[data-testid=diff] td.add').length") == 2,
          "side by side: 1 line removed, 2 added")
    check(d.js("return document.querySelectorAll('[data-testid=gates] tr').length") == 4,
          "the gate table has 3 gates")
    d.wait("var e = document.querySelector('[data-chart=overlay-loss]');"
           "return e && +e.getAttribute('data-points') > 100", "baseline/candidate overlay")
    d.shot(os.path.join(shots, "proposal.png"))
    d.click("[data-testid=approve]")
    d.wait("return document.querySelector('[data-testid=action-output]').dataset.ok",
           "the approval's answer", timeout=60)
    out = d.js("return document.querySelector('[data-testid=action-output]').textContent")
    check(attr(d, "[data-testid=action-output]", "data-ok") == "1" and
          "approved and promoted" in out, "approve promotes: " + out.strip().splitlines()[-1])
    d.wait("return document.querySelector('[data-testid=proposal-state]').textContent === 'promoted'",
           "the state to read promoted")
    d.shot(os.path.join(shots, "approved.png"))

    d.go(url + "/#/audit")
    ready(d, "#/audit")
    d.wait("return document.querySelector('[data-testid=audit-verify]').dataset.ok",
           "tend audit verify's answer")
    check(attr(d, "[data-testid=audit-verify]", "data-ok") == "1", "the audit chain verifies")
    first = d.js("var r = document.querySelector('[data-testid=audit] .row');"
                 "return [r.dataset.action, r.classList.contains('promotion'), r.textContent]")
    check(first[0] == "promote" and first[1], "the promotion tops the audit timeline")
    d.shot(os.path.join(shots, "audit.png"))


def demo_workspace(tend, tmp):
    """The demo's workspace: TEND_DEMO_WS, or a fresh `tend demo` run."""
    if os.environ.get("TEND_DEMO_WS"):
        return os.environ["TEND_DEMO_WS"]
    env = dict(os.environ)
    env.pop("TEND_WORKSPACE", None)
    p = subprocess.run([tend, "demo"], cwd=tmp, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    m = re.search(r"throwaway workspace in (\S+)", p.stdout)
    if not m:
        raise AssertionError("tend demo made no workspace: " + p.stdout[-2000:])
    print("tend demo exited %d; its workspace: %s" % (p.returncode, m.group(1)))
    return m.group(1)


def api(url, path):
    with urllib.request.urlopen(url + path, timeout=30) as r:
        return json.loads(r.read())


def demo_scenario(d, url, shots):
    d.go(url + "/#/run/demo")
    ready(d, "#/run/demo")
    loss = "[data-chart=loss]"
    d.wait("var e = document.querySelector('%s');"
           "return e && e.getAttribute('data-incident-markers') !== null" % loss,
           "the loss chart drawn")
    check(int(attr(d, loss, "data-points")) > 50, "the demo's loss chart has points")
    check(int(attr(d, loss, "data-incident-markers")) >= 1, "incident markers on it")
    d.shot(os.path.join(shots, "demo-run.png"))
    props = api(url, "/api/proposals")["proposals"]
    check(len(props) >= 1, "the demo made a proposal")
    pid = props[0]["id"]
    d.go(url + "/#/proposal/%d" % pid)
    ready(d, "#/proposal/%d" % pid)
    check(d.js("return document.querySelectorAll('[data-testid=diff] td.add').length") >= 1,
          "proposal %d opens with its diff" % pid)
    if props[0]["state"] == "awaiting_approval":
        d.click("[data-testid=approve]")
        d.wait("return document.querySelector('[data-testid=action-output]').dataset.ok",
               "the approval's answer", timeout=120)
    d.shot(os.path.join(shots, "demo-proposal.png"))
    d.go(url + "/#/audit")
    ready(d, "#/audit")
    d.wait("return document.querySelector('[data-testid=audit-verify]').dataset.ok",
           "tend audit verify's answer")
    check(attr(d, "[data-testid=audit-verify]", "data-ok") == "1", "the audit chain verifies")
    check(d.js("return document.querySelectorAll('[data-testid=audit] .row.promotion').length") >= 1,
          "the promotion is in the audit timeline")
    d.shot(os.path.join(shots, "demo-audit.png"))


def main():
    if not CHROMIUM or not DRIVER:
        print("skip: chromium or chromedriver not installed "
              "(apt-get install chromium chromium-driver)")
        return 77
    tend, mkws, shots = os.environ["TEND_BIN"], sys.argv[1], sys.argv[2]
    if "--demo" in sys.argv[3:]:
        shots = os.path.join(shots, "demo")
    os.makedirs(shots, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="tend-test-")
    ws = os.path.join(tmp, "ws")
    server = driver = d = made_ws = None
    t0 = time.time()
    try:
        demo = (os.environ.get("TEND_DEMO_WS") or os.environ.get("TEND_SERVE_DEMO") == "1"
                or "--demo" in sys.argv[3:])
        if demo and not os.environ.get("TEND_DEMO_WS") and sanitized(tend):
            print("skip: `tend demo` under a sanitizer takes too long for a test")
            return 77
        if demo:
            ws = demo_workspace(tend, tmp)
            if not os.environ.get("TEND_DEMO_WS"):
                made_ws = ws  # the demo's throwaway workspace goes too
        else:
            subprocess.run([tend, "init", ws], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([mkws, ws, "1000000"], check=True)
        server, url = start_server(tend, ws)
        port = free_port()
        driver = subprocess.Popen([DRIVER, "--port=%d" % port],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = Driver(port, os.path.join(tmp, "profile"))
        if demo:
            demo_scenario(d, url, shots)
        else:
            scenario(d, url, shots, lambda: subprocess.run(
                [mkws, ws, "--live", "100", "50"], check=True), sanitized(tend))
        print("browser test passed in %.1f s; screenshots in %s" % (time.time() - t0, shots))
        return 0
    except (AssertionError, RuntimeError, subprocess.CalledProcessError) as e:
        print("FAIL:", e)
        if d:
            try:
                d.shot(os.path.join(shots, "failure.png"))
            except Exception:
                pass
        return 1
    finally:
        if d:
            d.quit()
        if driver:
            driver.terminate()
            driver.wait()
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        if made_ws:
            shutil.rmtree(made_ws, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
