// Who may call what: the one table. Every route of the app must have its line here (app.ts refuses to build
// otherwise), and tests/identity/roles-matrix.test.ts walks every route × every role from the app's own route list.
// The city sees aggregates only: no route that returns one person's data lists it.
import type { Role } from '../identity/roles.js';

const SIGNED_IN: readonly Role[] = ['resident', 'mediator', 'admin', 'city', 'member', 'board'];
const PUBLIC: readonly Role[] = ['public'];
const ADMIN: readonly Role[] = ['admin'];

export const PERMISSIONS: Record<string, readonly Role[]> = {
  // system
  'GET /healthz': PUBLIC,
  'GET /api/openapi.json': PUBLIC,
  // catalog: what the association offers is public
  'GET /api/catalog': PUBLIC,
  'GET /api/catalog/:id': ADMIN,
  // servers and instances
  'GET /api/servers': ADMIN,
  'POST /api/servers': ADMIN,
  'GET /api/instances': ADMIN,
  'POST /api/instances': ADMIN,
  'GET /api/instances/:slug': ADMIN,
  'PATCH /api/instances/:slug': ADMIN,
  'DELETE /api/instances/:slug': ADMIN,
  'POST /api/instances/:slug/start': ADMIN,
  'POST /api/instances/:slug/stop': ADMIN,
  'POST /api/instances/:slug/restart': ADMIN,
  'POST /api/instances/:slug/upgrade': ADMIN,
  'GET /api/instances/:slug/operations': ADMIN,
  // the front door
  'GET /api/instances/:slug/hostnames': ADMIN,
  'PUT /api/instances/:slug/hostnames': ADMIN,
  'GET /api/instances/:slug/public-ports': ADMIN,
  'PUT /api/instances/:slug/public-ports': ADMIN,
  'GET /api/ingress': ADMIN,
  'GET /api/events': ADMIN,
  // residents' accounts (a person's data: never the city)
  'GET /api/instances/:slug/accounts': ADMIN,
  'POST /api/instances/:slug/accounts': ADMIN,
  'GET /api/instances/:slug/accounts/:username': ADMIN,
  'PATCH /api/instances/:slug/accounts/:username': ADMIN,
  'DELETE /api/instances/:slug/accounts/:username': ADMIN,
  'POST /api/instances/:slug/accounts/:username/suspend': ADMIN,
  'POST /api/instances/:slug/accounts/:username/resume': ADMIN,
  'GET /api/instances/:slug/accounts/:username/export': ADMIN,
  // identity
  'GET /api/me': SIGNED_IN,
  'GET /api/users': ADMIN,
  'POST /api/users': ADMIN,
  'PATCH /api/users/:login': ADMIN,
  'GET /api/tokens': ADMIN,
  'POST /api/tokens': ADMIN,
  'DELETE /api/tokens/:id': ADMIN,
  'GET /api/signups': ADMIN,
  'POST /api/signups/:id/approve': ADMIN,
  'POST /api/signups/:id/reject': ADMIN,
  // metering: the city reads aggregates (servers, services, instances), never one account
  'GET /api/metering/power': ['admin', 'city'],
  'GET /api/metering/energy': ['admin', 'city'],
  'GET /api/metering/top': ['admin', 'city'],
  'GET /api/metering/stream': ['admin', 'city'],
  'GET /api/metering/accounts/:slug/:username': ADMIN,
  'PUT /api/servers/:name/energy': ADMIN,
  'GET /metrics': ['admin', 'city'],
  // the front door: the DNS records of the association's domains (they name the mail host and its keys: admin only)
  'GET /api/dns/:domain': ADMIN,
  'POST /api/dns/:domain/check': ADMIN,
  // pages
  'GET /': PUBLIC,
  'GET /assets/cattery.css': PUBLIC,
  'GET /terms': PUBLIC,
  'GET /signup': PUBLIC,
  'POST /signup': PUBLIC,
  'GET /login': PUBLIC,
  'POST /login': PUBLIC,
  'GET /login/oidc': PUBLIC,
  'GET /auth/callback': PUBLIC,
  'POST /logout': SIGNED_IN,
  'GET /me': SIGNED_IN,
  'POST /me/password': SIGNED_IN,
  'GET /me/accounts/:id/export': SIGNED_IN,
  'POST /me/accounts/:id/delete': SIGNED_IN,
  // mail client set-up (http/pages/mail-client.ts): what mail programs and sending servers fetch without an account
  // is public by the protocols' design (Thunderbird autoconfig, RFC 8461 §3.3); a profile is the resident's own
  'GET /.well-known/autoconfig/mail/config-v1.1.xml': PUBLIC,
  'GET /mail/config-v1.1.xml': PUBLIC,
  'GET /.well-known/mta-sts.txt': PUBLIC,
  'GET /me/accounts/:id/mail.mobileconfig': SIGNED_IN,
  'GET /mediator': ['mediator', 'admin'],
  'POST /mediator/signup': ['mediator', 'admin'],
  'GET /admin': ADMIN,
  'GET /dashboard': ['admin', 'city'],
  'POST /admin/signups/:id/approve': ADMIN,
  'POST /admin/signups/:id/reject': ADMIN,
  'GET /admin/dns': ADMIN,
  'POST /admin/dns/check': ADMIN,
  'GET /admin/names': ADMIN,
  'POST /admin/names/:slug': ADMIN,
  // governance pages (http/pages/membership.ts, votes.ts, decisions.ts, board.ts, members-admin.ts, dues-pages.ts):
  // one's own membership is any signed-in person's; votes are members'; the register is public like the minutes; the
  // board runs meetings and polls and, with the administrators, admits members; money and the treasurer's files are
  // the administrators'; the mediators print the reminders of members without email. Never the city: no name.
  'GET /me/membership': SIGNED_IN,
  'POST /me/membership/apply': SIGNED_IN,
  'POST /me/membership/resign': SIGNED_IN,
  'GET /me/membership/export': SIGNED_IN,
  'GET /votes': ['member', 'board'],
  'POST /votes/:id': ['member', 'board'],
  'GET /decisions': PUBLIC,
  'GET /decisions/:id': PUBLIC,
  'GET /board': ['board', 'admin'],
  'POST /board/meetings': ['board', 'admin'],
  'GET /board/meetings/:id': ['board', 'admin'],
  'POST /board/meetings/:id/attendance': ['board', 'admin'],
  'POST /board/meetings/:id/proxies': ['board', 'admin'],
  'POST /board/meetings/:id/proxies/withdraw': ['board', 'admin'],
  'POST /board/polls': ['board', 'admin'],
  'GET /admin/members': ['admin', 'board'],
  'POST /admin/members': ['admin', 'board'],
  'POST /admin/members/:id': ['admin', 'board'],
  'POST /admin/members/:id/admit': ['admin', 'board'],
  'POST /admin/members/:id/refuse': ['admin', 'board'],
  'POST /admin/members/:id/exclude': ['admin', 'board'],
  'POST /admin/members/:id/payments': ADMIN,
  'GET /admin/dues': ADMIN,
  'GET /admin/members.csv': ADMIN,
  'GET /admin/payments.csv': ADMIN,
  'GET /mediator/dues': ['mediator', 'admin'],
};

export const permissionKey = (method: string, url: string) => `${method} ${url}`;
