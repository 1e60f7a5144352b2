"""A real headless Chromium for tests (Debian's chromium + chromedriver, driven by Selenium).

Missing binaries are a test *failure* that says how to install them, never a skip:

>>> # with headless_chromium(1440, 1000) as driver: driver.get(url); text(driver, "kpi-eps")
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def require_browser() -> None:
    """Fail (not skip) with the install hint when chromium or chromedriver is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run `bash scripts/install_test_tools.sh` (installs Debian's "
                    "chromium and chromium-driver with apt-get), then rerun this test", pytrace=False)


@contextlib.contextmanager
def headless_chromium(width: int = 1440, height: int = 1200) -> Iterator:
    """A Selenium Chrome driver on a throwaway profile, browser console logged at every level."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # --window-size counts the (invisible) browser frame: grow the window so that the page
        # itself, and so every screenshot, is exactly width x height.
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
        if inner != [width, height]:
            driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def text(driver, element_id: str) -> str:
    """Rendered text of the element with this id ("" if absent).

    Read in one script call: the live page re-renders every tick, so an element found by
    one WebDriver command may be stale by the next (StaleElementReferenceException).
    """
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText.trim() : '';", element_id)


def texts(driver, css: str) -> list[str]:
    """Rendered text of every element matching ``css``, in one script call (see :func:`text`)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText.trim());", css)


def points(driver, graph_id: str, trace_name: str) -> int:
    """Non-null points of a named trace in the browser's live Plotly figure."""
    return driver.execute_script(
        "const g = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
        "const t = g && g.data && g.data.find(t => t.name === arguments[1]);"
        "return t ? t.y.filter(v => v !== null).length : 0;", graph_id, trace_name)


def severe_console_entries(driver) -> list[dict]:
    """Browser console entries at level SEVERE (JavaScript errors, failed requests)."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
