"""The dashboard in a real headless Chromium: the numbers shown, the filters, the explanation of a cost, the
layout from 1024 to 1920 px, screenshots."""

from __future__ import annotations

import shutil
import urllib.request

import pytest

from tests.test_ledger import emit, ledger_config, tracer

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# what the page must never show: an element wider than its card, a number in scientific notation, a budget bar
# whose fill differs from its utilisation
LAYOUT_PROBLEMS = """
const problems = [];
for (const box of document.querySelectorAll(".card, .panel, #explain[open]")) {
  const outer = box.getBoundingClientRect();
  if (box.scrollWidth > box.clientWidth + 1) problems.push(`${box.id || box.className} scrolls sideways`);
  for (const inner of box.querySelectorAll("*")) {
    const rect = inner.getBoundingClientRect();
    if (rect.width && (rect.right > outer.right + 1 || rect.left < outer.left - 1))
      problems.push(`${inner.tagName}.${inner.className} overflows ${box.id || box.className}`);
  }
}
// where the page shows numbers (trace ids elsewhere are hex: 1234e567… would read as a number)
const text = [...document.querySelectorAll(".num, .value, .amounts, .change, .meta, svg text, #explain td")]
  .map((node) => node.textContent).join("\\n");
const scientific = /\\b\\d+(\\.\\d+)?[eE][+-]?\\d+\\b/g;
for (const match of text.match(scientific) || []) problems.push(`scientific notation: ${match}`);
for (const bar of document.querySelectorAll(".budget .bar")) {
  const fill = bar.querySelector(".fill").getBoundingClientRect().width / bar.getBoundingClientRect().width;
  const expected = Math.min(1, Number(bar.getAttribute("aria-valuenow")) / 100);
  if (Math.abs(fill - expected) > 0.01) problems.push(`budget bar filled ${fill} for ${expected}`);
}
return problems;
"""
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

    browser.find_element(By.CSS_SELECTOR, "#filters .chip").click()  # remove the filter
    loaded("0.021")

    # explain a cost: one call's tokens × unit prices, the price it matched, what the ledger holds, the trace
    browser.find_element(By.CSS_SELECTOR, "#expensive tr.call").click()
    dialog = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#explain[open]"))
    lines = [line.text for line in dialog.find_elements(By.CSS_SELECTOR, "tr.line")]
    assert lines == ["input tokens 1,000 × 2.5 USD / 1M = 0.00250 USD",
                     "output tokens 100 × 10 USD / 1M = 0.00100 USD"]
    assert dialog.find_element(By.CSS_SELECTOR, "tr.total td.num").get_attribute("data-exact") == "0.0035"
    assert "price of openai / gpt-4o, standard tier, from genai-prices (genai-prices 0.2.3)" in dialog.text
    assert "the ledger holds 0.00350 USD, priced with genai-prices 0.2.3" in dialog.text
    assert dialog.find_element(By.LINK_TEXT, "open the trace").get_attribute("href").startswith(
        "http://jaeger.example:16686/trace/")
    assert browser.execute_script(LAYOUT_PROBLEMS) == []
    dialog.find_element(By.CSS_SELECTOR, "button.close").click()

    # from a small laptop to a wide screen: nothing overflows its card, no scientific notation, true bars
    for width in (1024, 1920):
        browser.set_window_size(width, 1800)
        browser.get(page)
        loaded("0.021")
        assert browser.execute_script(LAYOUT_PROBLEMS) == [], (width, browser.execute_script(LAYOUT_PROBLEMS))
        assert browser.save_screenshot(str(tmp_path / f"dashboard-{width}.png"))
    browser.execute_script("document.querySelector('#expensive td.num').textContent = '3.2e-7 USD';"
                           "document.querySelector('.budget .bar .fill').style.width = '10%';"
                           "document.querySelector('#expensive td').style.display = 'inline-block';"
                           "document.querySelector('#expensive td').style.width = '5000px'")
    problems = browser.execute_script(LAYOUT_PROBLEMS)  # the checks above see what they look for
    assert "scientific notation: 3.2e-7" in problems and any(p.startswith("budget bar filled 0.") for p in problems)
    assert any("overflows" in p or "scrolls sideways" in p for p in problems)

    provider, _ = tracer(ports, "acme")
    emit(provider, 1, **{"gen_ai.request.model": "gpt-unknown-9"})  # a model without a price
    provider.shutdown()
    browser.get(page)
    loaded("0.021")
    assert browser.find_element(By.ID, "unpriced-count").text == "1 unpriced call"  # in the header, in range
