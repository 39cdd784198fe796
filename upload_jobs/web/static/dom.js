// DOM builders for the Upload Jobs page: job data goes in through textContent only, never as HTML,
// and links are made only for http(s) URLs. File names and errors come from disk and S3 and may hold anything.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Cells hold either plain text or one wrapper, so a stacked card can lay out label | content.
export function td(label, className, content) {
  const cell = el('td', className);
  if (content == null) cell.classList.add('blank'); // hidden on phones to keep cards short
  cell.dataset.label = label; // shown as the field name when rows stack into cards
  if (content instanceof Node) {
    const box = el('div', 'cell');
    box.append(content);
    cell.append(box);
  } else {
    cell.textContent = content == null ? '—' : String(content);
  }
  return cell;
}

export function group(...nodes) {
  const frag = document.createDocumentFragment();
  frag.append(...nodes.filter(Boolean));
  return frag;
}

export function isWebUrl(value) {
  try {
    const protocol = new URL(value).protocol;
    return protocol === 'http:' || protocol === 'https:';
  } catch (err) {
    return false;
  }
}

export function safeLink(url, text) {
  if (!url || !isWebUrl(url)) return el('span', 'muted', text);
  const a = el('a', null, text);
  a.href = url;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  return a;
}

// One full-width row for the jobs or attempts table: "Loading…", "No jobs match" and the like.
export function messageRow(...content) {
  const tr = el('tr');
  const cell = el('td', 'empty');
  cell.colSpan = 8;
  cell.append(...content);
  tr.append(cell);
  return tr;
}
