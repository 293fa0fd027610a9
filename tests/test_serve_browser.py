"""The web page of ``medtune serve`` in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make dev``) driven by Selenium against a real server process on a
free loopback port, serving the golden tiny note pipeline.

Load the page, enter the token, paste a note, press Analyze: the highlighted spans and their offsets
are the API's; a negated finding is struck through; an entity's details open from the keyboard; a bad
token shows the coded error. A screenshot is saved under ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

from serve_helpers import GOLDEN, ServeProcess

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytest.importorskip("fastapi")

ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "browser-" + secrets.token_urlsafe(24)
NOTE = ("Mother had breast cancer.\nNo fever but has cough. \U0001F600 The gene causes a rare syndrome "
        "with fever.\nShe denies cough but has a protein deficiency.")


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServeProcess([f"note={GOLDEN / 'pipeline-note.yaml'}", f"ner={GOLDEN / 'ner-linear'}", "--mode", "fp32"],
                        tmp_path_factory.mktemp("serve") / "serve.log", TOKEN)
    yield proc
    code = proc.terminate()
    proc.kill()
    assert code == 0, proc.log()


@pytest.fixture(scope="module")
def browser():
    chromium = _binary("chromium", "chromium-browser")
    driver_path = _binary("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make dev` installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait(driver, condition, limit=60):
    try:
        return WebDriverWait(driver, limit, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(f"the page did not get there; status: "
                             f"{d_text(driver, 'status')!r}, error: {d_text(driver, 'error')!r}") from None


def d_text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def paste(driver, text):
    """Put the note into the text box as a paste does (send_keys cannot type characters beyond the BMP)."""
    box = driver.find_element(By.ID, "note")
    driver.execute_script("arguments[0].value = arguments[1];"
                          "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", box, text)


def enter_token(driver, token):
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    field.send_keys(Keys.TAB)  # the change event reloads the list of models


def analyzed_marks(driver):
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#text mark.ent')).map(m => ({
            start: Number(m.dataset.start), end: Number(m.dataset.end), label: m.dataset.label,
            text: m.querySelector('.mention').textContent, classes: Array.from(m.classList)}));""")


def test_the_page_highlights_the_spans_the_api_returns(server, browser):
    browser.get(server.url + "/")
    assert "does not replace clinical judgement" in d_text(browser, "disclaimer")
    enter_token(browser, TOKEN)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2)
    select = browser.find_element(By.ID, "model")
    assert [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")] == ["note", "ner"]
    paste(browser, NOTE)
    browser.find_element(By.ID, "analyze").click()
    wait(browser, lambda d: "entities" in d_text(d, "status"))

    status, api = server.request("POST", "/v1/analyze", {"model": "note", "text": NOTE})
    assert status == 200
    spans = api["documents"][0]["spans"]
    assert len(spans) >= 3
    marks = analyzed_marks(browser)
    assert [(m["start"], m["end"], m["label"]) for m in marks] == [(s["start"], s["end"], s["label"]) for s in spans]
    for mark in marks:  # the highlighted text is the submitted text at the API's offsets (an emoji before some)
        assert mark["text"] == NOTE[mark["start"]:mark["end"]]
    negated = [(s["start"], s["end"]) for s in spans if s["attributes"].get("negated")]
    assert negated
    assert [(m["start"], m["end"]) for m in marks if "negated" in m["classes"]] == negated
    text_box = browser.find_element(By.ID, "text")
    assert text_box.text.replace("\n", "").startswith("Mother had breast cancer")
    rows = browser.find_elements(By.CSS_SELECTOR, "#entities tbody tr")
    assert len(rows) == len(spans)
    legend = browser.find_element(By.ID, "legend").text
    assert "Disease" in legend and "negated" in legend
    assert not browser.find_element(By.ID, "download").get_attribute("disabled")

    # keyboard: Tab to the first entity, Enter opens its details
    first = browser.find_elements(By.CSS_SELECTOR, "#text mark.ent")[0]
    browser.execute_script("arguments[0].focus();", first)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    details = d_text(browser, "details")
    assert spans[0]["label"] in details and f"{spans[0]['start']}–{spans[0]['end']}" in details

    # nothing fetched from elsewhere, no script error, no CSP violation
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert resources and all(url.startswith(server.url + "/") for url in resources)
    console = [entry["message"] for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
               and "/v1/models - Failed to load resource" not in entry["message"]]  # the probe before the token
    assert not console, console

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 10_000


def test_a_bad_token_shows_the_coded_error(server, browser):
    browser.get(server.url + "/")
    enter_token(browser, "wrong-" + "x" * 24)
    paste(browser, NOTE)
    browser.find_element(By.ID, "analyze").click()
    wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    error = d_text(browser, "error")
    assert "[E610]" in error and "bearer token" in error and "Fix:" in error
    assert not browser.find_elements(By.CSS_SELECTOR, "#text mark.ent")
    assert TOKEN not in server.log() and "Mother had breast cancer" not in server.log()
