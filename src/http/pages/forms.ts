// Checks of the sign-up forms, field by field, with the message a person reads next to the field. The domain
// checks the same things again (identity/users.ts, identity/signup.ts); these are for saying it kindly.
import { Type } from '@sinclair/typebox';
import { EMAIL_PATTERN, NAME_PATTERN } from '../../identity/users.js';
import { PASSWORD_MAX, PASSWORD_MIN } from '../../accounts/accounts.js';
import type { MessageKey } from '../i18n.js';

const Field = (max: number) => Type.String({ maxLength: max });
/** Form bodies: strings only, bounded; a field the form does not have is refused (additionalProperties). */
export const SignupBody = Type.Object({
  _csrf: Type.Optional(Field(200)),
  name: Type.Optional(Field(200)),
  email: Type.Optional(Field(300)),
  services: Type.Optional(Type.Array(Field(40), { maxItems: 20 })),
  password: Type.Optional(Field(PASSWORD_MAX + 100)),
  password2: Type.Optional(Field(PASSWORD_MAX + 100)),
  terms: Type.Optional(Field(40)),
  consent: Type.Optional(Field(40)),
}, { additionalProperties: false });
export type SignupForm = { name?: string; email?: string; services?: string[]; password?: string; password2?: string; terms?: string; consent?: string };

const NAME_RE = new RegExp(NAME_PATTERN, 'u');
const EMAIL_RE = new RegExp(EMAIL_PATTERN);

export interface FieldError { field: string; key: MessageKey }

export function checkSignupForm(body: SignupForm, opts: { needPassword: boolean; consentField: 'terms' | 'consent'; termsVersion: string; open: Set<string> }): FieldError[] {
  const errors: FieldError[] = [];
  const name = (body.name ?? '').trim();
  if (!NAME_RE.test(name)) errors.push({ field: 'name', key: 'err.name' });
  const email = (body.email ?? '').trim();
  if (email && !EMAIL_RE.test(email)) errors.push({ field: 'email', key: 'err.email' });
  const services = body.services ?? [];
  if (services.length === 0 || services.some((s) => !opts.open.has(s))) errors.push({ field: 'services', key: 'err.services' });
  if (opts.needPassword) {
    const p = body.password ?? '';
    if (p.length < PASSWORD_MIN || p.length > PASSWORD_MAX) errors.push({ field: 'password', key: 'err.password' });
    else if (p !== body.password2) errors.push({ field: 'password2', key: 'err.password2' });
  }
  if (body[opts.consentField] !== opts.termsVersion) errors.push({ field: opts.consentField, key: 'err.terms' });
  return errors;
}
