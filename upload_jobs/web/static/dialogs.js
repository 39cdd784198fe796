// User feedback for the Upload Jobs page: the confirm dialog before a retry and the toast after it.

import { $, el } from './dom.js';

// Resolves true when the user presses the OK button; false on Cancel, Escape, or if a confirm is already open.
export function confirmAction(message, okLabel) {
  const dialog = $('confirm-dialog');
  if (dialog.open) return Promise.resolve(false);
  $('confirm-message').textContent = message;
  $('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('confirm-ok').focus();
  });
}

export function bindConfirmDialog() {
  $('confirm-ok').addEventListener('click', () => $('confirm-dialog').close('ok'));
  $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close('cancel'));
}

export function showToast(message, kind) {
  const box = $('toast');
  const toast = el('div', `toast toast-${kind}`, message);
  toast.title = 'Click to dismiss';
  toast.addEventListener('click', () => toast.remove());
  box.replaceChildren(toast);
  setTimeout(() => toast.remove(), kind === 'error' ? 10000 : 6000);
}
