"""A headless Chromium for the web UI tests (tests/e2e/test_web_ui.py), driven with selenium.

Uses Debian's `chromium` and `chromium-driver` (scripts/install-deps.sh) and selenium from the
venv (scripts/setup-venv.sh); `require()` skips the calling test with what is missing, or fails
it under CI=true (asrdtest.missing).
Selenium Manager is never asked to download anything: the driver path is given explicitly.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)


def _which(names) -> Optional[str]:
    for n in names:
        p = shutil.which(n) or (f"/usr/bin/{n}" if os.access(f"/usr/bin/{n}", os.X_OK) else None)
        if p:
            return p
    return None


def skip_reason() -> Optional[str]:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (scripts/setup-venv.sh installs it)"
    if not _which(CHROMIUM_NAMES):
        return "chromium is not installed (apt-get install chromium; scripts/install-deps.sh)"
    if not _which(DRIVER_NAMES):
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def require():
    """Ends the calling test when the browser cannot run here: a skip, or a failure under CI=true
    (asrdtest.missing)."""
    why = skip_reason()
    if why:
        import asrdtest
        asrdtest.missing(f"the browser tests cannot run: {why}")


def console_errors(drv) -> list:
    """The browser console's error entries since the last call (reading the log empties it)."""
    return [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def console(drv) -> str:
    """The browser console since the last read, for a failure message ("" when unreadable)."""
    try:
        return "\nbrowser console:\n" + "\n".join(
            f"  {e['level']}: {e['message']}" for e in drv.get_log("browser"))
    except Exception:  # noqa: BLE001
        return ""


def start(width: int = 1280, height: int = 1000, lang: str = "en-US", download_dir: Path = None):
    """A new headless Chromium session (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _which(CHROMIUM_NAMES)
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--mute-audio", "--autoplay-policy=no-user-gesture-required",
              "--no-first-run", "--disable-extensions", "--disable-background-networking",
              f"--window-size={width},{height}", f"--lang={lang}"):
        opts.add_argument(a)
    prefs = {"intl.accept_languages": lang}
    if download_dir:
        prefs.update({"download.default_directory": str(download_dir),
                      "download.prompt_for_download": False})
    opts.add_experimental_option("prefs", prefs)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_which(DRIVER_NAMES))
    drv = webdriver.Chrome(options=opts, service=service)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(30)
    return drv


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.1, on_fail: Callable[[], str] = None):
    """Polls cond() until it returns something truthy (returned); AssertionError after timeout.
    Exceptions from cond (stale elements, not yet present) count as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - DOM churn while the page re-renders
            last = e
        time.sleep(interval)
    extra = on_fail() if on_fail else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         f"{f' (last error: {last!r})' if last else ''}{extra}")
