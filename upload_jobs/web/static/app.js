// Upload Jobs page entry point: the 2 s polling loop, retry actions, filters, paging and event wiring.

import { api, errorMessage } from './api.js';
import { $ } from './dom.js';
import { clip } from './format.js';
import { bindConfirmDialog, confirmAction, showToast } from './dialogs.js';
import { bindJobDialog, openJobDialog, refreshJobDialog } from './job-dialog.js';
import { renderHeader, renderJobs, renderPager } from './render.js';
import { listQuery, readUrlState, state, writeUrlState } from './state.js';
import { refreshStats } from './stats.js';

const POLL_MS = 2000;

// ---------- polling ----------

function fetchJobs(query) {
  return api(`/api/jobs?${query}`);
}

async function refresh() {
  if (state.loading) { state.again = true; return; }
  clearTimeout(state.timer);
  state.loading = true;
  const query = listQuery();
  try {
    const res = await fetchJobs(query);
    if (!res.ok) throw new Error(`The server answered HTTP ${res.status}; retrying…`);
    showBanner(null);
    if (query !== listQuery()) {
      state.again = true; // the filters changed while this request was out
    } else if (res.body.pages > 0 && state.page > res.body.pages) {
      state.page = res.body.pages; // jobs went away under our page; show the last one
      writeUrlState();
      state.again = true;
    } else {
      renderHeader(res.body);
      renderJobs(res.body);
      renderPager(res.body);
      refreshStats((res.body.counts || {}).completed ?? 0).catch(() => {}); // the list matters more
    }
    if (state.openJobId !== null) await refreshJobDialog();
  } catch (err) {
    showBanner(err instanceof TypeError ? 'Lost connection to the server; retrying…' : err.message);
  } finally {
    state.loading = false;
    if (state.again) { state.again = false; refresh(); } else scheduleNext();
  }
}

function scheduleNext() {
  clearTimeout(state.timer);
  if (!document.hidden) state.timer = setTimeout(refresh, POLL_MS);
}

function showBanner(text) {
  const banner = $('connection-banner');
  banner.hidden = !text;
  if (text) banner.textContent = text;
}

// ---------- retry ----------

async function post(path, button, busyKey) {
  if (button) button.disabled = true;
  if (busyKey !== undefined) state.busy.add(busyKey); else state.busyAll = true;
  try {
    const res = await api(path, 'POST');
    if (res.ok) showToast((res.body && res.body.message) || 'Queued for retry', 'success');
    else showToast(errorMessage(res), 'error');
  } catch (err) {
    showToast('Could not reach the server; nothing was queued.', 'error');
  } finally {
    if (busyKey !== undefined) state.busy.delete(busyKey); else state.busyAll = false;
    if (button) button.disabled = false;
    state.rowsKey = ''; // busy buttons must be re-enabled even if the jobs did not change
    refresh();
  }
}

async function retryJob(jobId, button) {
  const job = state.jobsById.get(jobId) || (state.openJob && state.openJob.id === jobId ? state.openJob : null);
  const name = job ? ` (${clip(job.file_name, 80)})` : '';
  const ok = await confirmAction(
    `Retry upload job ${jobId}${name}? It will be re-uploaded with streaming optimization.`, 'Retry');
  if (ok) await post(`/api/jobs/${encodeURIComponent(jobId)}/retry`, button, jobId);
}

async function retryAllFailed() {
  const n = parseInt($('retry-all').dataset.count || '0', 10);
  if (!n) return;
  const ok = await confirmAction(`Retry all ${n} failed upload ${n === 1 ? 'job' : 'jobs'}?`,
    `Retry ${n} ${n === 1 ? 'job' : 'jobs'}`);
  if (ok) await post('/api/jobs/retry-failed', $('retry-all'));
}

// ---------- wiring ----------

function setFilters(changes) {
  Object.assign(state, changes, { page: 1 });
  writeUrlState();
  refresh();
}

function goToPage(page) {
  state.page = Math.max(1, page);
  writeUrlState();
  refresh();
}

function bindEvents() {
  $('status-filter').addEventListener('change', (e) => setFilters({ status: e.target.value }));
  let debounce = null;
  $('search').addEventListener('input', (e) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      const q = e.target.value.trim();
      if (q !== state.q) setFilters({ q });
    }, 300);
  });
  $('counts').addEventListener('click', (e) => {
    const chip = e.target.closest('button.count');
    if (!chip) return;
    const status = state.status === chip.dataset.status ? '' : chip.dataset.status;
    $('status-filter').value = status;
    setFilters({ status });
  });
  $('retry-all').addEventListener('click', retryAllFailed);
  $('prev-page').addEventListener('click', () => goToPage(state.page - 1));
  $('next-page').addEventListener('click', () => goToPage(state.page + 1));
  $('jobs').tBodies[0].addEventListener('click', (e) => {
    const button = e.target.closest('button');
    if (!button || !button.dataset.jobId) return;
    const id = Number(button.dataset.jobId);
    if (button.classList.contains('retry')) retryJob(id, button);
    else if (button.classList.contains('details')) openJobDialog(id);
  });
  bindConfirmDialog();
  bindJobDialog(retryJob);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(state.timer); else refresh();
  });
}

function init() {
  readUrlState();
  bindEvents();
  refresh();
}

init();
