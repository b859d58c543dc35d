// The agent's image holds only the packages the agent loads (agent/deploy.ts packageClosure, resolved as node
// resolves them: the nearest node_modules up from the package that asks), and its service spec gives the manager's
// certificate as a config, never a token in the environment.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AGENT_PACKAGES, packageClosure } from '../../src/agent/deploy.js';
import { agentServiceSpec } from '../../src/agent/service-spec.js';
import { ROOT } from '../helpers.js';

t.test('dependencies resolve to the nearest copy, as node finds them', async (t) => {
  const lock = {
    'node_modules/a': { dependencies: { b: '1', c: '1' } },
    'node_modules/a/node_modules/b': { dependencies: { c: '2' } },
    'node_modules/b': { dependencies: { d: '1' } },
    'node_modules/c': {},
    'node_modules/a/node_modules/b/node_modules/c': { optionalDependencies: { e: '1' } },
    'node_modules/d': {},
    'node_modules/e': {},
    'node_modules/unused': {},
  };
  t.same(packageClosure(lock, ['a']), [
    'node_modules/a', 'node_modules/a/node_modules/b', 'node_modules/a/node_modules/b/node_modules/c', 'node_modules/c', 'node_modules/e',
  ]);
  t.same(packageClosure(lock, ['b']), ['node_modules/b', 'node_modules/d']);
  t.throws(() => packageClosure(lock, ['missing']), { code: 'CATTERY_ERR_BUILD' });
});

t.test('the real lockfile: the agent\'s packages, no development package, not the manager\'s server', async (t) => {
  const lock = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }).packages;
  const closure = packageClosure(lock, AGENT_PACKAGES);
  for (const p of AGENT_PACKAGES) t.ok(closure.includes(`node_modules/${p}`), p);
  t.same(closure.filter((p) => lock[p]!.dev), [], 'no development-only package');
  for (const p of ['better-sqlite3', 'fastify', 'nodemailer', 'openid-client']) t.notOk(closure.includes(`node_modules/${p}`), `${p} left out`);
});

t.test('the manager\'s certificate as a Swarm config, trusted through NODE_EXTRA_CA_CERTS', async (t) => {
  const spec = agentServiceSpec({ hosterId: 'h1', image: 'cattery/agent:1', manager: 'https://m.example', nodeId: 'abcdefghijklmnopqrstuvw01', tokenSecret: { id: 's', name: 'h1-agent-token-x' }, managerCa: { id: 'c', name: 'h1-agent-ca-x' } });
  const cs = spec.TaskTemplate.ContainerSpec;
  t.same(cs.Configs, [{ ConfigID: 'c', ConfigName: 'h1-agent-ca-x', File: { Name: '/etc/cattery-agent/manager-ca.pem', UID: '0', GID: '0', Mode: 0o444 } }]);
  t.ok(cs.Env.includes('NODE_EXTRA_CA_CERTS=/etc/cattery-agent/manager-ca.pem'));
  const without = agentServiceSpec({ hosterId: 'h1', image: 'cattery/agent:1', manager: 'https://m.example', nodeId: 'abcdefghijklmnopqrstuvw01', tokenSecret: { id: 's', name: 'n' } });
  t.notOk('Configs' in without.TaskTemplate.ContainerSpec);
  t.notOk(without.TaskTemplate.ContainerSpec.Env.some((e) => e.startsWith('NODE_EXTRA_CA_CERTS=')));
});
