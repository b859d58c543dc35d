// The administrators' DNS page: per domain, what to publish (the records with what each is for, and the zone snippet
// to paste), and a check form that resolves them and says present, missing or different per record.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { isCatteryError } from '../../errors.js';
import { checkDomainDns, domainDns, type DnsDeps, type DomainCheck } from '../../ingress/dns.js';

const CheckForm = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })),
  domain: Type.String({ minLength: 1, maxLength: 254, pattern: '^[A-Za-z0-9.-]+$' }),
}, { additionalProperties: false });
const Lang = Type.Object({ lang: Type.Optional(Type.String({ maxLength: 5 })) });

export const dnsPages: FastifyPluginAsyncTypebox<{ deps: DnsDeps }> = async (app, { deps }) => {
  const page = { page: true } as const;
  const all = () => Promise.all(deps.config.domains.map((d) => domainDns(deps, d)));

  app.get('/admin/dns', { config: page, schema: { hide: true, querystring: Lang } }, async (_req, reply) =>
    reply.page('admin-dns', { domains: await all(), check: null, checkError: null, resolvers: deps.config.dnsResolvers }));

  app.post('/admin/dns/check', { config: page, schema: { hide: true, querystring: Lang, body: CheckForm } }, async (req, reply) => {
    let check: DomainCheck | null = null;
    let checkError: { domain: string; code: string } | null = null;
    try {
      check = await checkDomainDns(deps, req.body.domain);
    } catch (err) {
      // A resolver that does not answer is said on the page itself, beside the records; anything else (an unknown
      // domain: 404) is the usual error page.
      if (!isCatteryError(err) || err.code !== 'CATTERY_ERR_RESOLVER') throw err;
      req.log.warn({ err }, 'DNS check: the resolver did not answer');
      reply.header('x-cattery-error', err.code);
      checkError = { domain: req.body.domain.toLowerCase(), code: err.code };
    }
    return reply.page('admin-dns', { domains: await all(), check, checkError, resolvers: deps.config.dnsResolvers }, checkError ? 503 : 200);
  });
};
