// The runs list: while some shown run is running, refresh the rows every two seconds.
const body = document.getElementById('runs-body');
const total = document.getElementById('runs-total');

async function refresh() {
  if (document.hidden) return true;
  const response = await fetch(body.dataset.liveUrl, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (!response.ok) return false;
  const page = await response.json();
  // Rows are rendered by the server with every value escaped, as on the first load.
  body.innerHTML = page.html;
  if (total) total.textContent = `${page.total.toLocaleString('en-US')} ${page.total === 1 ? 'run' : 'runs'}`;
  return page.any_running;
}

async function loop() {
  let live = body.dataset.live === 'on';
  while (live) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    try { live = await refresh(); } catch { live = true; }
  }
}

if (body) loop();
