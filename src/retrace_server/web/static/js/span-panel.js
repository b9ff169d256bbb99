// The selected span: what the model saw and said, tool calls, parameters, figures, error, raw JSON.
import { h, formatDuration, formatMoney, formatCount, formatTimestamp, copyText, typeLabel } from './dom.js';

const PARAMETER_KEYS = new Set([
  'temperature', 'top_p', 'top_k', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'stop',
  'seed', 'presence_penalty', 'frequency_penalty', 'n', 'response_format', 'tool_choice', 'reasoning_effort',
  'stream', 'logprobs', 'parallel_tool_calls', 'thinking',
]);

function pretty(value) {
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

function parseMaybeJson(value) {
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return value;
  try { return JSON.parse(trimmed); } catch { return value; }
}

function isMessage(m) {
  return m && typeof m === 'object' && !Array.isArray(m) && typeof m.role === 'string';
}

// A span without `duration_ms` has its latency in its times, as the timeline draws it.
function latencyOf(span) {
  if (typeof span.duration_ms === 'number') return span.duration_ms;
  const ms = Date.parse(span.ended_at) - Date.parse(span.started_at);
  return Number.isNaN(ms) ? null : Math.max(0, ms);
}

// The chat messages a span's input holds, in order, with a system prompt given apart first.
export function messagesOf(input) {
  if (Array.isArray(input) && input.length && input.every(isMessage)) return input;
  if (input && typeof input === 'object' && Array.isArray(input.messages) && input.messages.every(isMessage)) {
    const out = [];
    if (input.system) out.push({ role: 'system', content: input.system });
    return out.concat(input.messages);
  }
  return null;
}

function outputMessage(output) {
  if (output === null || output === undefined) return null;
  if (typeof output === 'string') return { role: 'assistant', content: output };
  if (isMessage(output)) return output;
  if (output && Array.isArray(output.choices) && output.choices[0]) {
    const choice = output.choices[0];
    if (isMessage(choice.message)) return choice.message;
    if (typeof choice.text === 'string') return { role: 'assistant', content: choice.text };
  }
  if (output && Array.isArray(output.content) && output.type === 'message') return { role: output.role || 'assistant', content: output.content };
  return null;
}

function jsonBlock(value) {
  return h('pre', { class: 'json' }, typeof value === 'string' ? value : pretty(value));
}

function toolCallBlock(name, args, id) {
  const parsed = parseMaybeJson(args);
  return h('div', { class: 'toolcall' },
    h('div', { class: 'toolcall-head' }, `${name || 'tool'}(…)`, id ? h('span', { class: 'faint', text: `  ${id}` }) : null),
    jsonBlock(parsed ?? {}),
  );
}

function contentNodes(content) {
  if (content === null || content === undefined) return [h('div', { class: 'msg-body faint', text: '(empty)' })];
  if (typeof content === 'string') return [h('div', { class: 'msg-body', text: content })];
  if (!Array.isArray(content)) return [h('div', { class: 'msg-body mono', text: pretty(content) })];
  const nodes = [];
  for (const part of content) {
    if (typeof part === 'string') nodes.push(h('div', { class: 'msg-body', text: part }));
    else if (part && (part.type === 'text' || part.type === 'input_text' || part.type === 'output_text')) nodes.push(h('div', { class: 'msg-body', text: part.text ?? '' }));
    else if (part && part.type === 'tool_use') nodes.push(toolCallBlock(part.name, part.input, part.id));
    else if (part && part.type === 'tool_result') nodes.push(h('div', { class: 'toolcall' }, h('div', { class: 'toolcall-head', text: `result ${part.tool_use_id || ''}` }), ...contentNodes(part.content)));
    else if (part && (part.type === 'image_url' || part.type === 'image' || part.type === 'input_image')) nodes.push(h('div', { class: 'msg-body faint', text: '[image]' }));
    else if (part && (part.type === 'thinking' || part.type === 'reasoning')) nodes.push(h('div', { class: 'msg-body faint', text: part.thinking ?? part.text ?? pretty(part) }));
    else nodes.push(h('div', { class: 'msg-body mono', text: pretty(part) }));
  }
  return nodes;
}

export function messageBlock(message) {
  const role = String(message.role || 'message');
  const known = ['system', 'user', 'assistant', 'tool', 'developer', 'function'].includes(role) ? role : 'other';
  const label = [role];
  if (message.name) label.push(message.name);
  if (message.tool_call_id) label.push(message.tool_call_id);
  const block = h('div', { class: `msg msg-${known === 'developer' ? 'system' : known === 'function' ? 'tool' : known}` },
    h('div', { class: 'msg-role', text: label.join(' · ') }),
    ...contentNodes(message.content),
  );
  for (const call of message.tool_calls || []) {
    const fn = call.function || call;
    block.appendChild(toolCallBlock(fn.name, fn.arguments ?? fn.input, call.id));
  }
  if (message.function_call) block.appendChild(toolCallBlock(message.function_call.name, message.function_call.arguments));
  return block;
}

function parametersOf(span) {
  const params = {};
  const input = span.input;
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    for (const [key, value] of Object.entries(input)) if (PARAMETER_KEYS.has(key)) params[key] = value;
  }
  const meta = span.metadata || {};
  for (const source of [meta.parameters, meta.invocation_parameters, meta.model_parameters]) {
    if (source && typeof source === 'object') Object.assign(params, source);
  }
  return params;
}

function toolsOf(input) {
  if (!input || typeof input !== 'object' || !Array.isArray(input.tools)) return [];
  return input.tools.map((t) => (t && (t.function?.name || t.name)) || (typeof t === 'string' ? t : 'tool'));
}

function section(title, ...children) {
  return h('div', { class: 'section' }, h('h3', { text: title }), ...children);
}

function kv(label, value, title) {
  return h('div', null, h('div', { class: 'k', text: label }), h('div', { class: 'v', text: value, title: title || value }));
}

export function renderPanel(span, ctx) {
  const frag = document.createDocumentFragment();
  const started = Date.parse(span.started_at);
  const offset = Number.isNaN(started) ? null : started - ctx.t0;
  const tokensIn = span.input_tokens;
  const tokensOut = span.output_tokens;
  const actions = h('div', { class: 'actions' });
  if (!ctx.readOnly && ctx.onFork) {
    actions.appendChild(h('button', { class: 'btn btn-primary btn-small', type: 'button', onclick: () => ctx.onFork(span) }, 'Fork from here'));
  }
  const head = h('div', { class: 'panel-head' },
    h('div', { class: 'title' },
      h('span', { class: `type type-${span.span_type}`, text: typeLabel(span.span_type) }),
      h('h2', { text: span.name || '(unnamed span)', title: span.name || '' }),
      actions,
    ),
    h('div', { class: 'kv' },
      kv('Latency', formatDuration(latencyOf(span))),
      kv('Starts at', offset === null ? '–' : offset === 0 ? 'at start' : `+${formatDuration(offset)}`, formatTimestamp(span.started_at)),
      ...(span.model || tokensIn != null || tokensOut != null || span.cost != null ? [
        kv('Model', span.model || '–'),
        kv('Tokens in', formatCount(tokensIn)),
        kv('Tokens out', formatCount(tokensOut)),
        kv('Cost', formatMoney(span.cost ?? null)),
      ] : []),
      span.agent_id || span.agent_role ? kv('Agent', [span.agent_role, span.agent_id].filter(Boolean).join(' · ')) : null,
      span.metadata && span.metadata.replay ? kv('Replay', span.metadata.replay) : null,
    ),
  );
  frag.appendChild(head);

  if (span.error) frag.appendChild(section('Error', h('div', { class: 'error-box', role: 'note', text: String(span.error) })));

  const params = parametersOf(span);
  const tools = toolsOf(span.input);
  if (Object.keys(params).length || tools.length) {
    const chips = h('div', { class: 'params' });
    for (const [key, value] of Object.entries(params)) {
      chips.appendChild(h('span', { class: 'param' }, h('b', { text: `${key} ` }), typeof value === 'string' ? value : JSON.stringify(value)));
    }
    for (const name of tools) chips.appendChild(h('span', { class: 'param' }, h('b', { text: 'tool ' }), name));
    frag.appendChild(section('Parameters', chips));
  }

  const messages = messagesOf(span.input);
  const isTool = span.span_type === 'tool_call' || span.span_type === 'tool_result';
  if (messages) {
    frag.appendChild(section(`Input · ${messages.length} ${messages.length === 1 ? 'message' : 'messages'}`, ...messages.map(messageBlock)));
  } else if (span.input !== null && span.input !== undefined) {
    const input = typeof span.input === 'object' && span.input && typeof span.input.prompt === 'string' && Object.keys(span.input).every((k) => k === 'prompt' || PARAMETER_KEYS.has(k) || k === 'model')
      ? span.input.prompt : span.input;
    frag.appendChild(section(isTool ? 'Arguments' : 'Input', typeof input === 'string' ? h('div', { class: 'msg' }, h('div', { class: 'msg-body', text: input })) : jsonBlock(input)));
  }

  if (span.output !== null && span.output !== undefined) {
    const message = isTool ? null : outputMessage(span.output);
    frag.appendChild(section(isTool ? 'Result' : 'Output', message ? messageBlock(message) : typeof span.output === 'string' ? h('div', { class: 'msg' }, h('div', { class: 'msg-body', text: span.output })) : jsonBlock(parseMaybeJson(span.output))));
  }

  const metadata = { ...(span.metadata || {}) };
  if (Object.keys(metadata).length) {
    frag.appendChild(section('Metadata', jsonBlock(metadata)));
  }

  // Raw JSON is drawn only when opened: a large span's JSON would slow every selection down.
  const raw = h('details', { class: 'raw' }, h('summary', null, 'Raw JSON'));
  const copy = h('button', { class: 'btn btn-small', type: 'button', onclick: () => copyText(pretty(span), copy) }, 'Copy JSON');
  raw.addEventListener('toggle', () => {
    if (raw.open && raw.childElementCount === 1) raw.appendChild(h('div', { class: 'stack' }, h('div', { class: 'row' }, copy), jsonBlock(span)));
  });
  frag.appendChild(h('div', { class: 'section' }, raw, h('p', { class: 'hint' }, 'Span ', h('code', { text: span.id }))));
  const wrap = h('div', null);
  wrap.appendChild(frag);
  return wrap;
}
