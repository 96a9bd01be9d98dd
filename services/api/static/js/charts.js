// Charts on the vendored uPlot (services/api/static/vendor, from npm; no CDN at run time).
import { h } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

// A line chart: xs plus named series {label: [...]}. Returns {el, set(xs, series)} for updates.
export function lineChart(title, seriesLabels, { width = 440, height = 200, xLabel = "step" } = {}) {
  const el = h("div", { class: "chart", "data-chart": title });
  const opts = {
    title, width, height,
    scales: { x: { time: false } },
    axes: [{ label: xLabel }, {}],
    series: [{ label: xLabel }, ...seriesLabels.map((label, i) => ({
      label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
    }))],
  };
  const empty = [[], ...seriesLabels.map(() => [])];
  const plot = new window.uPlot(opts, empty, el);
  return {
    el,
    set(xs, series) { plot.setData([xs, ...seriesLabels.map((l) => series[l] || xs.map(() => null))]); },
    destroy() { plot.destroy(); },
  };
}

// Cartography scatter (confidence vs variability, coloured by fraction correct) on a plain canvas:
// 1,000 points draw in well under a millisecond budget, with hit-testing for clicks.
export function scatter(points, { width = 440, height = 320, onPick } = {}) {
  const canvas = h("canvas", {
    width, height, "data-chart": "cartography", style: { border: "1px solid #e5e7eb" },
  });
  const pad = 36;
  const maxX = Math.max(0.05, ...points.map((p) => p.x || 0));
  const sx = (x) => pad + (x / maxX) * (width - pad - 10);
  const sy = (y) => height - pad - y * (height - pad - 10);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
  ctx.strokeStyle = "#9ca3af";
  ctx.beginPath(); ctx.moveTo(pad, 10); ctx.lineTo(pad, height - pad); ctx.lineTo(width - 10, height - pad);
  ctx.stroke();
  ctx.fillStyle = "#6b7280"; ctx.font = "11px sans-serif";
  ctx.fillText("variability (std of gold confidence)", pad + 60, height - 8);
  ctx.save(); ctx.translate(11, height - pad - 40); ctx.rotate(-Math.PI / 2);
  ctx.fillText("confidence (mean)", 0, 0); ctx.restore();
  ctx.fillText("0", pad - 10, height - pad + 12);
  ctx.fillText(maxX.toFixed(2), width - 34, height - pad + 12);
  ctx.fillText("1", pad - 10, 16);
  for (const p of points) {
    const c = p.c == null ? 0.5 : p.c; // fraction correct: red (never) to green (always)
    ctx.fillStyle = `rgb(${Math.round(220 * (1 - c))},${Math.round(160 * c + 40)},60)`;
    ctx.beginPath(); ctx.arc(sx(p.x || 0), sy(p.y || 0), 3, 0, 2 * Math.PI); ctx.fill();
  }
  if (onPick) {
    canvas.addEventListener("click", (ev) => {
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left; const my = ev.clientY - r.top;
      let best = null; let bd = 64;
      for (const p of points) {
        const d = (sx(p.x || 0) - mx) ** 2 + (sy(p.y || 0) - my) ** 2;
        if (d < bd) { bd = d; best = p; }
      }
      if (best) onPick(best);
    });
  }
  return canvas;
}

// A unicode sparkline, used in tables.
export function sparkline(values) {
  const v = values.filter((x) => typeof x === "number" && isFinite(x));
  if (!v.length) return "";
  const lo = Math.min(...v); const hi = Math.max(...v); const bars = "▁▂▃▄▅▆▇█";
  const bar = (x) => bars[Math.round(((x - lo) / (hi - lo || 1)) * 7)];
  return values.map((x) => (typeof x === "number" && isFinite(x) ? bar(x) : " ")).join("");
}
