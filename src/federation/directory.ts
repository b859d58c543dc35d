// The directory: the active peers and the services where they have room, from their last accepted documents; and,
// for the sign-up page, which of our services are full here and which peers are open for the same catalog id.
import type { Catalog } from '../catalog/load.js';
import type { Config } from '../config.js';
import type { Db } from '../db/connection.js';
import { offeredToResidents, type DocumentService } from './document.js';
import { listPeers } from './peers.js';

export interface DirectoryEntry { name: string; url: string; chatons: boolean; open: DocumentService[]; fetchedAt: string }

/** Room for a newcomer: anyone may sign up (Free) and the hoster is not FULL. */
export const hasRoom = (s: Pick<DocumentService, 'registration' | 'load'>) => s.registration === 'Free' && s.load === 'OPEN';

/** Active peers only: a pending peer is not trusted yet, a suspended one is refused everywhere. */
export function directory(db: Db): DirectoryEntry[] {
  return listPeers(db).filter((p) => p.state === 'active').map((p) => ({
    name: p.name, url: p.url, chatons: p.document.chatons.member, open: p.document.services.filter(hasRoom), fetchedAt: p.fetchedAt,
  }));
}

export interface FullHere { id: string; name: { fr: string; en: string }; peers: { name: string; url: string }[] }

/** Our services meant for sign-up (the manifest opens them) that a newcomer cannot get here now: closed by a decision
 * (governance's settings), or FULL by capacity (publication/chatonsinfos.ts's load); each with the peers open for it. */
export function fullHere(d: { db: Db; catalog: Catalog; config: Config }): FullHere[] {
  const entries = directory(d.db);
  return offeredToResidents(d)
    .filter((s) => d.catalog.services.get(s.id)?.manifest.openForSignup && !hasRoom(s))
    .map((s) => ({ id: s.id, name: s.name, peers: entries.filter((e) => e.open.some((o) => o.id === s.id)).map((e) => ({ name: e.name, url: e.url })) }));
}
