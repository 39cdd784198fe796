'use strict';
// The API wants the token in a header on every request; the login form only sets the cookie.
function rememberToken() {
  try {
    sessionStorage.setItem('uploadJobsToken', document.getElementById('token').value);
  } catch (err) {
    // Storage can be disabled; the form must still submit.
  }
}

function bindLoginForm() {
  const form = document.getElementById('login-form');
  if (form) form.addEventListener('submit', rememberToken);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', bindLoginForm);
else bindLoginForm();
