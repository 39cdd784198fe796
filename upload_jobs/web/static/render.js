// Renders the jobs list from GET /api/jobs: header counts and retry mode, table rows, empty state, pager.

import { $, el, group, isWebUrl, messageRow, safeLink, td } from './dom.js';
import { formatSizes, plural } from './format.js';
import { canRetry, errorNodes, flowRunNode, statusCell } from './chips.js';
import { state } from './state.js';

function actionButton(className, label, jobId) {
  const button = el('button', className, label);
  button.type = 'button';
  button.dataset.jobId = String(jobId);
  return button;
}

function renderRow(job) {
  const tr = el('tr');
  tr.dataset.jobId = String(job.id);
  tr.dataset.status = job.status;

  const file = td('File', 'cell-file',
    group(el('div', 'file-name', job.file_name), el('div', 'object-key', job.object_key)));
  file.title = job.source_path || '';

  const links = group(job.public_url ? safeLink(job.public_url, 'CDN') : null,
    flowRunNode(job.flow_run_url, job.flow_run_id));
  let retry = null;
  if (canRetry(job)) {
    retry = actionButton('retry', 'Retry', job.id);
    retry.disabled = state.busy.has(job.id);
  }

  tr.append(
    td('ID', 'mono', job.id),
    file,
    td('Status', null, statusCell(job, 'status')),
    td('Size', 'nowrap', formatSizes(job.source_size_bytes, job.uploaded_size_bytes)),
    td('Attempts', 'num', job.attempts ?? 0),
    td('Last error', 'cell-error', errorNodes(job.error_kind, job.last_error)),
    td('Links', 'cell-links', links.childNodes.length ? links : null),
    td('Actions', 'cell-actions', group(retry, actionButton('details', 'Details', job.id))),
  );
  return tr;
}

function emptyRow(data) {
  if (data.total || state.status || state.q) return messageRow('No jobs match');
  return messageRow('No upload jobs yet. Add one with ', el('code', null, 'upload-jobs add PATH'), '.');
}

export function renderHeader(data) {
  $('retry-mode').textContent = data.retry_mode === 'deployment'
    ? 'Retries run on Prefect deployment retry-upload-job/on-demand'
    : 'Retries run in this web process';
  const link = $('prefect-link');
  const hasUi = Boolean(data.prefect_ui_url) && isWebUrl(data.prefect_ui_url);
  link.hidden = !hasUi;
  if (hasUi) link.href = data.prefect_ui_url;

  const counts = data.counts || {};
  for (const chip of $('counts').children) {
    const status = chip.dataset.status;
    chip.textContent = `${(counts[status] || 0).toLocaleString('en-US')} ${status.replace(/_/g, ' ')}`;
    chip.setAttribute('aria-pressed', String(state.status === status));
  }
  const failed = counts.failed || 0;
  const retryAll = $('retry-all');
  retryAll.textContent = `Retry all failed (${failed.toLocaleString('en-US')})`;
  retryAll.disabled = failed === 0 || state.busyAll;
  retryAll.dataset.count = String(failed);
  document.title = failed ? `(${failed}) Upload Jobs` : 'Upload Jobs';
}

export function renderJobs(data) {
  const jobs = data.jobs || [];
  state.jobsById = new Map(jobs.map((job) => [job.id, job]));
  // Rebuilding identical rows every 2 s would steal keyboard focus and text selection.
  const key = JSON.stringify(jobs) + [...state.busy].join(',');
  if (key === state.rowsKey) return;
  state.rowsKey = key;
  const tbody = $('jobs').tBodies[0];
  const focused = document.activeElement;
  const refocus = focused && tbody.contains(focused) && focused.dataset.jobId
    ? `button.${focused.className}[data-job-id="${focused.dataset.jobId}"]` : null;
  tbody.replaceChildren(...(jobs.length ? jobs.map(renderRow) : [emptyRow(data)]));
  if (refocus) {
    const again = tbody.querySelector(refocus);
    if (again) again.focus();
  }
}

export function renderPager(data) {
  const pages = Math.max(1, data.pages || 0);
  $('page-info').textContent =
    `Page ${state.page.toLocaleString('en-US')} of ${pages.toLocaleString('en-US')} · ${plural(data.total || 0, 'job')}`;
  $('prev-page').disabled = state.page <= 1;
  $('next-page').disabled = state.page >= pages;
}
