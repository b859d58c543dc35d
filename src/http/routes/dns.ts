// The DNS records of the association's domains, for scripts: what to publish (records and a zone snippet), and a
// check of what the resolvers see. Administrators only (permissions.ts).
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { checkDomainDns, domainDns, type DnsDeps } from '../../ingress/dns.js';
import { ErrorReply } from '../error-handler.js';

export const DomainParams = Type.Object({ domain: Type.String({ minLength: 1, maxLength: 254, pattern: '^[A-Za-z0-9.-]+$' }) });

const Record_ = {
  name: Type.String({ description: 'absolute, with its final dot' }),
  type: Type.Union(['A', 'AAAA', 'MX', 'TXT', 'SRV', 'CAA'].map((x) => Type.Literal(x))),
  value: Type.String({ description: 'presentation form; a TXT record\'s strings joined' }),
  ttl: Type.Integer(),
  why: Type.Object({ fr: Type.String(), en: Type.String() }),
};
const DnsView = Type.Object({
  domain: Type.String(), mailHost: Type.String(), dkimKnown: Type.Boolean(), addressesKnown: Type.Boolean(),
  mailUnpublished: Type.Union([Type.String(), Type.Null()], { description: 'The mail instance whose standard ports are not published yet (PUT /api/instances/:slug/public-ports), or null' }),
  records: Type.Array(Type.Object(Record_)),
  snippet: Type.String({ description: 'RFC 1035 master-file lines to paste into the zone' }),
});
const CheckView = Type.Object({
  domain: Type.String(), resolvers: Type.Array(Type.String()), checkedAt: Type.String(), dkimKnown: Type.Boolean(),
  records: Type.Array(Type.Object({
    ...Record_,
    state: Type.Union([Type.Literal('present'), Type.Literal('missing'), Type.Literal('different')]),
    found: Type.Array(Type.String(), { description: 'what the resolver answered for this name and type (TXT: of the same kind)' }),
  })),
});

export const dnsRoutes: FastifyPluginAsyncTypebox<{ deps: DnsDeps }> = async (app, { deps }) => {
  app.get('/api/dns/:domain', {
    schema: {
      tags: ['dns'], summary: 'The DNS records a domain of the association must publish, and the zone snippet',
      params: DomainParams, response: { 200: DnsView, 404: ErrorReply },
    },
  }, async (req) => domainDns(deps, req.params.domain));

  app.post('/api/dns/:domain/check', {
    schema: {
      tags: ['dns'], summary: 'Resolve every record of the domain: present, missing or different',
      params: DomainParams, response: { 200: CheckView, 404: ErrorReply, 503: ErrorReply },
    },
  }, async (req) => checkDomainDns(deps, req.params.domain));
};
