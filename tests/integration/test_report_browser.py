"""The HTML report in a real headless browser (Debian's Chromium driven by Selenium through the system
chromedriver; nothing is downloaded): it loads from file:// without JS errors, shows every system, its
images load, and the filters change the visible item rows to the counts computed here from the predictions.

Needs `chromium chromium-driver` (apt; `make setup` installs them when run as root) and the pip package
`selenium`: a missing piece is a failure that says how to install it, never a skip."""
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from evals import config_dir
from evals.runner import run_sweep
from evals.store import read_predictions

pytestmark = [pytest.mark.slow, pytest.mark.java]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TINY = ["synthetic.n_train=6", "synthetic.n_val=2", "synthetic.n_test=4", "synthetic.max_duration=24",
        "progress=false", "stats.resamples=100", "metrics.caption=[ROUGE-L,CIDEr]",
        "table.columns.summarization=[ROUGE-L,CIDEr]", "+systems.echo._target_=tests.helpers.SlowEcho"]


def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: install Debian's Chromium and its driver with "
                    "`sudo apt-get install -y chromium chromium-driver` (or run `make setup` as root)",
                    pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the pip package selenium is not installed: pip install 'selenium==4.51.0' "
                    "(part of the dev extra: pip install -e '.[dev]')", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the system driver, explicitly: Selenium Manager must not look for (or download) another one
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def expected_rows(cfg, out: Path) -> list[dict]:
    """Every item with its benchmark, kind and whether the systems' answers differ, from the samples and
    the prediction stores (QA: different choices, a failure counting as none; text: different outputs)."""
    rows = []
    for b, bcfg in cfg.benchmarks.items():
        stores = [read_predictions(d / "predictions.jsonl") for d in (out / b).iterdir() if d.is_dir()]
        for s in instantiate(bcfg).load():
            preds = [st[s.uid] for st in stores]
            ans = {None if p.failure else (p.choice if s.task == "mcqa" else " ".join((p.text or "").split()))
                   for p in preds}
            rows.append({"bench": b, "kind": s.category or "", "disagree": len(preds) > 1 and len(ans) > 1})
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_browser")
    cfg = compose_cfg([f"paths.root={tmp}", f"out_dir={tmp / 'out'}", *TINY, "sweep.frames=[2,4]"])
    summary = run_sweep(cfg)               # a frame sweep: its plot is a figure of the 4-frame report
    assert summary["report"] is not None, (Path(summary["out"]) / "report_error.txt").read_text()
    return cfg, summary


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("compare", overrides=overrides)


def test_report_in_headless_chromium(report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    cfg, summary = report
    index = Path(summary["report"])
    rows = expected_rows(cfg, Path(summary["out"]))
    driver = browser()
    try:
        driver.get(index.as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "shown").text.strip())
        # every image (plots, thumbnails) loaded from its relative path
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return Array.from(document.images).every(i => i.complete)"))
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
        assert not broken
        assert driver.execute_script("return document.images.length") >= 4 + 4 * len(rows)
        assert driver.execute_script(
            "return Array.from(document.images).some(i => i.src.endsWith('_sweep.png') && i.naturalWidth > 300)")

        shown = [e.get_attribute("data-system") for e in driver.find_elements(By.CSS_SELECTOR, "#comparison tr.sysrow")]
        assert shown == list(summary["table"].rows) and set(shown) == {"train_prior", "first_option", "echo"}

        def visible():
            return sum(r.is_displayed() for r in driver.find_elements(By.CSS_SELECTOR, "#items tr.item"))

        kind, bench = Select(driver.find_element(By.ID, "f-kind")), Select(driver.find_element(By.ID, "f-bench"))
        disagree = driver.find_element(By.ID, "f-disagree")
        assert visible() == len(rows)
        n_long = sum(r["kind"] == "long-range" for r in rows)
        kind.select_by_value("long-range")
        assert visible() == n_long and 0 < n_long < len(rows)
        assert driver.find_element(By.ID, "shown").text == f"{n_long} of {len(rows)} items shown"
        disagree.click()
        n = sum(r["kind"] == "long-range" and r["disagree"] for r in rows)
        assert visible() == n and n < n_long
        kind.select_by_value("*")
        n_dis = sum(r["disagree"] for r in rows)
        assert visible() == n_dis and n < n_dis < len(rows)
        bench.select_by_value("synthetic_qa")
        assert visible() == sum(r["disagree"] and r["bench"] == "synthetic_qa" for r in rows)
        disagree.click()
        assert visible() == sum(r["bench"] == "synthetic_qa" for r in rows)

        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
