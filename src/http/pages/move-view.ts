// What the pages show of a person's move to another hoster (docs/migration-format.md): the peers they may choose,
// their move under way and its state. Read from the tables only; the forms act through http/pages/moves.ts.
import { accountsOfUser } from '../../accounts/accounts.js';
import type { Catalog } from '../../catalog/load.js';
import type { Db } from '../../db/connection.js';
import { hasRoom } from '../../federation/directory.js';
import { movesOf } from '../../federation/moves-source.js';
import { listPeers } from '../../federation/peers.js';
import type { FedMoveOut } from '../../federation/schema.js';
import type { Lang } from '../i18n.js';

/** Why a start did not go ahead, as a word the page it returns to turns into a sentence (me.eta, mediator-move.eta). */
export const START_REFUSALS = ['peer', 'busy', 'nothing', 'later', 'consent', 'failed'] as const;
export const refusalShown = (word: string | undefined) => ((START_REFUSALS as readonly string[]).includes(word ?? '') ? `move.refused.${word}` : null);

export interface MovePeer { id: number; name: string; url: string }

/** The catalog ids of a person's accounts that a move would take (those still in use here). */
export function movingServices(db: Db, userId: number): string[] {
  return [...new Set(accountsOfUser(db, userId).filter(({ account }) => account.state === 'active' || account.state === 'suspended')
    .map(({ instance }) => instance.service))];
}

/** Active peers (fingerprint confirmed, not suspended) whose last document says they have room for every one of these
 * services: a peer without room for one of them would refuse the whole move when it reads the manifest. */
export function peersFor(db: Db, services: string[]): MovePeer[] {
  if (!services.length) return [];
  return listPeers(db).filter((p) => p.state === 'active' && p.pinnedJwk)
    .filter((p) => services.every((id) => p.document.services.some((s) => s.id === id && hasRoom(s))))
    .map((p) => ({ id: p.id, name: p.name || p.url, url: p.url }));
}

/** The move that still needs the person: waiting for the destination (until its code expires), or received and
 * waiting for their confirmation. */
export function currentMove(db: Db, userId: number, now = new Date()): FedMoveOut | undefined {
  return movesOf(db, userId).filter((m) => m.state === 'received' || ((m.state === 'open' || m.state === 'transferring') && m.expiresAt > now.toISOString()))
    // A received one first: it is the one waiting for the person (a newer one cannot start while it is there).
    .sort((a, b) => Number(b.state === 'received') - Number(a.state === 'received') || b.createdAt.localeCompare(a.createdAt))[0];
}

export const whenOf = (iso: string, lang: Lang) =>
  new Date(iso).toLocaleString(lang === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'long', timeStyle: 'short', timeZone: 'Europe/Paris' });

/** The block the "move" section of a page is drawn from. `base`: where its forms go (/me/moves or /mediator/moves). */
export function moveSection(db: Db, catalog: Catalog, userId: number, lang: Lang, base: string) {
  const nameOf = (id: string) => catalog.services.get(id)?.manifest.name[lang] ?? id;
  const m = currentMove(db, userId);
  const peerName = m ? (listPeers(db).find((p) => p.id === m.peerId)?.name || m.peerUrl) : '';
  return {
    base,
    peers: m ? [] : peersFor(db, movingServices(db, userId)),
    services: movingServices(db, userId).map(nameOf),
    current: m ? {
      id: m.id, state: m.state, peer: peerName, expires: whenOf(m.expiresAt, lang),
      services: [...new Set(m.parts.map((p) => nameOf(p.service)))].join(', '),
    } : null,
  };
}
