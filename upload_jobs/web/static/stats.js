// The streaming panel: GET /api/stats (what the optimization bought) as a line of figures and a
// histogram of startup bytes per job, source against upload. Fetched when the completed count moves.

import { api } from './api.js';
import { $ } from './dom.js';
import { formatBytes, plural } from './format.js';

const BAR_AREA = { width: 560, height: 80, label: 18, top: 14 };
let shownFor = null;

function svgNode(tag, attributes, text) {
  // The page's own <svg> names the namespace: no URL literal in the page's scripts.
  const node = document.createElementNS($('stats-histogram').namespaceURI, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function summaryText(stats) {
  const parts = [
    `${stats.optimized_jobs} of ${plural(stats.completed_jobs, 'completed job')} optimized`,
    `startup bytes saved: ${formatBytes(stats.startup_bytes_saved)} in all`,
  ];
  if (stats.median_saved_per_job != null) parts.push(`${formatBytes(stats.median_saved_per_job)} per job (median)`);
  if (stats.median_before != null && stats.median_after != null) {
    parts.push(`median startup ${formatBytes(stats.median_before)} → ${formatBytes(stats.median_after)}`);
  }
  const fallbacks = stats.fallbacks.map((f) => `${f.kind} ${f.jobs}`);
  parts.push(fallbacks.length ? `fallbacks: ${fallbacks.join(', ')}` : 'no fallbacks');
  return parts.join(' · ');
}

function drawHistogram(svg, bins) {
  const { width, height, label, top } = BAR_AREA;
  svg.setAttribute('viewBox', `0 0 ${width} ${height + label + top}`);
  const tallest = Math.max(1, ...bins.map((b) => Math.max(b.before, b.after)));
  const slot = width / Math.max(1, bins.length);
  const bar = Math.min(28, slot / 2.6);
  const nodes = [];
  bins.forEach((bin, i) => {
    const middle = slot * i + slot / 2;
    [['before', bin.before, middle - bar - 1], ['after', bin.after, middle + 1]].forEach(([side, count, x]) => {
      const h = (height * count) / tallest;
      const rect = svgNode('rect', { x, y: top + height - h, width: bar, height: Math.max(h, count ? 1 : 0), class: `bar bar-${side}` });
      rect.append(svgNode('title', {}, `${bin.label}: ${plural(count, 'job')} (${side === 'before' ? 'source' : 'upload'})`));
      nodes.push(rect);
      if (count) nodes.push(svgNode('text', { x: x + bar / 2, y: top + height - h - 3, class: 'bar-count' }, count));
    });
    nodes.push(svgNode('text', { x: middle, y: top + height + label - 4, class: 'bar-label' }, bin.label));
  });
  svg.replaceChildren(...nodes);
}

// Called with each poll's count of completed jobs; asks the server again only when it changed.
export async function refreshStats(completedCount) {
  if (completedCount === shownFor) return;
  const res = await api('/api/stats');
  if (!res.ok || !res.body) return;
  shownFor = completedCount;
  const stats = res.body;
  $('stats-panel').hidden = !stats.completed_jobs;
  if (!stats.completed_jobs) return;
  $('stats-summary').textContent = summaryText(stats);
  drawHistogram($('stats-histogram'), stats.histogram || []);
}


