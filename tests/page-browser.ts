// A browser reduced to its cookie jar, for the page tests: GET a page, read its CSRF token, POST its form.
// On an app wrapped by asOperator (tests/helpers.ts), pass { authorization: null } so that the browser carries no
// operator token, as a real browser would.
import type { FastifyInstance } from 'fastify';

export function pageBrowser(app: FastifyInstance, extraHeaders: Record<string, string | null> = {}) {
  const jar = new Map<string, string>();
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (r: { cookies: { name: string; value: string }[] }) => {
    for (const c of r.cookies) { if (c.value === '') jar.delete(c.name); else jar.set(c.name, c.value); }
  };
  return {
    jar,
    async get(url: string) {
      const r = await app.inject({ url, headers: { cookie: cookie(), accept: 'text/html', ...extraHeaders } as never });
      keep(r);
      return r;
    },
    async post(url: string, fields: Record<string, string | string[]>, opts: { csrfFrom?: string; raw?: string } = {}) {
      const form = new URLSearchParams();
      if (opts.csrfFrom) {
        const page = await this.get(opts.csrfFrom);
        form.set('_csrf', /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!);
      }
      for (const [k, v] of Object.entries(fields)) for (const x of [v].flat()) form.append(k, x);
      const r = await app.inject({ method: 'POST', url, payload: opts.raw ?? form.toString(),
        headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded', ...extraHeaders } as never });
      keep(r);
      return r;
    },
  };
}
