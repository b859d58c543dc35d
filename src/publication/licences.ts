// Is a licence a free-software licence? Decided from a published list, never from a name's look: the SPDX licence
// list as the `spdx-license-list` package ships it (sindresorhus/spdx-license-list, generated from spdx.org's
// licenses.json), whose `osiApproved` flag is the Open Source Initiative's approval. That package carries no FSF flag
// (spdx.org's `isFsfLibre`), and no well-kept npm package does: a licence the FSF calls free but the OSI never
// approved (CC0-1.0, WTFPL, CC-BY-4.0…) is therefore "not verified", shown as such, never silently called free.
// Expressions are parsed by `spdx-expression-parse` (the parser npm itself uses).
import parse from 'spdx-expression-parse';
import spdx from 'spdx-license-list';

export type Verdict = 'free' | 'nonfree' | 'unverified';

type Node = { license: string; plus?: boolean; exception?: string } | { left: Node; conjunction: 'and' | 'or'; right: Node };

const byLower = new Map(Object.keys(spdx).map((id) => [id.toLowerCase(), id]));

/** The SPDX list's own spelling of an identifier, or undefined when the list does not know it. */
export function spdxId(name: string): string | undefined {
  return byLower.get(name.toLowerCase());
}

export const osiApproved = (id: string): boolean => spdx[id]?.osiApproved === true;

function judge(n: Node): Verdict {
  if ('license' in n) return osiApproved(n.license) ? 'free' : 'unverified';
  const a = judge(n.left), b = judge(n.right);
  // OR: the recipient may choose the freer one; AND: every part applies.
  if (n.conjunction === 'or') return a === 'free' || b === 'free' ? 'free' : a === 'unverified' || b === 'unverified' ? 'unverified' : 'nonfree';
  return a === 'nonfree' || b === 'nonfree' ? 'nonfree' : a === 'free' && b === 'free' ? 'free' : 'unverified';
}

/** An npm package's `license` field: an SPDX expression; `UNLICENSED` and `SEE LICENSE IN …` are npm's words for a
 * proprietary licence (docs.npmjs.com, package.json, "license"). */
export function npmVerdict(license: string | null): Verdict {
  if (!license) return 'unverified';
  if (/^UNLICENSED$/i.test(license.trim()) || /^SEE LICEN[CS]E IN /i.test(license.trim())) return 'nonfree';
  try {
    return judge(parse(license) as Node);
  } catch {
    return 'unverified';
  }
}

/** A Debian short licence name (DEP-5 §7: `GPL-2+`, `Expat`, `BSD-3-clause`…) as an SPDX identifier, when one
 * matches; the names DEP-5 defines differ from SPDX's in a few regular ways. */
export function debianToSpdx(name: string): string | undefined {
  const n = name.trim().replace(/\s+with\s+.*$/i, '');
  const gnu = /^(A|L)?GPL-(\d)(?:\.(\d))?(\+)?$/i.exec(n);
  if (gnu) return spdxId(`${(gnu[1] ?? '').toUpperCase()}GPL-${gnu[2]}.${gnu[3] ?? '0'}-${gnu[4] ? 'or-later' : 'only'}`);
  const gfdl = /^GFDL-(\d\.\d)(\+)?$/i.exec(n);
  if (gfdl) return spdxId(`GFDL-${gfdl[1]}-${gfdl[2] ? 'or-later' : 'only'}`);
  const aliases: Record<string, string> = { expat: 'MIT', 'apache-2': 'Apache-2.0', artistic: 'Artistic-1.0-Perl', 'psf-2': 'PSF-2.0', cc0: 'CC0-1.0', 'mpl-2': 'MPL-2.0' };
  return aliases[n.toLowerCase()] ?? spdxId(n);
}

/** Each name of a DEP-5 `License:` line (`GPL-2+ or Artistic`, `LGPL-2.1+ and GPL-2+`). */
export const debianNames = (line: string): string[] => line.split(/\s+(?:or|and)\s+|\s*,\s*/i).map((s) => s.trim()).filter(Boolean);

/** A Debian package: its archive section says whether Debian's ftpmasters found it free (DFSG, Debian Policy §2.2):
 * `main` is free software, `contrib` is free but needs something non-free, `non-free` and `non-free-firmware` are
 * not. A package's licences are read from its machine-readable copyright file and shown, but Debian's review of
 * the whole package decides: a DEP-5 name the SPDX list does not know (`public-domain`, `permissive`) is common in
 * main and is no sign of anything non-free. */
export function debianVerdict(section: string): Verdict {
  // "contrib/net" names its archive area; a bare "non-free" (or "contrib", "non-free-firmware") is the area itself.
  // A section without an area ("net") or an empty one is main's.
  const s = section.trim();
  const archive = s.includes('/') ? s.slice(0, s.indexOf('/')) : /^(contrib|non-free(-firmware)?|restricted|multiverse)$/.test(s) ? s : 'main';
  return archive === 'main' ? 'free' : 'nonfree';
}
