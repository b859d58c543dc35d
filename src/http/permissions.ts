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
  // placement that saves energy (orchestrator/placement.ts): where a new instance would go; a consolidation plan
  'GET /api/servers/placement': ADMIN,
  'GET /api/servers/consolidation': ADMIN,
  // moves between servers, draining one, a down instance restored elsewhere (orchestrator/relocate.ts)
  'POST /api/servers/:name/drain': ADMIN,
  'POST /api/instances/:slug/move': ADMIN,
  'POST /api/instances/:slug/restore-elsewhere': ADMIN,
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
  // housekeeping (orchestrator/housekeeping.ts): volumes no instance claims, unused images
  'GET /api/volumes/orphans': ADMIN,
  'POST /api/volumes/orphans/:name/archive': ADMIN,
  'POST /api/volumes/orphans/:name/drop': ADMIN,
  'POST /api/images/gc': ADMIN,
  // backups (backups/)
  'GET /api/backups': ADMIN,
  'GET /api/backups/:name/runs': ADMIN,
  'POST /api/backups/:name/run': ADMIN,
  'POST /api/backups/:name/restore': ADMIN,
  'POST /api/backups/:name/restore-account': ADMIN,
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
  'POST /api/instances/:slug/accounts/:username/import': ADMIN,
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
  // metering: the city reads servers, and services as the open data publishes them (the handlers withhold the rest);
  // instances (one can be one resident), the top list and Prometheus's per-instance series are the administrators'
  'GET /api/metering/power': ['admin', 'city'],
  'GET /api/metering/energy': ['admin', 'city'],
  'GET /api/metering/top': ADMIN,
  'GET /api/metering/stream': ['admin', 'city'],
  'GET /api/metering/accounts/:slug/:username': ADMIN,
  'PUT /api/servers/:name/energy': ADMIN,
  // a node's `cattery agent` (agent/): known by the signature of its body only, by the key enrolled for its server
  // (auth.ts, config.signature; no cookie, no token); its enrolment, by the one-time token an administrator issued
  'POST /api/agent/enrol': ['agent'],
  'POST /api/agent/samples': ['agent'],
  'POST /api/servers/:name/agent/enrolment': ADMIN,
  'GET /api/agents': ADMIN,
  'DELETE /api/servers/:name/agent': ADMIN,
  'GET /metrics': ADMIN,
  // the front door: the DNS records of the association's domains (they name the mail host and its keys: admin only)
  'GET /api/dns/:domain': ADMIN,
  'POST /api/dns/:domain/check': ADMIN,
  // governance (governance/): the board admits and runs meetings and polls; the treasurer's work (payments, settings)
  // is the admins'; the city reads counts per college, never a name; the register of decisions is public
  'GET /api/governance': ['admin', 'board'],
  'PATCH /api/governance/settings': ADMIN,
  'PUT /api/governance/colleges': ADMIN,
  'PUT /api/governance/categories/:slug': ADMIN,
  'GET /api/governance/counts': ['admin', 'board', 'city'],
  'GET /api/services/settings': ADMIN,
  'PUT /api/services/:id/settings': ADMIN,
  'GET /api/members': ['admin', 'board'],
  'POST /api/members': ADMIN,
  'GET /api/members/:id': ['admin', 'board'],
  'PATCH /api/members/:id': ADMIN,
  'POST /api/members/:id/admit': ['admin', 'board'],
  'POST /api/members/:id/refuse': ['admin', 'board'],
  'POST /api/members/:id/resign': ADMIN,
  'POST /api/members/:id/exclude': ['admin', 'board'],
  'GET /api/members/:id/payments': ADMIN,
  'POST /api/members/:id/payments': ADMIN,
  'GET /api/meetings': ['admin', 'board', 'member'],
  'POST /api/meetings': ['admin', 'board'],
  'GET /api/meetings/:id': ['admin', 'board'],
  'PUT /api/meetings/:id/attendance': ['admin', 'board'],
  'POST /api/meetings/:id/proxies': ['admin', 'board'],
  'GET /api/polls': ['admin', 'board', 'member'],
  'POST /api/polls': ['admin', 'board'],
  'GET /api/polls/:id': ['admin', 'board', 'member'],
  'POST /api/polls/:id/apply': ADMIN,
  'GET /api/decisions': PUBLIC,
  // publication (publication/): open data and the ChatonsInfos files are for anyone, by design; every figure in them
  // has been through statistical secrecy (publication/suppression.ts), so no person can be read from them
  'GET /open-data/datapackage.json': PUBLIC,
  'GET /open-data/:dataset/schema.json': PUBLIC,
  'GET /open-data/:dataset/:file': PUBLIC,
  'GET /.well-known/chatonsinfos/': PUBLIC,
  'GET /.well-known/chatonsinfos/organization.properties': PUBLIC,
  'GET /.well-known/chatonsinfos/:file': PUBLIC,
  // transparency (http/pages/transparency.ts): generated statements for anyone; the register's public page shows
  // counts per year and kind only. Recording a request, and reading one with its note, is the administrators'.
  'GET /transparency': PUBLIC,
  'GET /transparency/software': PUBLIC,
  'GET /transparency/requests': PUBLIC,
  'GET /transparency/report/:file': PUBLIC,
  'GET /admin/requests': ADMIN,
  'POST /admin/requests': ADMIN,
  'GET /api/authority-requests': ADMIN,
  'POST /api/authority-requests': ADMIN,
  // federation (federation/): the signed hoster document and monthly reports are for anyone, peers first (the
  // reports are the open data above, after the same secrecy); peers and alarms are the administrators'
  'GET /.well-known/cattery': PUBLIC,
  'GET /.well-known/cattery/reports/:month': PUBLIC,
  'GET /api/federation': ADMIN,
  'POST /api/federation/peers': ADMIN,
  'POST /api/federation/peers/:id/confirm': ADMIN,
  'POST /api/federation/peers/:id/suspend': ADMIN,
  'POST /api/federation/peers/:id/resume': ADMIN,
  'POST /api/federation/peers/:id/refresh': ADMIN,
  'DELETE /api/federation/peers/:id': ADMIN,
  // resident moves (docs/migration-format.md). The peer's three are public here because no login or token applies:
  // each request carries a JWS signed by the key pinned for that peer with the code's hash, checked by the domain
  // (federation/moves-source.ts authenticateMoveRequest) before anything is read; the `peer` role of the issue.
  'GET /api/federation/moves/manifest': PUBLIC,
  'GET /api/federation/moves/parts/:index': PUBLIC,
  'POST /api/federation/moves/receipt': PUBLIC,
  // A person's own moves; a mediator or admin may start one for a person, with the consent they recorded.
  'POST /api/moves': ['resident', 'mediator', 'admin'],
  'GET /api/moves': ['resident', 'mediator', 'admin'],
  'POST /api/moves/:id/confirm': ['resident', 'mediator', 'admin'],
  'POST /api/moves/:id/cancel': ['resident', 'mediator', 'admin'],
  // A newcomer arriving with a transfer code (the sign-up's job): what it triggers is a pull from a pinned peer only.
  'POST /api/moves/arrivals': PUBLIC,
  'GET /federation': PUBLIC,
  'GET /federation/reports': PUBLIC,
  'GET /admin/federation': ADMIN,
  'POST /admin/federation/peers': ADMIN,
  'POST /admin/federation/peers/:id/confirm': ADMIN,
  'POST /admin/federation/peers/:id/suspend': ADMIN,
  'POST /admin/federation/peers/:id/resume': ADMIN,
  'POST /admin/federation/peers/:id/remove': ADMIN,
  'POST /admin/federation/peers/:id/refresh': ADMIN,
  // pages
  'GET /': PUBLIC,
  'GET /assets/cattery.css': PUBLIC,
  'GET /assets/live-power.js': PUBLIC,
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
  // Moving to another hoster (http/pages/moves.ts): one's own move on "my services" (the domain answers "no such
  // move" for another person's), a mediator's for a resident with their consent, and the arrival beside the sign-up.
  'POST /me/moves': SIGNED_IN,
  'POST /me/moves/:id/confirm': SIGNED_IN,
  'POST /me/moves/:id/cancel': SIGNED_IN,
  'GET /mediator/moves': ['mediator', 'admin'],
  'POST /mediator/moves': ['mediator', 'admin'],
  'POST /mediator/moves/:id/confirm': ['mediator', 'admin'],
  'POST /mediator/moves/:id/cancel': ['mediator', 'admin'],
  'GET /signup/move': PUBLIC,
  'POST /signup/move': PUBLIC,
  'GET /mediator': ['mediator', 'admin'],
  'POST /mediator/signup': ['mediator', 'admin'],
  'GET /admin': ADMIN,
  'GET /dashboard': ['admin', 'city'],
  // the power figure of the dashboards, live: a page WebSocket (cookie, Origin checked), aggregates only
  'GET /dashboard/live': ['admin', 'city'],
  // the dashboards as charts (http/pages/charts.ts): the city's is aggregates after statistical secrecy; the health
  // page names instances and operations (administrators only); a resident's shows their own accounts only
  'GET /dashboard/city': ['admin', 'city'],
  'GET /dashboard/city/:file': ['admin', 'city'],
  'GET /admin/health': ADMIN,
  'GET /admin/health/:file': ADMIN,
  'GET /me/usage': SIGNED_IN,
  'GET /me/usage/:file': SIGNED_IN,
  'POST /admin/signups/:id/approve': ADMIN,
  'POST /admin/signups/:id/reject': ADMIN,
  'POST /admin/volumes/:name/archive': ADMIN,
  'POST /admin/volumes/:name/drop': ADMIN,
  'POST /admin/backups/:name/run': ADMIN,
  'POST /admin/instances/:slug/restore-elsewhere': ADMIN,
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
