// Plain-text formatting for the Upload Jobs page: byte sizes, dates, step timings, progress lines, counts.

const STEP_LABELS = {
  check_source_file: 'check', optimize_for_streaming: 'optimize',
  measure_file_size: 'measure', upload_to_spaces: 'upload',
};

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(i >= 2 ? 2 : 1)} ${units[i]}`;
}

export function formatSizes(before, after) {
  if (before == null && after == null) return '—';
  if (after == null) return formatBytes(before);
  return `${formatBytes(before)} → ${formatBytes(after)}`;
}

export function formatDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function formatSteps(steps) {
  if (!steps || typeof steps !== 'object') return '—';
  const parts = Object.entries(steps).map(([name, secs]) =>
    `${STEP_LABELS[name] || name.replace(/_/g, ' ')} ${Number(secs).toFixed(2)} s`);
  return parts.length ? parts.join(' · ') : '—';
}

export function progressText(p, percent) {
  const pct = percent === null ? '' : ` ${Math.round(percent)}%`;
  if (p.phase === 'optimizing') return `Remux${pct}`;
  if (p.phase === 'uploading') {
    let text = `Upload${pct}`;
    if (p.bytes_done != null && p.bytes_total) {
      const mb = 1024 * 1024;
      text += ` · ${(p.bytes_done / mb).toFixed(1)} of ${(p.bytes_total / mb).toFixed(1)} MB`;
    }
    return text;
  }
  const phase = String(p.phase || 'Working');
  return phase.charAt(0).toUpperCase() + phase.slice(1) + pct;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : '—';
}

export function clip(text, max) {
  const s = String(text ?? '');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function plural(n, word) {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}
