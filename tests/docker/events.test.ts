// Live provisioning events over the WebSocket, as a dashboard would receive them.
import t from 'tap';
import WebSocket from 'ws';
import { OPERATOR, testRuntime, waitFor } from '../helpers.js';

t.test('WebSocket /api/events streams an instance from pending to healthy to deleted', async (t) => {
  const rt = await testRuntime(t);
  // A real socket, as a browser would open it (injectWS gives no remote address to check the caller by).
  const address = await rt.app.listen({ host: '127.0.0.1', port: 0 });
  const ws = new WebSocket(`${address.replace('http', 'ws')}/api/events?instance=live`, { headers: OPERATOR });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const seen: { slug: string; observed: string; generation: number }[] = [];
  ws.on('message', (data: Buffer) => seen.push(JSON.parse(data.toString())));

  await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'other' } });
  await rt.app.inject({ method: 'POST', url: '/api/instances', payload: { service: 'probe', slug: 'live' } });
  await waitFor('healthy event', () => seen.some((e) => e.observed === 'healthy'));
  await rt.app.inject({ method: 'DELETE', url: '/api/instances/live?purge=true' });
  await waitFor('deleted event', () => seen.some((e) => e.observed === 'deleted'));
  t.ok(seen.every((e) => e.slug === 'live'), 'the filter keeps other instances out');
  const states = seen.map((e) => e.observed);
  t.ok(states.indexOf('healthy') < states.indexOf('deleting'), `order: ${states.join(' → ')}`);
  t.ok(states.indexOf('deleting') < states.indexOf('deleted'));
  ws.terminate();
});
