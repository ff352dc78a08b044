"""The demo storefront and dashboard in headless Chromium against `currents up --demo`.

One shopper's story, step by step, each step screenshotted: pick a shopper; view items of
one category and see the recommendations turn to it within 2 s; leave a cart alone and see
the abandonment coupon; buy and see the bought item leave the recommendations. Then the
dashboard, and what the page's key may and may not do."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.generator import CATEGORIES
from tests.e2e.conftest import Demo, Tab
from tests.integration.conftest import poll

pytestmark = pytest.mark.integration

REC_ITEMS = "[data-testid=rec-item]"
# The demo's own cart-abandonment campaign waits one minute (examples/campaigns.yaml); the
# test loads one of its own that waits 6 s, with no holdout so the shopper is never held out.
E2E_CAMPAIGN = {
    "name": "E2E cart abandonment",
    "trigger": {"type": "cart_abandoned", "delay_minutes": 0.1},
    "condition": "cart.value >= 1",
    "action": {
        "message": "Still thinking it over? Here is 10% off your cart",
        "discount_percent": 10,
        "coupon_code": "E2ECART",
        "unique_coupon": True,
    },
    "guardrails": {"priority": 50, "holdout": 0},
}


def rec_categories(page: Any) -> list[str]:
    return page.eval_on_selector_all(REC_ITEMS, "els => els.map(e => e.dataset.category)")


def rec_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(REC_ITEMS, "els => els.map(e => e.dataset.itemId)")


def test_shopper_journey(demo: Demo, tab: Tab) -> None:
    page = tab.page
    with demo.admin() as admin:
        assert admin.put("/v1/campaigns/e2e-cart", json=E2E_CAMPAIGN).status_code in {200, 201}

    # 1. pick a shopper: a synthetic one (with a profile), then a new anonymous one.
    page.goto(demo.api_url + "/")
    page.wait_for_selector("[data-testid=product-card]")
    page.select_option("[data-testid=shopper-select]", "user-00000")
    page.wait_for_selector("[data-testid=profile-tier]:not(:text-is('-'))")
    panel = page.inner_text("[data-testid=profile-panel]")
    assert "tier" in panel and "lifecycle" in panel and "RFM" in panel
    tab.shot("synthetic-shopper-profile")

    page.select_option("[data-testid=shopper-select]", "__new__")
    shopper = page.input_value("[data-testid=shopper-select]")
    assert shopper.startswith("anon-")
    page.check("#consent")  # marketing consent: the campaigns may then send coupons
    page.wait_for_selector(REC_ITEMS)
    before = Counter(rec_categories(page))
    tab.shot("new-anonymous-shopper")

    # 2. view three items of one category: the row turns to that category within 2 s.
    categories = page.eval_on_selector_all(
        "[data-testid=category-filter]", "els => els.map(e => e.dataset.category)"
    )
    # A category of the synthetic catalog (other tests may add their own, unvisited ones).
    category = min((c for c in categories if c in CATEGORIES), key=lambda c: (before[c], c))
    assert before[category] <= 1, before
    page.click(f"[data-testid=category-filter][data-category={category}]")
    page.wait_for_selector(f"[data-testid=product-card][data-category={category}]")
    cards = page.locator("[data-testid=product-card]")
    for index in range(3):
        cards.nth(index).click()
    clicked = time.monotonic()
    try:
        page.wait_for_function(
            """([selector, category]) => {
                const cats = [...document.querySelectorAll(selector)].map(e => e.dataset.category);
                const same = cats.filter(c => c === category).length;
                return cats.length >= 4 && same >= 0.75 * cats.length;
            }""",
            arg=[REC_ITEMS, category],
            timeout=2000,
        )
    except PlaywrightTimeout:
        tab.shot("recommendations-did-not-turn")
        pytest.fail(f"after 2 s the row is {rec_categories(page)}, not mostly {category!r}")
    took = time.monotonic() - clicked
    after = Counter(rec_categories(page))
    print(f"recommendations turned to {category!r} {took:.2f}s after the last click: {after}")
    assert after[category] >= 0.75 * sum(after.values()), after
    assert took < 2.0
    tab.shot(f"recommendations-turned-to-{category}")

    # 3. add a recommended item to the cart and leave it: the abandonment coupon appears.
    page.locator(REC_ITEMS).first.click()
    page.wait_for_selector("[data-testid=product-view]:not(.hidden)")
    page.click("[data-testid=add-to-cart]")
    added = time.monotonic()
    page.wait_for_selector("[data-testid=promotion-banner]:has-text('E2ECART')", timeout=25_000)
    banner = page.locator("[data-testid=promotion-banner]")
    assert banner.get_attribute("data-campaign-id") == "e2e-cart"
    print(f"cart-abandonment coupon shown {time.monotonic() - added:.1f}s after add-to-cart")
    tab.shot("cart-abandoned-coupon")

    # 4. buy a recommended item: it leaves the recommendations.
    bought = rec_ids(page)[0]
    page.locator(f"{REC_ITEMS}[data-item-id='{bought}']").click()
    page.wait_for_selector(f"[data-testid=product-view][data-item-id='{bought}']")
    page.click("[data-testid=buy-now]")
    purchased = time.monotonic()
    page.wait_for_function(
        """([selector, item]) => ![...document.querySelectorAll(selector)]
            .some(e => e.dataset.itemId === item)""",
        arg=[REC_ITEMS, bought],
        timeout=5000,
    )
    page.wait_for_selector("[data-testid=profile-rfm]:has-text('(1 orders')")
    print(f"bought item left the recommendations {time.monotonic() - purchased:.2f}s after buying")
    with demo.as_page() as client:
        served = client.get(f"/v1/users/{shopper}/recommendations", params={"n": 50}).json()
    assert bought not in [item["item_id"] for item in served["items"]]
    assert page.locator("[data-testid=similar-items]").is_visible()
    tab.shot("bought-item-left-recommendations")

    # The page's impressions and clicks reached the demo experiment's stats.
    def experiment_counts() -> dict[str, int] | None:
        with demo.admin() as admin:
            variants = admin.get("/v1/experiments/demo-blend/stats").json()["variants"]
        totals = {k: sum(v[k] for v in variants) for k in ("impressions", "clicks", "purchases")}
        return totals if totals["clicks"] >= 2 and totals["purchases"] >= 1 else None

    counts = poll(experiment_counts, timeout_s=5, what="experiment stats from the page")
    assert counts["impressions"] >= 3

    # Nothing came from outside this origin, and no script failed.
    assert [url for url in tab.requests if not url.startswith(demo.api_url)] == []
    assert tab.errors == []


def test_dashboard_shows_live_numbers(demo: Demo, tab: Tab) -> None:
    store = tab.page.context.new_page()  # a shopper in another tab: recommendation traffic
    store.goto(demo.api_url + "/")
    page = tab.page
    page.goto(demo.api_url + "/dashboard")
    page.wait_for_selector("[data-testid=dashboard-status]:has-text('public metrics only')")
    # Two scrapes make a rate. A steady series draws a flat line, whose zero-height box
    # Playwright calls hidden: chart paths are awaited attached.
    page.wait_for_selector("[data-testid=chart-events] path[data-points]", state="attached")
    assert page.inner_text("[data-testid=dlq-count]").strip().isdigit()
    page.fill("[data-testid=admin-key]", demo.admin_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("[data-testid=dashboard-status]:has-text('admin data on')")
    page.wait_for_selector("[data-testid=campaign-stats] tr[data-campaign=welcome]")
    page.wait_for_selector("[data-testid=experiment-stats] tr[data-experiment=demo-blend]")
    page.wait_for_selector("[data-testid=segment-sizes] .bar[data-label=cart-holders]")
    page.wait_for_selector("[data-testid=consumer-lag]:text-matches('^[0-9]+$')")
    page.wait_for_selector("[data-testid=chart-lag] path[data-points]", state="attached")
    page.wait_for_selector("[data-testid=rec-latency]:text-matches('^[0-9.]+ / [0-9.]+ ms$')")
    page.wait_for_selector("[data-testid=chart-latency] path.line2[data-points]", state="attached")
    # The admin key stays in this tab's sessionStorage only, and the storefront tab never sees it.
    assert page.evaluate("sessionStorage.getItem('currents.admin.key')") == demo.admin_key
    assert demo.admin_key not in page.evaluate("JSON.stringify(localStorage)")
    assert store.evaluate("sessionStorage.getItem('currents.admin.key')") is None
    tab.shot("dashboard")
    assert [url for url in tab.requests if not url.startswith(demo.api_url)] == []
    assert tab.errors == []


def test_page_key_reads_and_ingests_but_is_not_admin(demo: Demo) -> None:
    with demo.as_page() as client:
        assert client.get("/v1/users/user-00000/summary").status_code == 200
        assert client.get("/v1/items", params={"limit": 5}).json()["total"] >= 5
        assert client.get("/v1/items", params={"limit": 201}).status_code == 422
        for admin_only in ("/v1/users/user-00000/profile", "/v1/dashboard", "/v1/campaigns"):
            assert client.get(admin_only).status_code == 403, admin_only
        for path in ("/", "/dashboard"):
            response = client.get(path)
            assert response.status_code == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert "connect-src 'self'" in response.headers["content-security-policy"]
        assert demo.admin_key not in client.get("/demo-config.js").text
