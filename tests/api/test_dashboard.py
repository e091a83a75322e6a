"""The dashboard in real headless Chromium (Debian's, driven by Playwright) against a running
gateway with traffic: it signs in, renders its charts, shows the numbers `/admin/stats` has
(the Batch API's and the per-item cache's included), and logs no console errors.
``FRUGAL_UPDATE_SCREENSHOT=1`` also refreshes ``docs/dashboard.png``."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ADMIN_KEY, ROOT, Stack, StackFactory
from tests.deferred.batch_client import chat_line, run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUESTIONS = [
    "What is the capital of France?",
    "How do I reverse a list in Python?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water?",
]
PARAPHRASES = [
    "What's the capital of France?",
    "How can I reverse a Python list?",
    "Who is the author of Pride and Prejudice?",
]
PASSAGES = ["the first passage", "the second passage", "the third passage", "the fourth passage"]
# Latency classes in the order the page draws them (`OUTCOMES` in dashboard.html).
LATENCY_ORDER = ["hit", "partial", "miss", "coalesced", "bypass", "shadow", "error"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def busy(make_stack: StackFactory) -> Stack:
    """A gateway that has served misses, exact and semantic hits, a batch of completions, a list
    of embeddings answered in part from the cache, a request that bypassed the cache and one the
    provider refused; never a batch of the Batch API."""
    stack = make_stack(
        sim_args=["--reject-containing", "POISON"], env={"FRUGAL_BATCH_WINDOW_MS": "200"}
    )
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        for text in QUESTIONS + PARAPHRASES + QUESTIONS[:2]:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
            http.post("/chat/completions", json=body).raise_for_status()
    # Threads, not asyncio: Playwright's sync API keeps an event loop in this thread.
    completions = [{"model": "gpt-4o-mini", "prompt": f"Count to {n}"} for n in range(4)]
    with ThreadPoolExecutor(len(completions)) as pool:
        answers = list(
            pool.map(lambda c: httpx.post(stack.base_url + "/completions", json=c), completions)
        )
    assert all(answer.status_code == 200 for answer in answers)
    lone = {"model": "gpt-4o-mini", "prompt": "Name the deepest lake on Earth."}  # size 1
    httpx.post(stack.base_url + "/completions", json=lone, timeout=30).raise_for_status()
    with client_of(stack) as client:
        client.embeddings.create(model="sim-embed", input=PASSAGES[:2])
        # One text cached, two not: a partial answer.
        partial = client.embeddings.with_raw_response.create(model="sim-embed", input=PASSAGES[1:])
    assert partial.headers["x-frugal-cache"] == "partial"
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        asked = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
        unread = http.post(
            "/chat/completions", json=asked, headers={"x-frugal-cache-control": "no-cache"}
        )
        assert unread.headers["x-frugal-cache"] == "bypass"
        poison = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "POISON"}]}
        assert http.post("/chat/completions", json=poison).status_code == 400
    return stack


def client_of(stack: Stack) -> OpenAI:
    return OpenAI(base_url=stack.base_url, api_key="unused", max_retries=0)


def fixed(value: float, digits: int) -> str:
    """``value.toFixed(digits)`` as the page's JavaScript writes it: the exact binary value,
    a tie rounded up (Python's format rounds a tie to even)."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def percent(share: float) -> str:
    return fixed(100 * share, 1) + "%"


def dollars(usd: float) -> str:
    """The page's ``usd``: cents from a dollar up, finer below."""
    return "$" + fixed(usd, 2 if usd >= 1 else 4 if usd >= 0.01 else 6)


def signed_in(browser: Browser, stack: Stack, errors: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(stack.gateway.url + "/dashboard")  # the sign-in form, a 401 by design
    page.fill("input[name=key]", ADMIN_KEY)
    # From here on, anything the browser reports as an error counts.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.click("button[type=submit]")
    page.wait_for_function("Number(document.body.dataset.rendered || 0) >= 1", timeout=20_000)
    return page


def test_the_dashboard_shows_what_admin_stats_says(
    browser: Browser, busy: Stack, tmp_path: Path
) -> None:
    errors: list[str] = []
    page = signed_in(browser, busy, errors)
    with busy.admin() as admin:
        stats = admin.get("/admin/stats").json()
    overall = stats["summary"]["since_start"]
    assert overall["calls_saved"] == 5  # two exact and three semantic hits
    assert page.text_content("#calls-saved") == f"{overall['calls_saved']:,}"
    assert page.text_content("#requests") == f"{overall['requests']:,}"
    assert page.text_content("#hit-rate-all") == percent(overall["hit_rate"])
    assert page.text_content("#tokens-saved") == f"{overall['tokens_saved']['total']:,}"
    assert page.text_content("#money-saved") == dollars(overall["money_saved_usd"])
    assert page.text_content("#health") == "cache ok"
    # The charts are drawn: a hit-rate line, a bar per batch size, latency bars per outcome.
    assert page.locator("#timeline path.hit-rate").count() == 1
    batch_sizes = stats["batching"]["batch_sizes"]
    assert page.locator("#batch-sizes rect.bar").count() == len(batch_sizes) >= 2
    drawn = [name for name in LATENCY_ORDER if name in overall["latency_ms"]]
    assert drawn == sorted(overall["latency_ms"], key=LATENCY_ORDER.index)
    assert page.locator("#latency rect.p50").count() == len(drawn)
    rows = page.locator("#latency-table tbody tr")
    assert [rows.nth(i).get_attribute("data-outcome") for i in range(rows.count())] == drawn
    top = page.locator("#top-prompts tbody tr")
    assert top.count() == len(stats["summary"]["top_prompts"]) == 3
    first = stats["summary"]["top_prompts"][0]
    assert top.nth(0).locator("td").nth(0).text_content() == first["prompt"]
    misses = page.locator("#recent-misses tbody tr")
    assert misses.count() == len(stats["summary"]["recent_misses"])
    assert errors == []
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("FRUGAL_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
    page.close()


def test_a_partial_list_shows_in_the_outcomes_and_the_item_hit_rate(
    browser: Browser, busy: Stack
) -> None:
    errors: list[str] = []
    page = signed_in(browser, busy, errors)
    with busy.admin() as admin:
        overall = admin.get("/admin/stats").json()["summary"]["since_start"]
    assert overall["outcomes"]["partial"] == 1
    items = overall["items"]
    assert (items["hits"], items["misses"]) == (1, 4)  # the fixture's two lists: 0 of 2, 1 of 3
    assert page.is_visible("#items") and page.is_hidden("#items-none")
    assert page.text_content("#item-hit-rate") == percent(items["hit_rate"])
    assert (
        page.text_content("#items-count") == f"{items['hits']} of {items['hits'] + items['misses']}"
    )
    row = page.locator("#latency-table tbody tr[data-outcome=partial] td")
    assert row.nth(0).text_content() == "partial"
    assert row.nth(1).text_content() == str(overall["latency_ms"]["partial"]["count"])
    assert row.nth(2).text_content() == fixed(overall["latency_ms"]["partial"]["p50"], 1)
    # More than four classes, and every bar inside the chart: it grows with its rows.
    bars = page.locator("#latency rect.p50")
    assert bars.count() == len(overall["latency_ms"]) > 4
    room = page.eval_on_selector("#latency", "svg => svg.viewBox.baseVal.height")
    lowest = page.eval_on_selector_all(
        "#latency rect.p50", "rects => Math.max(...rects.map((r) => r.y.baseVal.value + 20))"
    )
    assert lowest <= room
    assert errors == []
    page.close()


def test_the_batch_panel_says_plainly_when_no_batch_was_submitted(
    browser: Browser, busy: Stack
) -> None:
    errors: list[str] = []
    page = signed_in(browser, busy, errors)
    with busy.admin() as admin:
        assert admin.get("/admin/stats").json()["batches"]["by_status"] == {}
    assert page.is_visible("#batch-empty")
    assert "No batch has been submitted yet" in (page.text_content("#batch-empty") or "")
    assert page.is_hidden("#batch-body")
    assert page.locator("#batch-api svg:visible").count() == 0  # no empty chart
    assert page.text_content("#batch-mode") == "misses go to the provider's Batch API"
    assert errors == []
    page.close()


def test_the_batch_panel_shows_what_a_batch_saved(
    browser: Browser, make_stack: StackFactory
) -> None:
    """Open before any batch, the page shows the batch once it ends, as `/admin/stats` has it:
    of five lines one from the cache, two folded (a repeat, a paraphrase), two sent."""
    stack = make_stack(
        sim_args=["--batch-delay-s", "0.2"],
        env={"FRUGAL_BATCH_API_MODE": "provider", "FRUGAL_BATCH_API_POLL_S": "0.2"},
    )
    errors: list[str] = []
    page = signed_in(browser, stack, errors)
    assert page.is_visible("#batch-empty")
    assert page.is_visible("#items-none")  # nor a list, on this gateway
    with client_of(stack) as client:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Name a prime above 90."}]
        )
        batch = run(
            client,
            [
                chat_line("a", "What is the capital of Peru?"),
                chat_line("b", "Name a prime above 90."),
                chat_line("c", "What is the capital of Peru?"),
                chat_line("d", "What's the capital of Peru?"),
                chat_line("e", "How many legs does a spider have?"),
            ],
        )
    assert batch.status == "completed"
    section = ended_batches(stack)
    assert section["lines_since_start"] == {"hit": 1, "folded": 2, "sent": 2, "failed": 0}
    cost, live = section["cost_usd_since_start"], section["live_cost_usd_since_start"]
    assert live > cost > 0
    # The next refresh draws it, without a reload.
    seen = int(page.evaluate("document.body.dataset.rendered"))
    page.wait_for_function(f"Number(document.body.dataset.rendered) > {seen}", timeout=10_000)
    assert page.is_hidden("#batch-empty")
    assert page.is_visible("#batch-body")
    statuses = page.locator("#batch-status tbody tr")
    assert statuses.count() == 1
    assert statuses.nth(0).get_attribute("data-status") == "completed"
    assert statuses.nth(0).locator("td").nth(1).text_content() == "1"
    lines = section["lines_since_start"]
    assert figure(page, "total") == sum(lines[name] for name in ("hit", "folded", "sent")) == 5
    assert (figure(page, "hit"), figure(page, "folded"), figure(page, "sent")) == (
        lines["hit"],
        lines["folded"],
        lines["sent"],
    )
    assert page.is_hidden("#batch-lines-failed")  # no line failed
    widths = {
        result: float(page.get_attribute(f"#batch-lines rect[data-result={result}]", "width") or 0)
        for result in ("hit", "folded", "sent")
    }
    for result, width in widths.items():
        assert width / sum(widths.values()) == pytest.approx(lines[result] / 5)
    assert page.text_content("#batch-cost text.cost-label[data-cost=live]") == dollars(live)
    assert page.text_content("#batch-cost text.cost-label[data-cost=batch]") == dollars(cost)
    drawn = {
        name: float(page.get_attribute(f"#batch-cost rect[data-cost={name}]", "width") or 0)
        for name in ("live", "batch")
    }
    assert drawn["batch"] / drawn["live"] == pytest.approx(cost / live)
    assert page.text_content("#batch-saved") == dollars(live - cost)
    assert page.text_content("#batch-saved-share") == percent((live - cost) / live)
    assert errors == []
    page.close()


def ended_batches(stack: Stack, bound_s: float = 30) -> dict[str, Any]:
    """`/admin/stats` ``batches`` once a batch has ended in its counts (a batch reads as
    completed a moment before they count it; a bound on the wait, not a timing assertion)."""
    deadline = time.monotonic() + bound_s
    with stack.admin() as admin:
        while True:
            section: dict[str, Any] = admin.get("/admin/stats").json()["batches"]
            if section["finished_since_start"] or time.monotonic() > deadline:
                return section
            time.sleep(0.05)


def figure(page: Page, name: str) -> int:
    """A number of the panel's line figures (its label aside)."""
    text = page.evaluate(f"document.getElementById('batch-lines-{name}').firstChild.nodeValue")
    return int(str(text).replace(",", ""))


def test_the_dashboard_updates_itself(browser: Browser, busy: Stack) -> None:
    errors: list[str] = []
    page = signed_in(browser, busy, errors)
    before = int(page.text_content("#requests").replace(",", ""))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
    httpx.post(busy.base_url + "/chat/completions", json=body).raise_for_status()
    page.wait_for_function(
        f"document.getElementById('requests').textContent.replaceAll(',', '') == '{before + 1}'",
        timeout=10_000,
    )
    assert errors == []
    page.close()


def test_the_dashboard_needs_the_admin_key(browser: Browser, busy: Stack) -> None:
    assert httpx.get(busy.gateway.url + "/dashboard/data").status_code == 401
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.get(busy.gateway.url + "/dashboard/data", headers=bearer).status_code == 200
    page = browser.new_page()
    response = page.goto(busy.gateway.url + "/dashboard")
    assert response is not None and response.status == 401
    page.fill("input[name=key]", "not the key")
    page.click("button[type=submit]")
    assert "not the admin key" in (page.text_content("p.error") or "")
    assert page.locator("#timeline").count() == 0
    page.close()
