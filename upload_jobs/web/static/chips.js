// Job pieces shared by the jobs table and the job dialog: status chips, progress bar, flow-run link, error tags.

import { el, group, isWebUrl, safeLink } from './dom.js';
import { progressText, shortId } from './format.js';

export function statusChip(status, prefix = 'status') {
  return el('span', `chip ${prefix} ${prefix}-${status}`, String(status).replace(/_/g, ' '));
}

function progressBlock(job) {
  const block = el('div', 'progress-block');
  const p = job.progress;
  const bar = el('progress', 'job-progress');
  bar.max = 100;
  let text = 'Starting…';
  if (p) {
    let percent = typeof p.percent === 'number' ? p.percent : null;
    if (percent === null && p.bytes_done != null && p.bytes_total) {
      percent = (p.bytes_done / p.bytes_total) * 100;
    }
    if (percent !== null) bar.value = Math.max(0, Math.min(100, percent));
    text = progressText(p, percent);
  }
  block.append(bar, el('span', 'progress-text', text));
  return block;
}

export function statusCell(job, prefix) {
  const line = el('div', 'chip-line');
  line.append(statusChip(job.status, prefix));
  if (job.queued && job.status !== 'in_progress') line.append(el('span', 'chip queued', 'queued'));
  if (job.optimized && prefix === 'status') {
    const chip = el('span', 'chip optimized', 'OPTIMIZED');
    const preset = job.optimization_preset ? ` (preset ${job.optimization_preset})` : '';
    chip.title = `Remuxed for fast streaming${preset}`;
    line.append(chip);
  }
  const frag = document.createDocumentFragment();
  frag.append(line);
  if (job.status === 'in_progress') frag.append(progressBlock(job));
  return frag;
}

export function flowRunNode(url, id) {
  if (url && isWebUrl(url)) return safeLink(url, 'Flow run');
  if (!id) return null;
  const span = el('span', 'mono muted', shortId(id));
  span.title = `Flow run ${id}`;
  return span;
}

export function canRetry(job) {
  return job.status === 'failed' || job.status === 'pending';
}

export function errorNodes(kind, text) {
  if (!kind && !text) return null;
  const error = text ? el('span', 'error-text', text) : null;
  if (error) error.title = text;
  return group(kind ? el('span', 'tag', kind) : null, error);
}
