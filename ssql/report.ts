// The comparison report of `ssql compare`: a Markdown table (rows: bit settings; columns:
// SimSiam, SSQL, difference), an SVG chart of accuracy against bit-width, and report.json.
// Platform independent: returns strings.

export interface CompareReport {
  config: Record<string, unknown>;
  adapter: string;
  wall_s: number;
  /** Linear top-1 (%) per method, per setting. */
  results: Record<string, Record<string, number>>;
  knn?: Record<string, Record<string, number>>;
  pretrain?: Record<string, { images_per_s: number; wall_s: number; final_loss: number | null }>;
}

const fmt = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(2));

export function reportMarkdown(r: CompareReport, command?: string): string {
  const methods = Object.keys(r.results);
  const [a, b] = methods;
  const settings = Object.keys(r.results[a] ?? {});
  const lines = [
    `# SimSiam vs SSQL: linear top-1 (%) after post-training quantization`,
    '',
    `| setting | ${methods.join(' | ')} | ${b} - ${a} |`,
    `|---|${methods.map(() => '---:').join('|')}|---:|`,
    ...settings.map((s) => `| ${s} | ${methods.map((m) => fmt(r.results[m][s])).join(' | ')} | ${fmt(r.results[b]?.[s] - r.results[a]?.[s])} |`),
  ];
  if (r.knn) {
    lines.push('', 'kNN top-1 (%, k=200, cosine):', '', `| setting | ${methods.join(' | ')} |`, `|---|${methods.map(() => '---:').join('|')}|`);
    for (const s of settings) lines.push(`| ${s} | ${methods.map((m) => fmt(r.knn?.[m]?.[s])).join(' | ')} |`);
  }
  lines.push('', `Adapter: ${r.adapter}. Wall time: ${(r.wall_s / 60).toFixed(1)} min.`);
  if (r.pretrain) {
    for (const [m, p] of Object.entries(r.pretrain)) lines.push(`Pretraining ${m}: ${p.images_per_s.toFixed(1)} images/s, ${p.wall_s.toFixed(0)} s, final loss ${p.final_loss?.toFixed(4) ?? '-'}.`);
  }
  lines.push('', 'Configuration:', '', '```json', JSON.stringify(r.config, null, 2), '```');
  if (command) lines.push('', `Command: \`${command}\``);
  return lines.join('\n') + '\n';
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Accuracy against bit setting (settings in the given order, FP first), one line per method. */
export function reportSvg(r: CompareReport): string {
  const methods = Object.keys(r.results);
  const settings = Object.keys(r.results[methods[0]] ?? {});
  const W = 640, H = 400, left = 56, right = 150, top = 36, bottom = 56;
  const pw = W - left - right, ph = H - top - bottom;
  const x = (i: number) => left + (settings.length === 1 ? pw / 2 : (i * pw) / (settings.length - 1));
  const y = (v: number) => top + ph - (Math.max(0, Math.min(100, v)) / 100) * ph;
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left + pw / 2}" y="20" text-anchor="middle" font-size="14">Linear top-1 after PTQ vs bit-width</text>`,
  ];
  for (let v = 0; v <= 100; v += 20) {
    parts.push(`<line x1="${left}" y1="${y(v)}" x2="${left + pw}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  settings.forEach((s, i) => parts.push(`<text x="${x(i)}" y="${top + ph + 20}" text-anchor="middle">${escapeXml(s)}</text>`));
  parts.push(`<text x="${left + pw / 2}" y="${H - 12}" text-anchor="middle">bit setting (weights w, activations a)</text>`);
  parts.push(`<text x="16" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + ph / 2})">top-1 (%)</text>`);
  methods.forEach((m, k) => {
    const c = colors[k % colors.length];
    const pts = settings.map((s, i) => [x(i), y(r.results[m][s])] as const).filter(([, py]) => Number.isFinite(py));
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}"/>`);
    for (const [px, py] of pts) parts.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="3.5" fill="${c}"/>`);
    parts.push(`<line x1="${left + pw + 16}" y1="${top + 12 + 20 * k}" x2="${left + pw + 40}" y2="${top + 12 + 20 * k}" stroke="${c}" stroke-width="2"/>`);
    parts.push(`<text x="${left + pw + 46}" y="${top + 16 + 20 * k}">${escapeXml(m)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** Parse the table of report.md back (tests, and tools reading old reports). */
export function parseReportTable(md: string): { methods: string[]; rows: Record<string, number[]> } {
  const lines = md.split('\n').filter((l) => l.startsWith('|'));
  const header = lines[0].split('|').map((c) => c.trim()).filter(Boolean);
  const methods = header.slice(1, -1);
  const rows: Record<string, number[]> = {};
  for (const line of lines.slice(2)) {
    const cells = line.split('|').map((c) => c.trim()).filter(Boolean);
    if (cells.length !== header.length) break;
    rows[cells[0]] = cells.slice(1).map(Number);
  }
  return { methods, rows };
}
