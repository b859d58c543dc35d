// Mail client set-up without typing, and the MTA-STS policy: what mail programs and sending servers fetch by name
// from the front door (`autoconfig.<domain>`, `mta-sts.<domain>`, sent here with their Host header), and a
// resident's Apple profile on "my services".
//
// The domain always comes from cattery's configuration: the Host header or the address only select one of
// config.domains, compared whole (ingress/request-host.ts). Nothing the request carries is written into an answer.
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { accountsOfUser } from '../../accounts/accounts.js';
import { fail } from '../../errors.js';
import { appleMailProfile, autoconfigXml, isUsable, type MailSite } from '../../ingress/mail-client.js';
import { mailInstanceFor, mailSiteOf } from '../../ingress/mail-host.js';
import { mtaStsPolicyFor } from '../../ingress/dns-records.js';
import { recordHostnames } from '../../ingress/dns.js';
import { domainByName, domainOfAddress, hostName } from '../../ingress/request-host.js';
import type { PageDeps } from './deps.js';
import { me } from './me.js';

export const AUTOCONFIG_PATHS = ['/.well-known/autoconfig/mail/config-v1.1.xml', '/mail/config-v1.1.xml'] as const;
export const MTA_STS_PATH = '/.well-known/mta-sts.txt';

// Thunderbird sends `?emailaddress=<the address typed>`; RFC 5321 §4.5.3.1 bounds an address's parts (64 + 255).
const AutoconfigQuery = Type.Object({ emailaddress: Type.Optional(Type.String({ maxLength: 320 })) });
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

const notHere = () => fail('CATTERY_ERR_NOT_FOUND', 'No mail set-up is published for this name');

export const mailClientPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const { domains } = deps.config;
  const ownHost = new URL(deps.config.publicUrl).hostname;

  /** The mail site of one of the association's domains, if a mail instance there can be written down. */
  const siteFor = (domain: string | undefined): MailSite | undefined => {
    const instance = domain === undefined ? undefined : mailInstanceFor(deps.db, domain);
    const site = instance && mailSiteOf(deps.db, instance, domains, ownHost);
    return site && isUsable(site) ? site : undefined;
  };

  const autoconfig = async (req: FastifyRequest<{ Querystring: { emailaddress?: string } }>, reply: FastifyReply) => {
    // `autoconfig.<d>` or `<d>` itself (the .well-known path); else the address's domain, for a client that asked
    // cattery's own name.
    const site = siteFor(domainByName(hostName(req.host), domains, ['autoconfig', '']) ?? domainOfAddress(req.query.emailaddress, domains));
    if (!site) throw notHere();
    return reply.header('content-type', 'application/xml; charset=utf-8').send(autoconfigXml(site));
  };
  for (const url of AUTOCONFIG_PATHS) {
    app.get(url, { schema: { hide: true, querystring: AutoconfigQuery } }, autoconfig);
  }

  // RFC 8461 §3.3: fetched from `mta-sts.<domain>` only, over HTTPS (the front door's), never through a redirect,
  // with the media type text/plain. No mail instance for the domain: no policy (404), which senders take as none.
  // Senders send no query (RFC 8461 §3.3); one is ignored rather than refused.
  app.get(MTA_STS_PATH, { schema: { hide: true, querystring: Type.Object({}) } }, async (req, reply) => {
    const domain = domainByName(hostName(req.host), domains, ['mta-sts']);
    const instance = domain === undefined ? undefined : mailInstanceFor(deps.db, domain);
    if (!instance) throw notHere();
    // The very text whose hash the `_mta-sts` TXT record carries (dns-records.ts): one function makes both.
    const policy = mtaStsPolicyFor(domain!, recordHostnames(deps.db, domain!));
    return reply.header('content-type', 'text/plain; charset=utf-8').send(policy);
  });

  // A resident's own mail account only: someone else's id is answered like one that does not exist.
  app.get('/me/accounts/:id/mail.mobileconfig', { config: { page: true }, schema: { hide: true, params: IdParams } }, async (req, reply) => {
    const user = me(req);
    const mine = accountsOfUser(deps.db, user.id).find((a) => a.account.id === req.params.id);
    if (!mine || mine.instance.service !== 'mail' || mine.account.state !== 'active') throw fail('CATTERY_ERR_NOT_FOUND', 'no such mail account of yours');
    const site = mailSiteOf(deps.db, mine.instance, domains, ownHost);
    if (!isUsable(site)) throw fail('CATTERY_ERR_NOT_FOUND', 'this mail service publishes no port a mail program can use');
    const profile = appleMailProfile(site, { address: `${mine.account.username}@${site.domain}`, name: user.name });
    // The domain is an LDH name (the manifest's MAIL_DOMAIN pattern); filtered again, as it goes into a header.
    const file = `courriel-${site.domain.replace(/[^a-z0-9.-]/g, '')}.mobileconfig`;
    return reply.header('content-type', 'application/x-apple-aspen-config')
      .header('content-disposition', `attachment; filename="${file}"`).send(profile);
  });
};
