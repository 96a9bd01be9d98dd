// Charts on the vendored uPlot (services/api/static/vendor, from npm; no CDN at run time).
import { h } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

// Number labels that stay readable and distinct at any scale: a learning rate of 2e-4 reads "2.0e-4", never
// "0"; the fewest decimals that keep every distinct value distinct.
export function numLabels(values) {
  const finite = values.filter((v) => typeof v === "number" && isFinite(v));
  const big = Math.max(0, ...finite.map(Math.abs));
  const exp = big > 0 && (big < 1e-2 || big >= 1e6);
  const distinct = new Set(finite).size;
  for (let d = 0; d <= 8; d++) {
    const out = values.map((v) => numText(v, d, exp));
    if (new Set(out.filter((x) => x !== "")).size === distinct) return out;
  }
  return values.map((v) => numText(v, 8, exp));
}

// One value (legends, tooltips): four significant digits, exponent notation when tiny or huge.
export function numLabel(v) {
  if (typeof v !== "number" || !isFinite(v)) return v == null ? "–" : String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a < 1e-2 || a >= 1e6 ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

function numText(v, digits, exp) {
  if (typeof v !== "number" || !isFinite(v)) return "";
  if (v === 0) return "0";
  return exp ? v.toExponential(digits) : v.toFixed(digits);
}

// Vertical run markers (pause, resume, restart, preemption) at their steps, drawn over the plot area.
function markerPlugin(state) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u; const { left, top, width, height } = u.bbox;
        ctx.save(); ctx.font = `${Math.round(10 * devicePixelRatio)}px sans-serif`; ctx.textBaseline = "top";
        const seen = new Map(); // markers at one step stack their labels
        for (const m of state.markers) {
          const x = Math.round(u.valToPos(m.x, "x", true));
          const n = seen.get(m.x) || 0; seen.set(m.x, n + 1);
          if (!(x >= left && x <= left + width)) continue;
          ctx.strokeStyle = MARKER_COLORS[m.kind] || "#6b7280"; ctx.fillStyle = ctx.strokeStyle;
          ctx.setLineDash([4, 3]); ctx.lineWidth = devicePixelRatio;
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          ctx.fillText(m.kind, x + 3, top + 2 + n * 12 * devicePixelRatio);
        }
        ctx.restore();
      }],
    },
  };
}
const MARKER_COLORS = { paused: "#b45309", resumed: "#15803d", restarted: "#7c3aed", preempted: "#b91c1c" };

// A line chart: xs plus named series {label: [...]}. Returns {el, set(xs, series), mark(markers)}; the y-axis
// labels drawn last are kept in el.dataset.yTicks ("|"-separated) and the markers in el.dataset.markers.
export function lineChart(title, seriesLabels, { width = 440, height = 200, xLabel = "step" } = {}) {
  const el = h("div", { class: "chart", "data-chart": title });
  const state = { markers: [] };
  const yValues = (u, splits) => {
    const out = numLabels(splits);
    el.dataset.yTicks = out.join("|");
    return out;
  };
  const opts = {
    title, width, height,
    scales: { x: { time: false } },
    axes: [{ label: xLabel }, { values: yValues, size: 64 }],
    series: [{ label: xLabel }, ...seriesLabels.map((label, i) => ({
      label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, value: (u, v) => numLabel(v),
    }))],
    plugins: [markerPlugin(state)],
  };
  const empty = [[], ...seriesLabels.map(() => [])];
  const plot = new window.uPlot(opts, empty, el);
  return {
    el,
    set(xs, series) { plot.setData([xs, ...seriesLabels.map((l) => series[l] || xs.map(() => null))]); },
    mark(markers) {
      state.markers = markers;
      el.dataset.markers = markers.map((m) => `${m.kind}@${m.x}`).join(" ");
      plot.redraw(false);
    },
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
  ctx.fillText(numLabel(maxX), width - 44, height - pad + 12);
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
