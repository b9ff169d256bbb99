// Behaviour shared by every page; nothing inline, so the Content-Security-Policy forbids all inline script.
import { copyText, postJson } from './dom.js';

document.addEventListener('click', (event) => {
  const copy = event.target.closest('[data-copy-from]');
  if (copy) {
    const source = document.getElementById(copy.dataset.copyFrom);
    if (source) copyText(source.value ?? source.textContent, copy);
  }
});

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Buttons that ask the server for a URL elsewhere (checkout, billing portal) and go there.
for (const button of document.querySelectorAll('[data-post-redirect]')) {
  button.addEventListener('click', async () => {
    const status = document.getElementById(button.dataset.statusId || '');
    button.disabled = true;
    try {
      const { url } = await postJson(button.dataset.postRedirect);
      window.location.assign(url);
    } catch (error) {
      if (status) status.textContent = error.message;
      button.disabled = false;
    }
  });
}

// Meters take their width from data attributes: style attributes are refused by the policy.
for (const fill of document.querySelectorAll('[data-fill]')) fill.style.width = `${fill.dataset.fill}%`;
