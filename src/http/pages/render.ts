// What every page needs: the language, the translator, the person signed in, a CSRF token for its forms, and the
// security headers of an HTML page (no script at all, nothing from elsewhere).
import { cookieOptions } from '../cookies.js';
import { csrfBinding } from '../csrf.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pickLang, translator, type Lang, type Translate } from '../i18n.js';

declare module 'fastify' {
  interface FastifyReply {
    page(template: string, data?: Record<string, unknown>, status?: number): Promise<FastifyReply>;
  }
}

export interface PageContext {
  lang: Lang; t: Translate; csrf: string; path: string;
  user: { name: string; login: string; roles: string[] } | null;
  otherLang: Lang;
}

export function langOf(req: FastifyRequest): Lang {
  return pickLang(req.query, req.cookies?.[req.server.cookieNames.lang], req.headers['accept-language']);
}

/** `script`: the page loads one of cattery's own scripts (the live power's), which may open a WebSocket back to cattery.
 * Every other page runs no script at all. */
export function pageHeaders(reply: FastifyReply, formTargets: string[], script = false): void {
  reply.header('content-type', 'text/html; charset=utf-8');
  reply.header('content-security-policy',
    `default-src 'none'; style-src 'self'; img-src 'self' data:; ${script ? "script-src 'self'; connect-src 'self'; " : ''}form-action 'self' ${formTargets.join(' ')}; frame-ancestors 'none'; base-uri 'none'`);
  reply.header('referrer-policy', 'same-origin');
  reply.header('x-frame-options', 'DENY');
  reply.header('cache-control', 'no-store');
}

export function makePage(formTargets: string[]) {
  return async function page(this: FastifyReply, template: string, data: Record<string, unknown> = {}, status = 200): Promise<FastifyReply> {
    const req = this.request;
    const lang = langOf(req);
    if ((req.query as { lang?: string } | undefined)?.lang === lang) this.setCookie(this.server.cookieNames.lang, lang, { ...cookieOptions(this.server.cookieNames.secure), maxAge: 365 * 86400 });
    const ctx: PageContext = {
      // `path` only marks the menu's current entry and builds the language switch link: no decision is made from it.
      lang, t: translator(lang), csrf: this.generateCsrf({ userInfo: csrfBinding(req) }), path: req.url.split('?')[0] ?? '/',
      // The session's roles, membership's included (auth.ts): a member's menu shows the votes.
      user: req.user ? { name: req.user.name, login: req.user.login, roles: req.principal?.roles ?? req.user.roles } : null,
      otherLang: lang === 'fr' ? 'en' : 'fr',
    };
    pageHeaders(this, formTargets, data.script === true);
    this.code(status);
    return this.view(template, { ...ctx, ...data });
  };
}
