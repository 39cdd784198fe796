// JSON API client for the Upload Jobs page: token header, same-origin cookies, 401 → /login, error text.

function apiToken() {
  try {
    return sessionStorage.getItem('uploadJobsToken') || 'local';
  } catch (err) {
    return 'local';
  }
}

// Resolves to {ok, status, body}; rejects only on network failure. On 401 it never resolves,
// which also stops the polling loop while the browser navigates to the login page.
export async function api(path, method = 'GET') {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'X-Upload-Jobs-Token': apiToken(), Accept: 'application/json' },
  });
  if (res.status === 401) {
    location.href = '/login';
    return new Promise(() => {});
  }
  let body = null;
  try { body = await res.json(); } catch (err) { body = null; }
  return { ok: res.ok, status: res.status, body };
}

export function errorMessage(res) {
  const detail = res.body && res.body.detail;
  if (typeof detail === 'string' && detail) return detail;
  if (Array.isArray(detail)) return detail.map((d) => (d && d.msg) || String(d)).join('; ');
  return `Request failed (HTTP ${res.status})`;
}
