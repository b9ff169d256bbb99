// The policy form shows the settings of the chosen kind only (all of them without scripts),
// and the hold settings only when the policy holds.
const form = document.getElementById('policy-form');

function sync() {
  const kind = form.elements.kind.value;
  const action = form.elements.action;
  for (const set of form.querySelectorAll('fieldset[data-kind]')) {
    const shown = set.dataset.kind === kind;
    set.hidden = !shown;
    set.disabled = !shown;
  }
  action.disabled = kind === 'tool_approval';
  const holds = kind === 'tool_approval' || action.value === 'hold';
  const hold = form.querySelector('fieldset[data-hold]');
  hold.hidden = !holds;
  hold.disabled = !holds;
}

if (form) {
  form.addEventListener('change', sync);
  sync();
}
