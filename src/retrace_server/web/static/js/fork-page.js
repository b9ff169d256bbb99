// `/forks/{id}`: follow a running replay, then show its diff; bring the first divergence into view.
const page = document.getElementById('fork-page');

const first = document.querySelector('[data-first-divergence]');
if (first) first.scrollIntoView({ block: 'center' });

async function watch() {
  const url = `/_/forks/${encodeURIComponent(page.dataset.forkId)}`;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (document.hidden) continue;
    let fork;
    try {
      const response = await fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (!response.ok) continue;
      fork = await response.json();
    } catch {
      continue;
    }
    if (fork.status !== 'created' && fork.status !== 'running') {
      window.location.reload();
      return;
    }
  }
}

if (page && page.dataset.live === 'on') watch();
