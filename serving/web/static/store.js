// The demo storefront: every click is a real event (POST /v1/events); the rows poll the
// API and redraw when the engine's answer changes. No framework, no build step.
"use strict";

(() => {
  const { get, post, uid, el } = Currents;
  const $ = (id) => document.getElementById(id);
  const SYNTHETIC_SHOPPERS = 12;
  const REC_COUNT = 8;
  const PAGE = 48;

  const state = {
    key: Currents.keyFor("store"),
    shopper: "",
    session: uid("s-"),
    catalog: new Map(),
    categories: [],
    category: "",
    offset: 0,
    product: null,
    carts: new Map(), // shopper -> Map(product_id -> line)
    consent: new Map(),
    shown: { id: "", signature: "" },
    promotionsSeen: new Set(),
    busy: {},
  };

  // --- events ----------------------------------------------------------------------------
  function envelope(type, properties) {
    const who = state.shopper.startsWith("anon-")
      ? { anonymous_id: state.shopper }
      : { user_id: state.shopper };
    return {
      event_id: uid("web-"),
      type,
      ...who,
      session_id: state.session,
      channel: "web",
      timestamp: new Date().toISOString(),
      properties,
    };
  }

  async function send(...events) {
    try {
      await post("/v1/events", state.key, events);
      for (const event of events) logEvent(event);
    } catch (error) {
      handleError(error);
    }
    // The worker applies events within a few hundred ms: look again soon, then poll.
    setTimeout(refreshAll, 250);
    setTimeout(refreshAll, 700);
  }

  function logEvent(event) {
    const product = event.properties.product_id || "";
    const item = $("log").insertBefore(
      el("li", { text: `${event.type} ${product}`.trim() }),
      $("log").firstChild,
    );
    item.dataset.type = event.type;
    while ($("log").children.length > 14) $("log").lastChild.remove();
  }

  function productProps(item) {
    return {
      product_id: item.item_id,
      category: item.category,
      brand: item.brand,
      price: item.price ?? 0,
    };
  }

  function cart() {
    if (!state.carts.has(state.shopper)) state.carts.set(state.shopper, new Map());
    return state.carts.get(state.shopper);
  }

  // --- actions ---------------------------------------------------------------------------
  function view(itemId, recommendationId) {
    const item = state.catalog.get(itemId) || { item_id: itemId, title: itemId };
    state.product = item;
    renderProduct();
    const events = [];
    if (recommendationId) {
      events.push(envelope("product_clicked", {
        product_id: itemId, recommendation_id: recommendationId,
      }));
    }
    events.push(envelope("product_viewed", productProps(item)));
    send(...events);
  }

  function addToCart() {
    const item = state.product;
    if (!item) return;
    const line = cart().get(item.item_id) || { ...productProps(item), quantity: 0 };
    line.quantity += 1;
    cart().set(item.item_id, line);
    renderCart();
    send(envelope("product_added", { ...productProps(item), quantity: 1 }));
  }

  function buy() {
    const item = state.product;
    if (!item) return;
    if (!cart().has(item.item_id)) {
      cart().set(item.item_id, { ...productProps(item), quantity: 1 });
    }
    const products = [...cart().values()];
    const revenue = products.reduce((sum, line) => sum + line.price * line.quantity, 0);
    cart().clear();
    renderCart();
    send(
      envelope("checkout_started", { products }),
      envelope("order_completed", {
        order_id: uid("o-"),
        products,
        revenue: Math.round(revenue * 100) / 100,
        currency: "EUR",
      }),
    );
  }

  function chooseShopper(id) {
    state.shopper = id;
    state.session = uid("s-");
    state.shown = { id: "", signature: "" };
    localStorage.setItem("currents.store.shopper", id);
    $("consent").checked = state.consent.get(id) || false;
    $("profile-id").textContent = id;
    $("recs").replaceChildren();
    $("banner").classList.add("hidden");
    renderCart();
    refreshAll();
  }

  // --- rendering -------------------------------------------------------------------------
  function hue(text) {
    let h = 0;
    for (const c of text || "") h = (h * 31 + c.charCodeAt(0)) % 360;
    return h;
  }

  function money(value) {
    return value == null ? "" : value.toFixed(2) + " EUR";
  }

  function card(itemId, testid, extra) {
    const item = state.catalog.get(itemId) || { item_id: itemId, title: itemId, category: "" };
    const swatch = el("div", { class: "swatch" });
    swatch.style.background = `hsl(${hue(item.category)} 60% 82%)`;
    const node = el(
      "div",
      {
        class: "card" + (item.in_stock === false ? " oos" : ""),
        "data-testid": testid,
        "data-item-id": item.item_id,
        "data-category": item.category || "",
        title: item.title,
      },
      swatch,
      el("div", { class: "title", text: item.title }),
      el("div", { class: "meta", text: `${item.category || "?"} · ${money(item.price)}` }),
      extra,
    );
    return node;
  }

  function renderFilters() {
    const buttons = ["", ...state.categories].map((category) =>
      el("button", {
        class: category === state.category ? "active" : "",
        "data-testid": "category-filter",
        "data-category": category,
        text: category || "all",
        onclick: () => {
          state.category = category;
          state.offset = 0;
          renderFilters();
          loadGrid(false);
        },
      }),
    );
    $("filters").replaceChildren(...buttons);
  }

  function renderProduct() {
    const item = state.product;
    $("product-view").classList.toggle("hidden", !item);
    if (!item) return;
    $("product-view").dataset.itemId = item.item_id;
    $("pv-title").textContent = item.title;
    $("pv-meta").textContent =
      `${item.category} · ${item.brand || ""} · ${item.in_stock === false ? "out of stock" : "in stock"}`;
    $("pv-price").textContent = money(item.price);
    $("similar").replaceChildren(el("div", { class: "empty", text: "loading…" }));
    refreshSimilar();
  }

  function renderCart() {
    const lines = [...cart().values()];
    const count = lines.reduce((n, line) => n + line.quantity, 0);
    const value = lines.reduce((sum, line) => sum + line.price * line.quantity, 0);
    $("cart").textContent = count ? `cart: ${count} item(s), ${money(value)}` : "cart: empty";
    $("consent-hint").classList.toggle("hidden", !count || $("consent").checked);
  }

  // --- polling ---------------------------------------------------------------------------
  async function once(name, work) {
    // A hidden tab stops polling (every recommendation call is remembered for attribution).
    if (state.busy[name] || !state.key || !state.shopper || document.hidden) return;
    state.busy[name] = true;
    try {
      await work();
    } catch (error) {
      handleError(error);
    } finally {
      state.busy[name] = false;
    }
  }

  const shopperPath = () => "/v1/users/" + encodeURIComponent(state.shopper);

  function refreshRecs() {
    return once("recs", async () => {
      const shopper = state.shopper;
      const body = await get(`${shopperPath()}/recommendations?n=${REC_COUNT}`, state.key);
      if (shopper !== state.shopper || !body) return;
      const ids = body.items.map((item) => item.item_id);
      await ensureItems(ids);
      $("rec-note").textContent = body.personalized ? "personalized" : "trending (no history yet)";
      const signature = ids.join(",");
      if (signature === state.shown.signature) return;
      state.shown = { id: body.recommendation_id, signature };
      const cards = body.items.map((item) =>
        card(item.item_id, "rec-item", el("div", { class: "reason", text: item.reason })),
      );
      for (const node of cards) {
        node.addEventListener("click", () => view(node.dataset.itemId, body.recommendation_id));
      }
      $("recs").dataset.recommendationId = body.recommendation_id;
      $("recs").replaceChildren(
        ...(cards.length ? cards : [el("div", { class: "empty", text: "nothing yet" })]),
      );
      if (ids.length) {
        post("/v1/events", state.key, [
          envelope("recommendation_shown", {
            recommendation_id: body.recommendation_id,
            item_ids: ids,
          }),
        ]).catch(handleError);
      }
    });
  }

  function refreshSimilar() {
    const item = state.product;
    if (!item) return Promise.resolve();
    return once("similar", async () => {
      const base = `/v1/items/${encodeURIComponent(item.item_id)}/similar?n=6`;
      let body = await get(`${base}&kind=bought_together`, state.key);
      const bought = Boolean(body && body.items.length);
      if (body && !bought) body = await get(`${base}&kind=all`, state.key);
      if (state.product !== item) return;
      $("similar-title").textContent = bought ? "Bought together" : "Viewed together and similar";
      const items = body ? body.items : [];
      await ensureItems(items.map((i) => i.item_id));
      const cards = items.map((i) => {
        const node = card(i.item_id, "similar-item", el("div", { class: "reason", text: i.reason }));
        node.addEventListener("click", () => view(i.item_id));
        return node;
      });
      $("similar").replaceChildren(
        ...(cards.length ? cards : [el("div", { class: "empty", text: "no pairs learned yet" })]),
      );
    });
  }

  function refreshPromotions() {
    return once("promotions", async () => {
      const shopper = state.shopper;
      const body = await get(`${shopperPath()}/promotions`, state.key);
      if (shopper !== state.shopper) return;
      const best = body && body.promotions[0];
      const banner = $("banner");
      banner.classList.toggle("hidden", !best);
      if (!best) return;
      if (banner.dataset.promotionId === best.promotion_id) return;
      banner.dataset.promotionId = best.promotion_id;
      banner.dataset.campaignId = best.campaign_id;
      const use = el("button", {
        text: "use it",
        onclick: () =>
          send(envelope("promotion_clicked", {
            promotion_id: best.promotion_id, campaign_id: best.campaign_id,
          })),
      });
      banner.replaceChildren(
        el("span", { text: best.message }),
        best.coupon_code ? el("code", { "data-testid": "coupon", text: best.coupon_code }) : null,
        use,
      );
      if (!state.promotionsSeen.has(best.promotion_id)) {
        state.promotionsSeen.add(best.promotion_id);
        send(envelope("promotion_viewed", {
          promotion_id: best.promotion_id, campaign_id: best.campaign_id,
        }));
      }
    });
  }

  function refreshProfile() {
    return once("profile", async () => {
      const shopper = state.shopper;
      const body = await get(`${shopperPath()}/summary`, state.key);
      if (shopper !== state.shopper) return;
      if (!body) {
        for (const id of ["pf-tier", "pf-lifecycle", "pf-rfm", "pf-cart"]) $(id).textContent = "-";
        $("pf-cats").replaceChildren();
        $("pf-note").textContent = "A new shopper: the engine knows nothing yet. Click around.";
        return;
      }
      $("pf-note").textContent = "";
      $("pf-tier").textContent = body.tier;
      $("pf-lifecycle").textContent = body.lifecycle;
      const rfm = body.rfm;
      $("pf-rfm").textContent = `R${rfm.r} F${rfm.f} M${rfm.m} (${rfm.frequency} orders, ${money(rfm.monetary)})`;
      $("pf-cart").textContent = body.cart_items ? `${body.cart_items} · ${money(body.cart_value)}` : "empty";
      const top = body.top_categories.length ? body.top_categories[0].score : 1;
      $("pf-cats").replaceChildren(
        ...body.top_categories.map((c) => {
          const fill = el("div", { class: "fill" });
          fill.style.width = `${Math.round((100 * c.score) / (top || 1))}%`;
          return el(
            "div",
            { class: "bar", "data-category": c.category },
            el("span", { text: c.category }),
            el("div", { class: "track" }, fill),
            el("span", { text: `${Math.round(c.score * 100)}%` }),
          );
        }),
      );
    });
  }

  function refreshAll() {
    refreshRecs();
    refreshPromotions();
    refreshProfile();
  }

  // --- catalog ---------------------------------------------------------------------------
  async function loadGrid(append) {
    const category = state.category ? `&category=${encodeURIComponent(state.category)}` : "";
    const body = await get(`/v1/items?limit=${PAGE}&offset=${state.offset}${category}`, state.key);
    if (!body) return;
    for (const item of body.items) state.catalog.set(item.item_id, item);
    if (state.categories.join() !== body.categories.join()) {
      state.categories = body.categories;
      renderFilters();
    }
    const cards = body.items.map((item) => {
      const node = card(item.item_id, "product-card");
      node.addEventListener("click", () => view(item.item_id));
      return node;
    });
    if (append) $("grid").append(...cards);
    else $("grid").replaceChildren(...cards);
    if (!cards.length && !append) {
      $("grid").replaceChildren(el("div", { class: "empty", text: "The catalog is empty so far." }));
    }
    state.offset = body.next_offset ?? state.offset;
    $("more").classList.toggle("hidden", body.next_offset == null);
  }

  let catalogLoad = null;

  function ensureItems(ids) {
    // Rows may name items the grid has not loaded yet: load the whole catalog once (pages
    // of 200), and let every caller wait for that one load.
    if (ids.every((id) => state.catalog.has(id))) return Promise.resolve();
    if (!catalogLoad) {
      catalogLoad = (async () => {
        let offset = 0;
        for (let page = 0; page < 50 && offset != null; page++) {
          const body = await get(`/v1/items?limit=200&offset=${offset}`, state.key);
          if (!body) break;
          for (const item of body.items) state.catalog.set(item.item_id, item);
          offset = body.next_offset;
        }
      })().finally(() => { catalogLoad = null; });
    }
    return catalogLoad;
  }

  // --- set-up ----------------------------------------------------------------------------
  function handleError(error) {
    if (error.status === 401 || error.status === 403) {
      $("keybar").classList.remove("hidden");
    }
    console.warn(error.message);
  }

  function shopperOptions(extra) {
    const options = [];
    for (let i = 0; i < SYNTHETIC_SHOPPERS; i++) {
      const id = "user-" + String(i).padStart(5, "0");
      options.push(el("option", { value: id, text: id }));
    }
    for (const id of extra) options.push(el("option", { value: id, text: id + " (you)" }));
    options.push(el("option", { value: "__new__", text: "new anonymous shopper…" }));
    $("shopper").replaceChildren(...options);
  }

  function start() {
    const params = new URLSearchParams(location.search);
    const saved = params.get("shopper") || localStorage.getItem("currents.store.shopper") || "";
    const own = saved.startsWith("anon-") ? [saved] : [];
    shopperOptions(own);
    $("shopper").value = saved && [...$("shopper").options].some((o) => o.value === saved)
      ? saved : "user-00000";
    $("shopper").addEventListener("change", () => {
      let id = $("shopper").value;
      if (id === "__new__") {
        id = uid("anon-").slice(0, 17);
        const known = [...$("shopper").options].filter((o) => o.value.startsWith("anon-"));
        shopperOptions([...known.map((o) => o.value), id]);
        $("shopper").value = id;
      }
      chooseShopper(id);
    });
    $("consent").addEventListener("change", () => {
      state.consent.set(state.shopper, $("consent").checked);
      renderCart();
      send(envelope("identify", { traits: { marketing_consent: $("consent").checked } }));
    });
    $("pv-add").addEventListener("click", addToCart);
    $("pv-buy").addEventListener("click", buy);
    $("pv-close").addEventListener("click", () => {
      state.product = null;
      renderProduct();
    });
    $("more").addEventListener("click", () => loadGrid(true));
    $("key-save").addEventListener("click", () => {
      Currents.setKey("store", $("key-input").value.trim());
      location.reload();
    });
    if (!state.key) {
      $("keybar").classList.remove("hidden");
      return;
    }
    chooseShopper($("shopper").value);
    loadGrid(false).catch(handleError);
    setInterval(refreshRecs, 700);
    setInterval(refreshPromotions, 1000);
    setInterval(refreshProfile, 1500);
    setInterval(refreshSimilar, 3000);
    setInterval(() => { if (!state.categories.length) loadGrid(false).catch(handleError); }, 3000);
  }

  start();
})();
