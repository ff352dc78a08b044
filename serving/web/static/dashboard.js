// The operator dashboard: public numbers from /metrics (Prometheus text) and, with an admin
// key pasted by the operator (kept in sessionStorage, never sent anywhere but this API),
// the admin-only ones from /v1/dashboard. Polls every 2 s; keeps the last 2 minutes.
"use strict";

(() => {
  const { get, el } = Currents;
  const $ = (id) => document.getElementById(id);
  const EVERY_MS = 2000;
  const CAPACITY = 60;
  const REC_ROUTE = "/v1/users/{user_id}/recommendations";

  const RATE_WINDOW = 3; // scrapes: events/s over ~6 s
  const LATENCY_WINDOW = 15; // scrapes: p50/p99 over ~30 s

  const history = { processed: [], ingested: [], lag: [], p50: [], p99: [], dlq: [], promotions: [] };
  const scrapes = []; // the recent raw scrapes: {at, processed, ingested, buckets}

  function push(name, value) {
    history[name].push(value);
    if (history[name].length > CAPACITY) history[name].shift();
  }

  // --- Prometheus text ---------------------------------------------------------------------
  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
      if (!match) continue;
      const labels = {};
      for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[pair[1]] = pair[2];
      }
      samples.push({ name: match[1], labels, value: Number(match[3]) });
    }
    return samples;
  }

  const total = (samples, name) =>
    samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);

  function latencyBuckets(samples) {
    // Cumulative counts per upper bound for the recommendations route, all statuses.
    const buckets = new Map();
    for (const s of samples) {
      if (s.name !== "currents_http_request_duration_seconds_bucket") continue;
      if (s.labels.route !== REC_ROUTE) continue;
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(le, (buckets.get(le) || 0) + s.value);
    }
    return buckets;
  }

  function quantile(q, now, before) {
    // Like PromQL histogram_quantile over the interval between two scrapes.
    const bounds = [...now.keys()].sort((a, b) => a - b);
    const counts = bounds.map((b) => (now.get(b) || 0) - ((before && before.get(b)) || 0));
    const n = counts[counts.length - 1] || 0;
    if (n <= 0) return null;
    const rank = q * n;
    for (let i = 0; i < bounds.length; i++) {
      if (counts[i] >= rank) {
        if (bounds[i] === Infinity) return bounds[i - 1] ?? null;
        const lower = i ? bounds[i - 1] : 0;
        const below = i ? counts[i - 1] : 0;
        const inBucket = counts[i] - below;
        return lower + (bounds[i] - lower) * (inBucket ? (rank - below) / inBucket : 1);
      }
    }
    return null;
  }

  // --- polling -----------------------------------------------------------------------------
  async function pollMetrics() {
    const samples = parseMetrics(await get("/metrics"));
    const now = {
      at: performance.now(),
      processed: total(samples, "currents_events_processed_total"),
      ingested: total(samples, "currents_events_ingested_total"),
      buckets: latencyBuckets(samples),
    };
    if (scrapes.length) {
      // Rates over a few scrapes: the worker's counters move per batch, not smoothly.
      const base = scrapes[Math.max(0, scrapes.length - RATE_WINDOW)];
      const seconds = Math.max(0.001, (now.at - base.at) / 1000);
      push("processed", Math.max(0, now.processed - base.processed) / seconds);
      push("ingested", Math.max(0, now.ingested - base.ingested) / seconds);
      const older = scrapes[Math.max(0, scrapes.length - LATENCY_WINDOW)].buckets;
      const p50 = quantile(0.5, now.buckets, older);
      const p99 = quantile(0.99, now.buckets, older);
      push("p50", p50 == null ? null : p50 * 1000);
      push("p99", p99 == null ? null : p99 * 1000);
    }
    scrapes.push(now);
    if (scrapes.length > LATENCY_WINDOW) scrapes.shift();
    const dlq = total(samples, "currents_dlq_total");
    push("dlq", dlq);

    const last = (name) => history[name][history[name].length - 1];
    $("eps-now").textContent = history.processed.length ? Charts.format(last("processed")) : "-";
    Charts.line($("chart-events"), [
      { values: history.processed, cls: "line1" },
      { values: history.ingested, cls: "line2" },
    ], CAPACITY);
    const p50 = last("p50");
    const p99 = last("p99");
    $("latency-now").textContent =
      p50 == null ? "no requests" : `${Charts.format(p50)} / ${Charts.format(p99)} ms`;
    Charts.line($("chart-latency"), [
      { values: history.p50, cls: "line1" },
      { values: history.p99, cls: "line2" },
    ], CAPACITY);
    $("dlq-now").textContent = String(dlq);
    Charts.line($("chart-dlq"), [{ values: history.dlq, cls: "line1" }], CAPACITY);

    const byType = samples
      .filter((s) => s.name === "currents_events_by_type_total")
      .map((s) => ({ label: s.labels.type, value: s.value }))
      .sort((a, b) => b.value - a.value);
    Charts.bars($("by-type"), byType);
  }

  async function pollAdmin() {
    const key = Currents.keyFor("admin");
    if (!key) {
      $("status").textContent = "public metrics only: paste an admin key for lag, segments, campaigns and experiments";
      return;
    }
    let body;
    try {
      body = await get("/v1/dashboard", key);
    } catch (error) {
      $("status").textContent =
        error.status === 401 || error.status === 403 ? "that key is not an admin key" : error.message;
      return;
    }
    $("status").textContent = "admin data on";
    const lag = body.consumer_lag;
    push("lag", lag ? lag.total : null);
    $("lag-now").textContent = lag ? String(lag.total) : "broker unreachable";
    Charts.line($("chart-lag"), [{ values: history.lag, cls: "line1" }], CAPACITY);

    const sent = body.campaigns.reduce((sum, c) => sum + (c.stats.sent || 0), 0);
    push("promotions", sent);
    $("promotions-now").textContent = String(sent);
    Charts.line($("chart-promotions"), [{ values: history.promotions, cls: "line1" }], CAPACITY);

    Charts.bars($("segments"), body.segments.map((s) => ({ label: s.name, value: s.size })));
    $("campaigns").replaceChildren(
      ...body.campaigns.map((c) =>
        el(
          "tr",
          { "data-campaign": c.id },
          el("td", { text: c.id + (c.active ? "" : " (off)") }),
          ...["sent", "holdout", "no_consent", "capped"].map((k) =>
            el("td", { text: String(c.stats[k] || 0) }),
          ),
        ),
      ),
    );
    const rows = [];
    for (const experiment of body.experiments) {
      for (const v of experiment.variants) {
        rows.push(
          el(
            "tr",
            { "data-experiment": experiment.name, "data-variant": v.variant },
            el("td", { text: `${experiment.name} / ${v.variant}` }),
            el("td", { text: String(v.impressions) }),
            el("td", { text: String(v.clicks) }),
            el("td", { text: (100 * v.ctr).toFixed(1) + "%" }),
            el("td", { text: String(v.purchases) }),
          ),
        );
      }
    }
    if (!rows.length) rows.push(el("tr", {}, el("td", { text: "no experiment defined" })));
    $("experiments").replaceChildren(...rows);
  }

  async function tick() {
    try {
      await Promise.all([pollMetrics(), pollAdmin()]);
    } catch (error) {
      $("status").textContent = "API unreachable: " + error.message;
    }
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    Currents.setKey("admin", $("admin-key").value.trim());
    $("admin-key").value = "";
    tick();
  });
  $("forget").addEventListener("click", () => {
    Currents.setKey("admin", "");
    tick();
  });
  tick();
  setInterval(tick, EVERY_MS);
})();
