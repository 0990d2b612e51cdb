"""The classroom in a real browser: two students rank at once; a chapter runs live in `make lab`.

1. The class app (:mod:`clpips.apps.classroom`) is served on 127.0.0.1 (a free port; it stops by
   itself after two minutes and is always shut down). Two headless Chromium browsers, driven
   by Selenium through Debian's chromium-driver, join as two students *at the same time*,
   click the candidates of every set in an order of their own and submit. Then: the class CSV
   holds each student's rankings exactly once, in the order clicked; the LPIPS rho and
   ICC(A,k) each page shows are those of the rows in the CSV; nothing was requested from
   another host. A screenshot goes to ``_build/render-check/classroom.png`` (with
   ``CLPIPS_SCREENSHOT=book`` also to ``book/_static/classroom.png``, the teaching page's).
2. JupyterLab is started with the command `make lab` runs (``make -s lab-command``) on a
   free port with a token; chapter 10 is opened from its jupytext source, its cells are run,
   and the ranking widget must render live (images loaded) and answer a click through the
   kernel ("rank 1").

The study is mur92 (from ``$CLPIPS_DATA_MIRROR`` or the cache; without it the test fails, it
does not fall back to another study). Skips without Chromium, chromium-driver or Selenium, except under
``CI=true``, where that is a failure (``make test`` installs them: ``make browser``,
``make classroom``).
"""
from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from clpips.apps import classroom as cr

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "_build" / "render-check"
IN_CI = os.environ.get("CI", "").lower() == "true"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
         "--disable-dev-shm-usage", "--mute-audio", "--window-size=1100,820"]


def skip_or_fail(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def new_browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("Selenium is not installed: run `make classroom` (pip install -e '.[classroom]')")
    chromium = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver_path:
        skip_or_fail("Chromium or chromium-driver is not installed: run `make browser`")
    os.environ.setdefault("SE_OFFLINE", "true")      # Selenium Manager must not download anything
    drivers = []

    def make():
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in FLAGS:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(60)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.quit()


def requested_urls(driver) -> list[str]:
    import json
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign(urls: list[str], origin: str) -> list[str]:
    return [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urlsplit(u).netloc != urlsplit(origin).netloc]


def the_study(tmp_path: Path):
    """mur92 (k=4, 3 sets), its real images and pair features: a missing mur92 fails the test."""
    return cr.open_classroom("mur92", tmp_path / "class.csv", code="OWL42", n_sets=3, k=4)


def student(driver, url: str, name: str, reverse: bool, clicked: dict, errors: list) -> None:
    """One student: join, then rank every set (clicking in shown or reversed order) and submit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        driver.find_element(By.ID, "name").send_keys(name)
        driver.find_element(By.ID, "code").send_keys("owl42")
        driver.find_element(By.ID, "join-button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "work")))
        for n in range(3):
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == str(n))
            buttons = driver.find_elements(By.CSS_SELECTOR, "#grid button.candidate")
            wait.until(lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                                      img) for img in d.find_elements(By.CSS_SELECTOR, "img.thumb")))
            order = buttons[::-1] if reverse else buttons
            title = driver.find_element(By.ID, "title").text
            refs = [b.get_attribute("data-ref") for b in order]
            for b in order:
                b.click()
            assert [b.text for b in order][0].startswith("rank 1")
            submit = driver.find_element(By.ID, "submit")
            assert submit.is_enabled(), title
            submit.click()
            clicked.setdefault(name, []).append(refs)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == "3")
        wait.until(lambda d: "All 3 sets ranked" in d.find_element(By.ID, "title").text)
    except Exception as err:   # reported by the test thread
        errors.append(f"{name}: {type(err).__name__}: {err}")


def screenshot_of_a_ranking(driver, url: str) -> Path:
    """A third student mid-lesson (one set saved, two candidates of the next clicked), as a screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(driver, 60)
    driver.get(url)
    driver.find_element(By.ID, "name").send_keys("Cleo")
    driver.find_element(By.ID, "code").send_keys("OWL42")
    driver.find_element(By.ID, "join-button").click()
    for clicks in (4, 2):
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.candidate")) == 4)
        wait.until(lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                                 for i in d.find_elements(By.CSS_SELECTOR, "img.thumb")))
        for b in driver.find_elements(By.CSS_SELECTOR, "#grid button.candidate")[:clicks]:
            b.click()
        if clicks == 4:
            driver.find_element(By.ID, "submit").click()
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == "1")
    png = driver.get_screenshot_as_png()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "classroom.png").write_bytes(png)
    if os.environ.get("CLPIPS_SCREENSHOT") == "book":    # refresh the teaching page's copy (committed)
        from PIL import Image
        image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
        image.save(REPO / "book" / "_static" / "classroom.png", optimize=True)
    return SHOTS / "classroom.png"


def shown_scores(driver) -> dict[str, list[str]]:
    from selenium.webdriver.common.by import By
    rows = driver.find_elements(By.CSS_SELECTOR, "#scores table tr")
    return {r.find_elements(By.TAG_NAME, "td")[0].text: [td.text for td in r.find_elements(By.TAG_NAME, "td")[1:]]
            for r in rows[1:]}


def test_two_students_rank_at_once(new_browser, tmp_path: Path):
    from clpips.evaluate import heldout_scores
    from clpips.model import initial_weight_vector
    began = time.perf_counter()
    room = the_study(tmp_path)
    a, b = new_browser(), new_browser()
    with cr.ClassroomServer(room, "127.0.0.1", 0, stop_after=120) as server:
        clicked: dict[str, list[list[str]]] = {}
        errors: list[str] = []
        threads = [threading.Thread(target=student, args=(a, server.url, " Ana  Lima", False, clicked, errors)),
                   threading.Thread(target=student, args=(b, server.url, "Ben", True, clicked, errors))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(100)
        assert not errors, "\n".join(errors)
        table = pd.read_csv(room.csv_path, dtype={"set_id": str})
        shot = screenshot_of_a_ranking(new_browser(), server.url)
        # every ranking exactly once, in the order clicked
        assert set(table["rater"]) == {"Ana Lima", "Ben"}
        sizes = table.groupby(["rater", "set_id"]).size()
        assert len(sizes) == 6 and (sizes == 4).all()
        for name, rater in ((" Ana  Lima", "Ana Lima"), ("Ben", "Ben")):
            mine = table[table["rater"] == rater]
            saved = [list(g.sort_values("rank")["candidate"]) for _, g in mine.groupby("set_id", sort=False)]
            assert saved == clicked[name]
        # the scores each page shows are those of its rows in the CSV
        for driver, rater in ((a, "Ana Lima"), (b, "Ben")):
            mine = table[table["rater"] == rater]
            expected = heldout_scores(mine, room.features, {"LPIPS": initial_weight_vector("alex", "lpips")})
            shown = shown_scores(driver)
            assert shown["LPIPS"][:2] == [f"{expected.at['LPIPS', 'spearman']:.2f}",
                                          f"{expected.at['LPIPS', 'icc_A_k']:.2f}"], shown
            assert "personal CLPIPS" in shown
            assert not foreign(requested_urls(driver), server.url)
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not severe, severe
    print(f"\ntwo students, 3 sets each: {time.perf_counter() - began:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chapter_runs_live_in_make_lab(new_browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    began = time.perf_counter()
    port, token = free_port(), secrets.token_hex(16)
    command = subprocess.run(["make", "-s", "--no-print-directory", "lab-command", f"LAB_PORT={port}"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    command += [f"--IdentityProvider.token={token}", "--no-browser", "--LabApp.expose_app_in_browser=True",
                f"--ServerApp.runtime_dir={tmp_path / 'runtime'}", "--LabApp.workspaces_dir=" + str(tmp_path / "ws"),
                "--ServerApp.shutdown_no_activity_timeout=150", "--MappingKernelManager.cull_idle_timeout=150"]
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "CLPIPS_NOTEBOOK_OUT": str(tmp_path)}
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        cr.wait_until_ready(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=60)
        driver = new_browser()
        origin = f"http://127.0.0.1:{port}"
        driver.get(f"{origin}/lab/tree/notebooks/10_your_class.py?token={token}&reset")
        wait = WebDriverWait(driver, 100, poll_frequency=0.5)
        wait.until(lambda d: d.execute_script(
            "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.content && w.content.widgets && w.content.widgets.length > 3);"))
        kind = driver.execute_script("return window.jupyterapp.shell.currentWidget.constructor.name")
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # the ranking widget, live: its images loaded and its candidate buttons shown
        wait.until(lambda d: d.execute_script(
            "const imgs = [...document.querySelectorAll('.jp-OutputArea-output .widget-image')];"
            "return imgs.length >= 5 && imgs.every(i => i.complete && i.naturalWidth > 0)"
            " && [...document.querySelectorAll('.jp-OutputArea-output button')]"
            ".some(b => b.textContent.includes('click to rank'));"))
        button = next(b for b in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output button")
                      if "click to rank" in b.text)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        wait.until(lambda d: any(b.text.strip() == "rank 1"
                                 for b in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output button")))
        (SHOTS / "lab.png").parent.mkdir(parents=True, exist_ok=True)
        (SHOTS / "lab.png").write_bytes(driver.get_screenshot_as_png())
        assert kind, "no notebook panel"
        assert not foreign(requested_urls(driver), origin), foreign(requested_urls(driver), origin)
    except Exception:
        log.flush()
        print((tmp_path / "lab.log").read_text()[-3000:])
        raise
    finally:
        lab.terminate()
        try:
            lab.wait(20)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
        log.close()
    print(f"\nlab: chapter 10 live, widget answered a click: {time.perf_counter() - began:.1f} s")
