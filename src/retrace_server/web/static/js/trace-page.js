// `/traces/{id}` and `/t/{slug}`: read the run from the page's data block and draw it.
import { mountTraceView, renderRunHeader } from './trace-view.js';
import { openForkDialog } from './fork-form.js';

const root = document.getElementById('trace-view');
const data = JSON.parse(document.getElementById('run-data').textContent);
const header = document.getElementById('run-header');
if (header) renderRunHeader(header, data);
const top = document.querySelector('.trace-top');
if (top) document.documentElement.style.setProperty('--head-h', `${top.offsetHeight}px`);
const readOnly = root.dataset.readonly === 'true';
const dialog = document.getElementById('fork-dialog');
mountTraceView(root, data, {
  panel: document.getElementById('panel'),
  readOnly,
  onFork: readOnly ? null : (span) => openForkDialog(dialog, span, { traceId: data.id }),
});
