"""A real browser (Debian's headless Chromium) on the pages served over loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system_programs import require_programs
from tests.web.chromium import PACKAGES, PROGRAMS, chromium
from tests.web.served_node import served_node


@pytest.fixture
def browser():
    """Chromium driven by chromedriver, both from Debian (nothing downloaded)."""
    require_programs(PROGRAMS, PACKAGES)
    with chromium(1100, 2400) as driver:
        yield driver


def overflowing_tables(browser) -> list[str]:
    """The headings of the tables that do not fit the page's width (at a laptop's width
    every table, Peers' nine columns too, should fit without scrolling)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('.scroll')]"
        ".filter(e => e.scrollWidth > e.clientWidth)"
        ".map(e => e.previousElementSibling ? e.previousElementSibling.textContent : '?')")


@pytest.mark.e2e
def test_public_and_private_pages_and_pause_in_a_browser(browser, tmp_path: Path) -> None:
    """The public page renders with its charts; on the private page, pressing Pause for a
    job makes the job paused in the JSON, and giving a waiting job allowed times that
    contain now makes it run. Screenshots go to the test's folder (the docs' pictures come
from a real run instead: docs/make_pictures.py)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with served_node(tmp_path / "node") as node:
        browser.get(node.url + "governor")
        assert browser.title == "Backups of alice-laptop"
        assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart svg polyline")) == 6
        assert browser.find_element(By.ID, "job-photos").get_attribute("data-state") == "running"
        assert not browser.find_elements(By.TAG_NAME, "form")
        assert overflowing_tables(browser) == []
        browser.save_screenshot(str(tmp_path / "public.png"))

        browser.get(node.private_url)
        assert browser.title == "Backups of alice-laptop (private)"
        assert overflowing_tables(browser) == []
        browser.save_screenshot(str(tmp_path / "private-before.png"))
        browser.find_element(
            By.CSS_SELECTOR, "#job-photos form[action='pause'] button").click()
        # The POST's redirect replaces the page: an element found just before may go stale.
        WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.ID, "job-photos").get_attribute("data-state")
            == "paused")
        assert browser.current_url == node.private_url  # the 303 led back to the page
        browser.save_screenshot(str(tmp_path / "private-after.png"))
        assert {j["name"]: j["state"] for j in node.public_json()["jobs"]}["photos"] == "paused"

        # mail waits outside its window: give it one that contains now, and it runs.
        browser.find_element(By.CSS_SELECTOR, "#job-mail details:last-of-type summary").click()
        field = browser.find_element(By.CSS_SELECTOR, "input[aria-label='mail allowed_times']")
        field.clear()
        field.send_keys("0000-2400")
        field.find_element(By.XPATH, "./ancestor::form//button[text()='Set']").click()
        WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.ID, "job-mail").get_attribute("data-state")
            == "running")
        assert {j["name"]: j["state"] for j in node.public_json()["jobs"]}["mail"] == "running"
        assert browser.find_elements(
            By.CSS_SELECTOR, "#job-mail button[formaction='unset']"), "shown as overridden"
        assert "POST /governor/[CENSORED]/pause 303" in node.log_text()
        assert node.token not in node.log_text()

    for name in ("public.png", "private-before.png", "private-after.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
