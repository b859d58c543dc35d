// A real OpenID provider for the tests: the oidc-provider package (certified OpenID implementation) on loopback,
// with its development login screens, which accept any login: tests only, never in cattery itself.
import net from 'node:net';
import type { Server } from 'node:http';
import Provider from 'oidc-provider';

export interface TestProvider { issuer: string; clientId: string; clientSecret: string; close(): Promise<void> }

export const PEOPLE: Record<string, { name: string; email: string; groups: string[] }> = {
  alice: { name: 'Alice Moreau', email: 'alice@mairie.example', groups: ['cattery-admins'] },
  bruno: { name: 'Bruno Petit', email: 'bruno@mairie.example', groups: ['services-techniques'] },
};

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export async function startProvider(catteryUrl: string): Promise<TestProvider> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'cattery';
  const clientSecret = 'a-test-client-secret-of-some-length';
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId, client_secret: clientSecret, redirect_uris: [`${catteryUrl}/auth/callback`],
      post_logout_redirect_uris: [`${catteryUrl}/`], response_types: ['code'], grant_types: ['authorization_code'],
    }],
    async findAccount(_ctx, id) {
      const p = PEOPLE[id] ?? { name: id, email: `${id}@example.org`, groups: [] };
      return { accountId: id, claims: async () => ({ sub: id, name: p.name, preferred_username: id, email: p.email, email_verified: true, groups: p.groups }) };
    },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    cookies: { keys: ['test-cookie-key-one'] },
    pkce: { required: () => true },
  });
  const server: Server = provider.listen(port, '127.0.0.1');
  await new Promise<void>((r) => server.once('listening', r));
  return { issuer, clientId, clientSecret, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** A cookie jar per origin, enough for the provider's cookies (names are unique within a login). */
export function cookieJar() {
  const jars = new Map<string, Map<string, string>>();
  return {
    header(url: string): string {
      return [...(jars.get(new URL(url).origin) ?? new Map())].map(([k, v]) => `${k}=${v}`).join('; ');
    },
    store(url: string, setCookies: string[]): void {
      const jar = jars.get(new URL(url).origin) ?? new Map<string, string>();
      for (const c of setCookies) {
        const [pair] = c.split(';');
        const i = pair!.indexOf('=');
        const name = pair!.slice(0, i).trim(), value = pair!.slice(i + 1).trim();
        if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name); else jar.set(name, value);
      }
      jars.set(new URL(url).origin, jar);
    },
  };
}
