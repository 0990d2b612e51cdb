"""Every page of the built book renders in a real browser (headless Chromium), offline.

For each ``_build/html/**/*.html`` page, served from 127.0.0.1, the test checks that

* the screenshot is not blank (not a single colour);
* every ``<img>`` loaded (``complete && naturalWidth > 0``) and no local resource failed;
* no Python traceback or papermill error cell is shown;
* nothing was requested from another host, and no script or stylesheet points at one
  (the book must work offline: widget JS and MathJax are served from ``_static``);
* no JavaScript exception was thrown;
* on pages with saved ipywidgets, every widget view rendered with a non-zero size.

Full-page screenshots are written to ``_build/render-check/`` for a human look. The test skips
when the book has not been built (``make book``), but fails under ``CI=true``; it also
skips (fails under CI) without Chromium (``make browser`` installs it).

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
file descriptors 3 and 4, NUL-terminated JSON messages), so no extra package is needed.
"""
from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import io
import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"
SHOTS = REPO / "_build" / "render-check"
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio"]
WIDTH, HEIGHT = 1280, 900
MAX_SHOT_HEIGHT = 12_000          # full-page screenshots, cut at this height (CSS pixels)
TRACEBACK_MARKERS = ("Traceback (most recent call last)",       # a Python traceback
                     "An Exception was encountered at")         # papermill's error cell


def skip_or_fail(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def book_pages() -> list[Path]:
    """The built pages (not the theme's template fragments under ``_static``)."""
    if not HTML.is_dir():
        return []
    return sorted(p for p in HTML.rglob("*.html")
                  if not p.relative_to(HTML).parts[0].startswith("_"))


# -- a minimal DevTools-protocol client over a pipe ------------------------------

class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="clpips-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser expects its ends as fds 3 (read) and 4 (write): move them high, then
        # let bash put them in place (avoids preexec_fn, unsafe with threads; dash cannot
        # redirect fds above 9)
        hi_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")
        args = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
                f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{hi_r} 4>&{hi_w} {hi_r}<&- {hi_w}>&-', "bash", *args],
            pass_fds=(hi_r, hi_w), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        os.close(hi_r)
        os.close(hi_w)
        self._ids = itertools.count(1)
        self._inbox: queue.Queue[Optional[dict]] = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.send("Target.getTargets", timeout=60)   # the browser is up

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                self._inbox.put(None)
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._inbox.put(json.loads(message))

    def _next(self, deadline: float) -> dict:
        try:
            message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("Chromium did not answer in time") from None
        if message is None:
            raise RuntimeError(f"Chromium exited (log: {self._log.name})")
        return message

    def send(self, method: str, params: Optional[dict] = None, session: Optional[str] = None,
             timeout: float = 30) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        ident = next(self._ids)
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30, after: int = 0) -> dict:
        """Wait for an event of ``method`` in ``session`` (among events from index ``after`` on)."""
        deadline = time.monotonic() + timeout
        seen = after
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(self._next(deadline))

    def evaluate(self, expression: str, session: str, timeout: float = 30) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session, timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression[:60]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._log.close()
        self._profile.cleanup()


# -- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_book() -> Path:
    if not (HTML / "index.html").exists():
        skip_or_fail(f"the book is not built ({HTML} is missing): run `make book`")
    return HTML


@pytest.fixture(scope="module")
def server(built_book: Path) -> Iterator[str]:
    """The built book served on 127.0.0.1 (as a reader's browser would fetch it)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(built_book)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(built_book: Path) -> Iterator[Chromium]:
    executable = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not executable:
        skip_or_fail("Chromium is not installed: run `make browser` (apt-get install chromium)")
    chromium = Chromium(executable)
    yield chromium
    chromium.close()


# -- what one page shows -------------------------------------------------------

SETTLE = """(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const views = () => document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const rendered = () => [...document.querySelectorAll('.widget-subarea')]
      .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().height > 0).length;
  for (let i = 0; i < 100 && rendered() < views(); i++) await sleep(100);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(r => { img.onload = img.onerror = r; setTimeout(r, 5000); })));
  await sleep(200);
  return true;
})()"""

SUMMARY = """(() => {
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  // what a reader reads: the article without code (input cells, code blocks, inline code)
  const prose = () => {
    const article = document.querySelector('article') || document.querySelector('main');
    if (!article) return '';
    const copy = article.cloneNode(true);
    copy.querySelectorAll('.cell_input, pre, code, script, style, .headerlink, mjx-container, .MathJax')
        .forEach(e => e.remove());
    return copy.textContent;
  };
  // a table, figure, image or equation wider than the text column, or cut off inside a scroll box
  const overflows = () => {
    const article = document.querySelector('article');
    if (!article) return [];
    const right = article.getBoundingClientRect().right + 1;
    const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
        ' "' + (e.innerText || e.getAttribute('alt') || '').trim().slice(0, 40).replace(/\\s+/g, ' ') + '"';
    const out = [];
    for (const e of article.querySelectorAll('table, img, figure, mjx-container[display="true"], .cell_output .output')) {
      if (!visible(e)) continue;
      if (e.getBoundingClientRect().right > right) out.push(name(e) + ' runs past the text column');
      else if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
        out.push(name(e) + ' is cut off (scrolls sideways)');
    }
    return out;
  };
  return {
    images: [...document.images].map(i => ({src: i.currentSrc || i.src,
                                             loaded: i.complete && i.naturalWidth > 0})),
    resources: [...document.querySelectorAll('script[src]')].map(e => e.src).concat(
      [...document.querySelectorAll('link[href]')]
        .filter(e => /stylesheet|preload|icon|manifest/i.test(e.rel)).map(e => e.href)),
    text: document.body ? document.body.innerText : '',
    errorCells: document.querySelectorAll('.traceback, .papermill-error-cell, .output.error').length,
    stderrCells: [...document.querySelectorAll('.output.stderr')].map(e => e.innerText.slice(0, 160)),
    widgetViews: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
    widgetsShown: [...document.querySelectorAll('.widget-subarea')]
      .filter(e => visible(e) && [...e.querySelectorAll('.jupyter-widgets, [class*="widget-"]')].some(visible)).length,
    overflows: overflows(),
    prose: prose(),
  };
})()"""


def inspect_page(chromium: Chromium, url: str) -> dict[str, Any]:
    """Load ``url`` in a fresh tab; return what it shows, what it fetched and a screenshot."""
    target = chromium.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chromium.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Network"):
            chromium.send(f"{domain}.enable", session=session)
        chromium.send("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT,
                      "deviceScaleFactor": 1, "mobile": False}, session)
        first_event = len(chromium.events)
        chromium.send("Page.navigate", {"url": url}, session)
        loaded = chromium.wait_for("Page.loadEventFired", session, timeout=60)
        for attempt in range(3):            # a redirect page (index.html) navigates again
            try:
                chromium.evaluate(SETTLE, session, timeout=60)
                break
            except RuntimeError as err:
                if "navigated" not in str(err) or attempt == 2:
                    raise
                loaded = chromium.wait_for("Page.loadEventFired", session, timeout=60,
                                           after=chromium.events.index(loaded) + 1)
        summary = chromium.evaluate(SUMMARY, session)
        # full page: make the viewport as tall as the page (sticky sidebars stay in place)
        size = chromium.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        chromium.send("Emulation.setDeviceMetricsOverride", {
            "width": WIDTH, "height": int(min(max(size["height"], HEIGHT), MAX_SHOT_HEIGHT)),
            "deviceScaleFactor": 1, "mobile": False}, session)
        chromium.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 100)))",
                          session)
        shot = chromium.send("Page.captureScreenshot", {"format": "png"}, session,
                             timeout=60)["data"]
        events = [e for e in chromium.events[first_event:] if e.get("sessionId") == session]
    finally:
        chromium.send("Target.closeTarget", {"targetId": target})
    summary["screenshot"] = base64.b64decode(shot)
    summary["requests"] = [e["params"]["request"]["url"] for e in events
                           if e["method"] == "Network.requestWillBeSent"]
    summary["failed"] = [f"{e['params'].get('errorText')} ({e['params'].get('type')})"
                         for e in events if e["method"] == "Network.loadingFailed"
                         and not e["params"].get("canceled")]
    summary["http_errors"] = [f"{e['params']['response']['status']} {e['params']['response']['url']}"
                              for e in events if e["method"] == "Network.responseReceived"
                              and e["params"]["response"]["status"] >= 400]
    summary["exceptions"] = [e["params"]["exceptionDetails"].get("exception", {}).get(
                                 "description", e["params"]["exceptionDetails"].get("text"))
                             for e in events if e["method"] == "Runtime.exceptionThrown"]
    return summary


def is_blank(png: bytes) -> bool:
    """True when (all but 0.01% of) the pixels have one colour."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    if colours is None:          # more than 65536 colours: certainly not blank
        return False
    dominant = max(count for count, _ in colours)
    return dominant > 0.9999 * image.width * image.height


def external(url: str, origin: str) -> bool:
    """A URL the page would fetch from another host (data:, blob: and about: are local)."""
    parts = urlsplit(url)
    return parts.scheme not in ("data", "blob", "about", "") and \
        f"{parts.scheme}://{parts.netloc}" != origin


def page_request(url: str) -> bool:
    """False for the browser's own probe for /favicon.ico (the book has no favicon)."""
    return urlsplit(url).path != "/favicon.ico"


#: what must never reach a reader's eye outside code: a missing value, MyST roles left unrendered,
#: Markdown backticks that were pasted as text
RAW_MARKUP = {"NaN": r"\b(NaN|nan)\b", "raw glue": r"\{glue(:\w+)?\}", "raw citation": r"\{cite(:\w+)?\}",
              "raw cross-reference": r"\{(numref|ref|doc|eq)\}", "raw backticks": r"`"}


def raw_markup(text: str) -> list[tuple[str, int]]:
    """``(what, position)`` of the first occurrence of each kind of raw markup in ``text``."""
    import re
    found = ((what, re.search(pattern, text)) for what, pattern in RAW_MARKUP.items())
    return [(what, m.start()) for what, m in found if m]


def test_raw_markup_is_found_in_prose_and_nothing_else() -> None:
    assert [w for w, _ in raw_markup("ICC NaN, see {numref}`fig` and `clpips run`")] == \
        ["NaN", "raw cross-reference", "raw backticks"]
    assert [w for w, _ in raw_markup("from nan rankings per person on")] == ["NaN"]   # Python's spelling too
    assert raw_markup("ICC 0.60 [0.52, 0.67]; NaNs are dropped; Nancy; nanometres") == []


# -- the tests -----------------------------------------------------------------

def test_the_book_is_built(built_book: Path) -> None:
    pages = book_pages()
    assert pages, f"no pages in {built_book}"
    assert (built_book / "_static" / "widgets" / "embed-amd.js").exists(), \
        "widget JS missing from _static (scripts/fetch_widget_js.sh)"
    assert (built_book / "_static" / "mathjax" / "tex-mml-chtml.js").exists(), \
        "MathJax missing from _static (scripts/fetch_widget_js.sh)"


@pytest.mark.parametrize("page", book_pages() or [None],
                         ids=lambda p: str(p.relative_to(HTML)) if p else "no-book")
def test_page_renders(page: Optional[Path], built_book: Path, server: str,
                      browser: Chromium) -> None:
    if page is None:
        skip_or_fail(f"no pages in {built_book}")
    rel = page.relative_to(built_book).as_posix()
    seen = inspect_page(browser, f"{server}/{rel}")

    shot = SHOTS / (rel[:-len(".html")] + ".png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(seen["screenshot"])

    problems = []
    if is_blank(seen["screenshot"]):
        problems.append(f"the page is blank (screenshot: {shot})")
    problems += [f"image did not load: {i['src']}" for i in seen["images"] if not i["loaded"]]
    problems += [f"request failed: {f}" for f in seen["failed"]]
    problems += [f"HTTP error: {e}" for e in seen["http_errors"] if page_request(e.split()[1])]
    problems += [f"shows {marker!r}" for marker in TRACEBACK_MARKERS if marker in seen["text"]]
    if seen["errorCells"]:
        problems.append(f"{seen['errorCells']} error output(s) (tracebacks) on the page")
    # a warning or a log line a cell printed to stderr is debug output to a reader (issue 22, item 5)
    problems += [f"shows a cell's stderr output: {text!r}" for text in seen["stderrCells"]]
    problems += [f"requested from another host: {u}" for u in seen["requests"] if external(u, server)]
    problems += [f"loads from another host: {u}" for u in seen["resources"] if external(u, server)]
    problems += [f"JavaScript exception: {e}" for e in seen["exceptions"]]
    problems += [f"overflow: {o}" for o in seen["overflows"]]
    problems += [f"shows {what}: ...{seen['prose'][max(0, i - 40):i + 40]!r}..."
                 for what, i in raw_markup(seen["prose"])]
    if seen["widgetViews"] and seen["widgetsShown"] < seen["widgetViews"]:
        problems.append(f"only {seen['widgetsShown']} of {seen['widgetViews']} widgets rendered "
                        f"(screenshot: {shot})")
    assert not problems, f"{rel}:\n  " + "\n  ".join(problems)


# -- static checks of the book's sources (no build needed) ----------------------

# every numbered chapter source, in order (99_status is the appendix's status page)
CHAPTERS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py") if not p.stem.startswith("99"))


def toc_files() -> list[str]:
    import yaml

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    return [toc["root"], *walk(toc.get("parts", []))]


def test_toc_lists_every_chapter_as_an_executed_notebook() -> None:
    files = toc_files()
    assert len(CHAPTERS) >= 9 and [f for f in files if f.startswith("out/notebooks/") and "99_" not in f] == \
        [f"out/notebooks/{name}" for name in CHAPTERS]
    for file in files:
        if not file.startswith("out/"):
            assert (REPO / f"{file}.md").exists(), f"{file}.md is in _toc.yml but missing"


def test_cross_notebook_glue_names_notebooks_in_the_toc() -> None:
    import re

    listed = set(toc_files())
    refs = re.compile(r"/(out/notebooks/[\w-]+)\.ipynb::")
    for page in sorted((REPO / "book").glob("*.md")):
        for doc in refs.findall(page.read_text(encoding="utf-8")):
            assert doc in listed, f"{page.name} pastes from {doc}, which _toc.yml does not list"


def test_config_serves_widget_js_and_mathjax_locally() -> None:
    import yaml

    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))["sphinx"]["config"]
    scripts = list(config["nb_ipywidgets_js"]) + [config["mathjax_path"]]
    assert scripts and not [s for s in scripts if "//" in s], f"CDN scripts configured: {scripts}"
