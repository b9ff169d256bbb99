// Fork a run at a span: edit what the model saw (messages or input), the model and its
// parameters, then start the replay and open the fork.
import { h, clear, postJson } from './dom.js';
import { messagesOf } from './span-panel.js';

const NUMBER_PARAMS = [
  ['temperature', 'Temperature', '0.01'],
  ['top_p', 'Top p', '0.01'],
  ['max_tokens', 'Max tokens', '1'],
  ['seed', 'Seed', '1'],
];

function asEditable(content) {
  return typeof content === 'string' ? content : JSON.stringify(content, null, 2);
}

function fromEditable(text, original) {
  if (typeof original === 'string' || original === null || original === undefined) return text;
  try { return JSON.parse(text); } catch { return text; }
}

export function openForkDialog(dialog, span, { traceId }) {
  clear(dialog);
  const isLlm = span.span_type === 'llm_call';
  const messages = isLlm ? messagesOf(span.input) : null;
  const fields = [];
  let inputEditor = null;
  const body = h('div', { class: 'dialog-body stack' });

  if (messages) {
    body.appendChild(h('h3', { text: 'Messages' }));
    messages.forEach((message, i) => {
      const area = h('textarea', { rows: String(Math.min(10, Math.max(2, asEditable(message.content).split('\n').length))), id: `fork-msg-${i}`, 'aria-label': `${message.role} message ${i + 1}` });
      area.value = asEditable(message.content ?? '');
      fields.push({ message, area });
      body.appendChild(h('div', { class: `msg-edit msg-${message.role}` }, h('div', { class: 'msg-role', text: message.role }), area));
    });
  } else {
    const label = isLlm ? 'Input (text or JSON)' : 'Output to replay this step with (text or JSON)';
    const original = isLlm ? span.input : span.output;
    inputEditor = { original, area: h('textarea', { id: 'fork-input', rows: '8' }) };
    inputEditor.area.value = original === null || original === undefined ? '' : asEditable(original);
    body.appendChild(h('div', { class: 'field' }, h('label', { for: 'fork-input', text: label }), inputEditor.area));
    if (!isLlm) body.appendChild(h('p', { class: 'hint', text: 'The server never runs tools: the replay uses this as the step\'s result, then re-runs the LLM calls after it.' }));
  }

  const name = h('input', { id: 'fork-name', type: 'text', placeholder: 'What this fork tries' });
  const model = h('input', { id: 'fork-model', type: 'text', placeholder: span.model || 'same model' });
  model.value = span.model || '';
  const params = {};
  const paramGrid = h('div', { class: 'param-grid' });
  for (const [key, label, step] of NUMBER_PARAMS) {
    const input = h('input', { id: `fork-p-${key}`, type: 'number', step, placeholder: 'as recorded' });
    params[key] = input;
    paramGrid.appendChild(h('div', { class: 'field' }, h('label', { for: `fork-p-${key}`, text: label }), input));
  }
  body.appendChild(h('div', { class: 'grid-2' },
    h('div', { class: 'field' }, h('label', { for: 'fork-name', text: 'Fork name' }), name),
    h('div', { class: 'field' }, h('label', { for: 'fork-model', text: isLlm ? 'Model' : 'Model of the next LLM call' }), model),
  ));
  body.appendChild(h('h3', { text: 'Parameters' }));
  body.appendChild(paramGrid);

  const error = h('span', { class: 'error', role: 'alert' });
  const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Fork and replay');
  const cancel = h('button', { class: 'btn', type: 'button', onclick: () => dialog.close() }, 'Cancel');
  const form = h('form', { method: 'dialog' },
    h('div', { class: 'dialog-head' }, h('h2', { id: 'fork-title', text: `Fork at “${span.name || 'span'}”` })),
    body,
    h('div', { class: 'dialog-foot' }, error, cancel, submit),
  );
  dialog.setAttribute('aria-labelledby', 'fork-title');
  dialog.appendChild(form);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const payload = { trace_id: traceId, fork_point_span_id: span.id };
    if (name.value.trim()) payload.name = name.value.trim();
    if (model.value.trim() && model.value.trim() !== (span.model || '')) payload.model = model.value.trim();
    const parameters = {};
    for (const [key, input] of Object.entries(params)) {
      if (input.value.trim() !== '') parameters[key] = Number(input.value);
    }
    if (Object.keys(parameters).length) payload.parameters = parameters;
    if (messages) {
      const edited = fields.map(({ message, area }) => ({ ...message, content: fromEditable(area.value, message.content) }));
      const changed = fields.some(({ message, area }) => area.value !== asEditable(message.content ?? ''));
      if (changed) {
        const system = span.input && !Array.isArray(span.input) && span.input.system ? edited.shift() : null;
        payload.modified_input = system ? { system: system.content, messages: edited } : { messages: edited };
      }
    } else if (inputEditor && inputEditor.area.value !== (inputEditor.original == null ? '' : asEditable(inputEditor.original))) {
      payload.modified_input = fromEditable(inputEditor.area.value, inputEditor.original);
    }
    submit.disabled = true;
    submit.textContent = 'Starting replay…';
    try {
      const fork = await postJson('/_/forks', payload);
      window.location.assign(fork.url);
    } catch (failure) {
      error.textContent = failure.message;
      submit.disabled = false;
      submit.textContent = 'Fork and replay';
    }
  });
  dialog.showModal();
  (fields[0]?.area || inputEditor?.area || name).focus();
}
