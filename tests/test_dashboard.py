"""The dashboard in a real headless Chromium: the numbers shown, the filters, a screenshot."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.test_ledger import emit, ledger_config, tracer

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (./scripts/test installs them)")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_dashboard_shows_the_ledger_and_filters_it(ports, collector, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = ledger_config(ports, tmp_path / "d.duckdb")
    config.sections["extensions"]["cost_api"]["trace_url_template"] = "http://jaeger.example:16686/trace/{trace_id}"
    config.processor("genai_budget", budgets=[{"id": "acme-daily", "match": {"customer": "acme"}, "limit": 0.02,
                                               "period": "daily"}])
    config.pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution", "genai_budget",
                                          "batch"], exporters=["duckdb"])
    collector(config, ports["health"])
    for tenant, calls in (("acme", 4), ("globex", 2)):
        provider, _ = tracer(ports, tenant)
        emit(provider, calls)
        provider.shutdown()

    page = f"http://127.0.0.1:{ports['api']}/"
    with urllib.request.urlopen(page, timeout=5) as reply:  # served from the package, nothing from a CDN
        html = reply.read().decode()
    assert "http" not in html.replace("http-equiv", "")
    browser.get(page)
    wait = WebDriverWait(browser, 20)

    def loaded(expected_exact: str):
        return wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loading") == "false"
                          and d.find_element(By.ID, "total-cost").get_attribute("data-exact") == expected_exact)

    loaded("0.021")  # 6 calls × $0.0035
    assert browser.find_element(By.ID, "total-cost").text == "0.0210 USD"
    assert not browser.find_element(By.ID, "unpriced-count").is_displayed()  # every call priced
    budget = browser.find_element(By.CSS_SELECTOR, ".budget[data-id=acme-daily]")  # 4 × 0.0035 of 0.02: 70%
    assert budget.find_element(By.CSS_SELECTOR, ".status").text == "warning"
    assert "0.0140 of 0.0200 USD · 0.00600 left · 70.0%" in budget.text
    assert budget.find_element(By.CSS_SELECTOR, ".bar").get_attribute("aria-valuenow") == "70.0"
    assert len(budget.find_elements(By.CSS_SELECTOR, ".bar .mark")) == 2  # the 50% and 80% thresholds
    meta = budget.find_element(By.CSS_SELECTOR, ".meta").text
    assert "customer = acme" in meta and "{" not in meta and "UTC" in meta  # the reset time names its zone
    assert browser.execute_script(  # the row's text is not painted in the status colour: only the bar's fill
        "return getComputedStyle(document.querySelector('.budget .budget-head')).backgroundColor") == \
        "rgba(0, 0, 0, 0)"
    assert "UTC" in browser.find_element(By.CSS_SELECTOR, "#expensive tr:nth-child(2) td").text
    # an embedding call's cost, never in scientific notation (it was 3.20e-7)
    assert browser.execute_script("return [money('3.2e-7'), money('-0.00018'), money('1234.5')]") == [
        "0.000000320", "-0.000180", "1234.50"]
    assert browser.find_element(By.ID, "total-calls").text == "6"
    rows = browser.find_elements(By.CSS_SELECTOR, "table[data-dimension=customer] tr.row")
    assert [(r.get_attribute("data-value"), r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows] == [
        ("acme", "0.0140 USD"), ("globex", "0.00700 USD")]  # every figure with its currency
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart svg rect")) >= 1
    link = browser.find_element(By.CSS_SELECTOR, "#expensive a")
    assert link.get_attribute("href").startswith("http://jaeger.example:16686/trace/")

    rows[1].click()  # filter the whole page to globex
    loaded("0.007")
    assert browser.find_element(By.CSS_SELECTOR, "#filters .chip").text.startswith("customer = globex")
    assert browser.find_element(By.ID, "total-calls").text == "2"
    assert "prices: genai-prices 0.2.3" in browser.find_element(By.ID, "footer").text  # which prices these are
    assert "filter%5Bcustomer%5D=globex" in browser.current_url  # the view is in the address: shareable
    browser.get(browser.current_url)  # a reload (or the link opened elsewhere) shows the same view
    loaded("0.007")
    assert browser.find_element(By.CSS_SELECTOR, "#filters .chip").text.startswith("customer = globex")
    models = browser.find_elements(By.CSS_SELECTOR, "table[data-dimension=model] tr.row td:nth-child(2)")
    assert [m.text for m in models] == ["2"]

    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    browser.find_element(By.CSS_SELECTOR, "#filters .chip").click()  # remove the filter
    loaded("0.021")

    provider, _ = tracer(ports, "acme")
    emit(provider, 1, **{"gen_ai.request.model": "gpt-unknown-9"})  # a model without a price
    provider.shutdown()
    browser.get(page)
    loaded("0.021")
    assert browser.find_element(By.ID, "unpriced-count").text == "1 unpriced call"  # in the header, in range
