// The job detail dialog: fetches GET /api/jobs/{id} and shows the job's fields and its attempt history.

import { api, errorMessage } from './api.js';
import { $, el, group, isWebUrl, messageRow, safeLink, td } from './dom.js';
import { formatDate, formatSizes, formatSteps } from './format.js';
import { canRetry, flowRunNode, statusCell, statusChip } from './chips.js';
import { state } from './state.js';

function detailList(pairs) {
  const list = el('dl', 'details-list');
  for (const [label, value] of pairs) {
    const dd = el('dd');
    if (value instanceof Node) dd.append(value); else dd.textContent = value == null || value === '' ? '—' : String(value);
    list.append(el('dt', null, label), dd);
  }
  return list;
}

const PATH_LABELS = {
  already_ready: 'already stream-ready: uploaded as it is',
  moved_in_process: 'index (moov) moved to the front in process',
  ffmpeg_remux: 'remuxed by ffmpeg',
  transcoded: 're-encoded to H.264/AAC by ffmpeg, so every browser plays it',
  hls_packaged: 'HLS: cut into segments, one rendition',
  abr_ladder: 'HLS: an adaptive ladder of renditions',
  fallback_original: 'fallback: the original went up',
  not_requested: 'no optimization asked for (preset none)',
};

function streamingPath(streaming) {
  if (!streaming) return null;
  let text = PATH_LABELS[streaming.path] || streaming.path || '—';
  if (streaming.fallback_kind) text += ` (${streaming.fallback_kind})`;
  if (streaming.reason) text += ` — ${streaming.reason}`;
  if (streaming.remux_seconds != null) text += ` · ${Number(streaming.remux_seconds).toFixed(2)} s`;
  return el('span', 'streaming-path', text);
}

// `480p 854×480 · 1.45 Mbit/s · PSNR 45.1 dB · SSIM 0.995`, one line per rendition.
function renditionList(streaming) {
  const renditions = streaming && Array.isArray(streaming.renditions) ? streaming.renditions : [];
  if (!renditions.length) return null;
  const list = el('ul', 'renditions');
  for (const r of renditions) {
    const parts = [`${r.name} ${r.width}×${r.height}`, `${(r.bitrate / 1e6).toFixed(2)} Mbit/s`];
    if (r.psnr != null) parts.push(`PSNR ${Number(r.psnr).toFixed(1)} dB`);
    if (r.ssim != null) parts.push(`SSIM ${Number(r.ssim).toFixed(3)}`);
    if (!r.reencoded) parts.push('the source\'s own bytes');
    list.append(el('li', 'rendition', parts.join(' · ')));
  }
  return list;
}

function declinedLevels(streaming) {
  const declined = streaming && Array.isArray(streaming.declined) ? streaming.declined : [];
  if (!declined.length) return null;
  return el('span', 'declined', declined.map((d) => `${d.preset} (${d.kind}): ${d.reason}`).join('; '));
}

const HLS_TYPE = 'application/vnd.apple.mpegurl';

// The player is kept across polls (re-rendering would restart it) and only replaced when the
// link changes; the page's Content-Security-Policy lets media come from the public base URL only.
function showPlayer(job) {
  const box = $('job-dialog-player');
  const url = job.status === 'completed' && isWebUrl(job.public_url) ? job.public_url : null;
  const current = box.querySelector('video');
  if (current && current.dataset.src === url) return;
  stopPlayer();
  if (!url) return;
  const video = el('video', 'player');
  video.controls = true;
  video.preload = 'metadata';
  video.playsInline = true;
  video.dataset.src = url;
  const hls = new URL(url).pathname.endsWith('.m3u8');
  if (hls && !video.canPlayType(HLS_TYPE)) {
    // Chromium from 142 and Safari play HLS themselves; elsewhere a player like hls.js does.
    box.replaceChildren(el('p', 'muted player-note',
      'This browser does not play HLS itself: open the master playlist in Safari, VLC or an hls.js player.'));
    return;
  }
  video.src = url;
  const note = hls ? 'Plays the master playlist from the CDN; the browser picks the rendition.'
    : 'Plays the CDN link, as a viewer would.';
  box.replaceChildren(video, el('p', 'muted player-note', note));
}

function stopPlayer() {
  const video = $('job-dialog-player').querySelector('video');
  if (video) { video.pause(); video.removeAttribute('src'); video.load(); }
  $('job-dialog-player').replaceChildren();
}

function renderAttempt(a) {
  let opt = a.optimized ? 'yes' : 'no';
  if (a.fallback_reason) opt += ` — fallback: ${a.fallback_reason}`;
  if (a.skipped_existing_object) opt += ' (object already in bucket, not re-uploaded)';
  const error = a.error ? el('span', 'clamp', a.error) : null;
  if (error) error.title = a.error;
  const tr = el('tr');
  tr.append(
    td('#', 'num', a.attempt_number),
    td('Outcome', null, statusChip(a.outcome, 'outcome')),
    td('Optimized', 'cell-wrap', opt),
    td('Error', 'cell-wrap', a.error_kind || error
      ? group(a.error_kind ? el('span', 'tag', a.error_kind) : null, error) : null),
    td('Bytes', 'nowrap', formatSizes(a.source_size_bytes, a.uploaded_size_bytes)),
    td('Steps', 'cell-steps', formatSteps(a.step_seconds)),
    td('Started / finished', 'nowrap', group(el('div', null, formatDate(a.started_at)),
      el('div', 'muted', a.finished_at ? formatDate(a.finished_at) : 'running'))),
    td('Flow run', null, flowRunNode(a.flow_run_url, a.flow_run_id)),
  );
  return tr;
}

function renderJobDialog(job) {
  $('job-dialog-title').textContent = `Upload job ${job.id}`;
  const status = el('div');
  // Different chip classes from the table, so `.chip.status-completed` only ever matches rows.
  status.append(statusCell(job, 'state'));
  const preset = job.optimization_preset ? ` (preset ${job.optimization_preset})` : '';
  const body = $('job-dialog-body');
  body.replaceChildren(detailList([
    ['Status', status],
    ['File name', job.file_name],
    ['Source path', el('span', 'mono break', job.source_path)],
    ['Object key', el('span', 'mono break', job.object_key)],
    ['Size', formatSizes(job.source_size_bytes, job.uploaded_size_bytes)],
    ['Optimized', job.optimized ? `yes${preset}` : 'no'],
    ['Streaming', streamingPath(job.streaming)],
    ['Startup', job.streaming ? el('span', 'startup', job.streaming.summary) : null],
    ['Renditions', renditionList(job.streaming)],
    ['Passed over', declinedLevels(job.streaming)],
    ['Attempts', job.attempts],
    ['CDN', job.public_url ? safeLink(job.public_url, job.public_url) : null],
    ['Flow run', flowRunNode(job.flow_run_url, job.flow_run_id)],
    ['Updated', formatDate(job.updated_at)],
    ['Error kind', job.error_kind],
  ]));
  if (job.last_error) {
    body.append(el('h3', null, 'Last error'), el('pre', 'error-pre', job.last_error));
  }
  const rows = job.attempts_list.map(renderAttempt);
  $('attempts').tBodies[0].replaceChildren(...(rows.length ? rows : [messageRow('No attempts yet')]));
  $('job-dialog-retry').hidden = !canRetry(job);
  $('job-dialog-retry').disabled = state.busy.has(job.id);
  showPlayer(job);
}

function showDialogMessage(message, className = 'error-note') {
  $('job-dialog-body').replaceChildren(el('p', className, message));
  stopPlayer();
  $('attempts').tBodies[0].replaceChildren();
  $('job-dialog-retry').hidden = true;
}

// Called on every poll while the dialog is open; re-renders only when the job changed.
export async function refreshJobDialog() {
  const id = state.openJobId;
  const res = await api(`/api/jobs/${encodeURIComponent(id)}`);
  if (id !== state.openJobId) return;
  if (!res.ok) { showDialogMessage(errorMessage(res)); state.detailKey = ''; return; }
  const job = res.body;
  const history = Array.isArray(job.attempt_history) ? job.attempt_history : [];
  const count = typeof job.attempts === 'number' ? job.attempts : history.length;
  state.openJob = { ...job, attempts: count, attempts_list: history };
  const key = JSON.stringify(job) + state.busy.has(job.id);
  if (key === state.detailKey) return;
  state.detailKey = key;
  renderJobDialog(state.openJob);
}

export async function openJobDialog(jobId) {
  state.openJobId = jobId;
  state.openJob = null;
  state.detailKey = '';
  $('job-dialog-title').textContent = `Upload job ${jobId}`;
  showDialogMessage('Loading…', 'muted');
  if (!$('job-dialog').open) $('job-dialog').showModal();
  try {
    await refreshJobDialog();
  } catch (err) {
    showDialogMessage('Lost connection to the server; retrying…');
  }
}

// onRetry(jobId, button) runs when the dialog's own Retry button is pressed.
export function bindJobDialog(onRetry) {
  $('job-dialog-close').addEventListener('click', () => $('job-dialog').close());
  $('job-dialog').addEventListener('close', () => {
    state.openJobId = null;
    state.openJob = null;
    stopPlayer();
  });
  $('job-dialog-retry').addEventListener('click', (e) => {
    if (state.openJobId !== null) onRetry(state.openJobId, e.currentTarget);
  });
}
