// Tiny SVG and HTML charts for the dashboard (no library, nothing loaded from elsewhere).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 320;
  const H = 110;
  const PAD = { left: 34, right: 4, top: 6, bottom: 14 };

  function svgEl(tag, attrs) {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    return node;
  }

  function format(value) {
    if (value == null || Number.isNaN(value)) return "-";
    if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (Math.abs(value) >= 1e4) return (value / 1e3).toFixed(0) + "k";
    if (Math.abs(value) >= 100 || Number.isInteger(value)) return value.toFixed(0);
    if (Math.abs(value) >= 10) return value.toFixed(1);
    return value.toFixed(2);
  }

  // series: [{values: [number|null], cls: "line1"}]; all share the x axis (oldest first).
  function line(svg, series, capacity) {
    const all = series.flatMap((s) => s.values).filter((v) => v != null);
    const top = Math.max(1e-9, ...all) * 1.1;
    const x = (i) => PAD.left + ((W - PAD.left - PAD.right) * i) / Math.max(1, capacity - 1);
    const y = (v) => H - PAD.bottom - ((H - PAD.top - PAD.bottom) * v) / top;
    const nodes = [
      svgEl("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
      svgEl("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
    ];
    const topLabel = svgEl("text", { x: 2, y: PAD.top + 8 });
    topLabel.textContent = format(top);
    const zero = svgEl("text", { x: 2, y: H - PAD.bottom });
    zero.textContent = "0";
    nodes.push(topLabel, zero);
    for (const s of series) {
      const offset = capacity - s.values.length;
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (v == null) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${x(i + offset).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) nodes.push(svgEl("path", { class: s.cls, d, "data-points": String(s.values.length) }));
    }
    svg.replaceChildren(...nodes);
  }

  // rows: [{label, value}] drawn as horizontal HTML bars (crisp text at any width).
  function bars(container, rows) {
    const top = Math.max(1, ...rows.map((r) => r.value));
    container.replaceChildren(
      ...rows.map((row) => {
        const fill = Currents.el("div", { class: "fill" });
        fill.style.width = `${(100 * row.value) / top}%`;
        return Currents.el(
          "div",
          { class: "bar", "data-label": row.label, "data-value": String(row.value) },
          Currents.el("span", { text: row.label }),
          Currents.el("div", { class: "track" }, fill),
          Currents.el("span", { text: format(row.value) }),
        );
      }),
    );
  }

  return { line, bars, format };
})();
