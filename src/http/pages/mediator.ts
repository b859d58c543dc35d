// A digital mediator ("aidant numérique") signs a resident up at a public internet point: the resident's consent is
// recorded with the mediator's name and the terms version, and the page that answers is the sheet to print.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { accountsOfUser } from '../../accounts/accounts.js';
import { openServiceChoices, openServices } from '../../catalog/offer.js';
import { serviceSettingsMap } from '../../governance/settings.js';
import { accessOf, linkedAccessOf } from './access.js';
import { mediatorSignup } from '../../identity/signup.js';
import { langOf } from './render.js';
import { signupDeps, type PageDeps } from './deps.js';
import { SignupBody, checkSignupForm, type SignupForm } from './forms.js';
import { clientKey } from '../proxy-trust.js';

export const mediatorPages: FastifyPluginAsyncTypebox<{ deps: PageDeps }> = async (app, { deps }) => {
  const page = { page: true } as const;
  const form = (reply: FastifyReply, values: SignupForm, errors: { field: string; key: string }[], status = 200) => {
    const lang = langOf(reply.request);
    return reply.page('mediator', { services: openServiceChoices(deps.catalog, lang, serviceSettingsMap(deps.db)), values, errors, version: deps.config.termsVersion }, status);
  };

  app.get('/mediator', { config: page, schema: { hide: true } }, async (_req, reply) => form(reply, {}, []));

  app.post('/mediator/signup', {
    // Keyed by the mediator, not the address: several mediators may share a public internet point's address.
    config: { ...page, rateLimit: { max: deps.config.signupPerHour, timeWindow: 3_600_000, keyGenerator: (req) => req.principal?.id ?? clientKey(req.ip) } },
    attachValidation: true,
    schema: { hide: true, body: SignupBody },
  }, async (req, reply) => {
    if (req.validationError) return form(reply, {}, [{ field: '', key: 'err.form' }], 400);
    const body = req.body as SignupForm;
    const open = new Set(openServices(deps.catalog, serviceSettingsMap(deps.db)).map((m) => m.id));
    const errors = checkSignupForm(body, { needPassword: false, consentField: 'consent', termsVersion: deps.config.termsVersion, open });
    if (errors.length) return form(reply, { name: body.name, email: body.email, services: body.services }, errors, 400);
    const lang = langOf(req);
    const result = await mediatorSignup(signupDeps(deps), req.principal!, {
      name: body.name!.trim(), email: body.email?.trim() || undefined, services: body.services!, termsVersion: body.consent!, lang,
    });
    // Each account, then what is linked to it (the webmail of a mail account), on the sheet to print.
    const accounts = accountsOfUser(deps.db, result.user.id).flatMap(({ account, instance }) => [{
      service: deps.catalog.services.get(instance.service)?.manifest.name[lang] ?? instance.service,
      access: accessOf(deps, instance, account.username, lang),
    }, ...linkedAccessOf(deps, instance, account.username, lang)]);
    return reply.page('sheet', {
      name: result.user.name, login: result.user.login, password: result.firstPassword, accounts,
      url: `${deps.config.publicUrl}/login`, date: new Date().toLocaleDateString(lang === 'fr' ? 'fr-FR' : 'en-GB'),
      mediator: req.user?.name ?? req.principal!.id,
    }, 201);
  });
};
