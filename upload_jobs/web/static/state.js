// Shared page state of the Upload Jobs page and its sync with the URL query (?status=&q=&page=).

import { $ } from './dom.js';

const STATUSES = ['pending', 'in_progress', 'completed', 'failed'];

export const state = {
  status: '', q: '', page: 1, perPage: 50,
  jobsById: new Map(), busy: new Set(), busyAll: false,
  loading: false, again: false, timer: null, rowsKey: '',
  openJobId: null, openJob: null, detailKey: '',
};

export function listQuery() {
  const params = new URLSearchParams();
  if (state.status) params.set('status', state.status);
  if (state.q) params.set('q', state.q);
  params.set('page', String(state.page));
  params.set('per_page', String(state.perPage));
  return params.toString();
}

export function readUrlState() {
  const params = new URLSearchParams(location.search);
  const status = params.get('status') || '';
  state.status = STATUSES.includes(status) ? status : '';
  state.q = (params.get('q') || '').trim();
  const page = parseInt(params.get('page') || '1', 10);
  state.page = Number.isFinite(page) && page > 0 ? page : 1;
  $('status-filter').value = state.status;
  $('search').value = state.q;
}

export function writeUrlState() {
  const params = new URLSearchParams();
  if (state.status) params.set('status', state.status);
  if (state.q) params.set('q', state.q);
  if (state.page > 1) params.set('page', String(state.page));
  const search = params.toString();
  history.replaceState(null, '', search ? `?${search}` : location.pathname);
}
