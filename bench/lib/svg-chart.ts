/**
 * Small SVG charts for benchmark reports: line charts over time (with marked events, such
 * as the faults of a soak) and bar charts (histograms). Plain SVG text, no DOM and no
 * browser needed, so a report renders on GitHub and in any viewer. A chart library would
 * bring a DOM or a canvas for what is a few polylines and labels.
 */

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export interface Marker {
  x: number;
  label: string;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const PAD = { left: 64, right: 16, top: 32, bottom: 40 };

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (n: number) => (Math.abs(n) >= 1000 ? `${Math.round(n / 100) / 10}k` : Math.abs(n) >= 10 ? String(Math.round(n)) : String(Math.round(n * 100) / 100));

export function lineChart(options: {
  title: string;
  yLabel: string;
  series: Series[];
  markers?: Marker[];
  /** Formats x values on the axis (default: minutes from the first point). */
  xFormat?: (x: number) => string;
  width?: number;
  height?: number;
}): string {
  const width = options.width ?? 860;
  const height = options.height ?? 240;
  const all = options.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const xs = [...all.map((p) => p.x), ...(options.markers ?? []).map((m) => m.x)];
  const xMin = Math.min(...xs);
  const xMax = Math.max(xMin + 1, ...xs);
  const yMax = niceCeiling(Math.max(1e-9, ...all.map((p) => p.y)));
  const sx = (x: number) => PAD.left + ((x - xMin) / (xMax - xMin)) * (width - PAD.left - PAD.right);
  const sy = (y: number) => height - PAD.bottom - (y / yMax) * (height - PAD.top - PAD.bottom);
  const xFormat = options.xFormat ?? ((x: number) => elapsed(x - xMin));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${PAD.left}" y="18" font-size="13" font-weight="bold">${esc(options.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    parts.push(`<line x1="${PAD.left}" x2="${width - PAD.right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
  }
  for (let i = 0; i <= 6; i++) {
    const x = xMin + ((xMax - xMin) * i) / 6;
    parts.push(`<text x="${sx(x)}" y="${height - PAD.bottom + 16}" text-anchor="middle">${esc(xFormat(x))}</text>`);
  }
  parts.push(`<text x="14" y="${(height - PAD.bottom + PAD.top) / 2}" transform="rotate(-90 14 ${(height - PAD.bottom + PAD.top) / 2})" text-anchor="middle">${esc(options.yLabel)}</text>`);
  for (const [i, marker] of (options.markers ?? []).entries()) {
    const x = sx(marker.x);
    parts.push(`<line x1="${x}" x2="${x}" y1="${PAD.top}" y2="${height - PAD.bottom}" stroke="#999" stroke-dasharray="3,3"/>`);
    parts.push(`<text x="${x + 2}" y="${PAD.top + 10 + (i % 3) * 11}" fill="#555" font-size="9">${esc(marker.label)}</text>`);
  }
  options.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length] as string;
    // A gap (missing sample) breaks the line rather than bridging it.
    const runs: string[][] = [[]];
    for (const p of series.points) {
      if (Number.isFinite(p.y)) (runs[runs.length - 1] as string[]).push(`${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
      else runs.push([]);
    }
    for (const run of runs.filter((r) => r.length > 0)) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${run.join(' ')}"/>`);
    parts.push(`<text x="${width - PAD.right - 4}" y="${PAD.top + 12 + i * 13}" text-anchor="end" fill="${color}">${esc(series.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function barChart(options: { title: string; yLabel: string; bars: { label: string; value: number }[]; width?: number; height?: number }): string {
  const width = options.width ?? 860;
  const height = options.height ?? 240;
  const yMax = niceCeiling(Math.max(1e-9, ...options.bars.map((b) => b.value)));
  const slot = (width - PAD.left - PAD.right) / Math.max(1, options.bars.length);
  const sy = (y: number) => height - PAD.bottom - (y / yMax) * (height - PAD.top - PAD.bottom);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${PAD.left}" y="18" font-size="13" font-weight="bold">${esc(options.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    parts.push(`<line x1="${PAD.left}" x2="${width - PAD.right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
  }
  parts.push(`<text x="14" y="${(height - PAD.bottom + PAD.top) / 2}" transform="rotate(-90 14 ${(height - PAD.bottom + PAD.top) / 2})" text-anchor="middle">${esc(options.yLabel)}</text>`);
  options.bars.forEach((bar, i) => {
    const x = PAD.left + i * slot;
    parts.push(`<rect x="${(x + slot * 0.1).toFixed(1)}" y="${sy(bar.value).toFixed(1)}" width="${(slot * 0.8).toFixed(1)}" height="${(height - PAD.bottom - sy(bar.value)).toFixed(1)}" fill="${COLORS[0]}"/>`);
    parts.push(`<text x="${(x + slot / 2).toFixed(1)}" y="${height - PAD.bottom + 14}" text-anchor="middle" font-size="9">${esc(bar.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Elapsed time as m:ss (or h:mm:ss). */
function elapsed(ms: number): string {
  const total = Math.round(ms / 1000);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}
