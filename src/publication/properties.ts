// `.properties` text as java.util.Properties reads it (Properties.load(Reader), the format StatoolInfos parses):
// one `key = value` per line, with the escapes Properties.store writes — backslash, the separators = and :, the
// comment marks # and !, a leading space, and \t \n \r \f — so that a value with a line break, an `=` or a `:` comes
// back whole. The file is served as UTF-8 (ChatonsInfos asks for it), so other characters are written as themselves;
// control characters and lone surrogates, which UTF-8 cannot carry or a reader would drop, as \uXXXX.

const SIMPLE: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\f': '\\f', '=': '\\=', ':': '\\:', '#': '\\#', '!': '\\!' };

function escape(s: string, isKey: boolean): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    if (SIMPLE[ch]) { out += SIMPLE[ch]; continue; }
    // A space is a separator in a key, and leading spaces of a value are skipped by the reader.
    if (ch === ' ' && (isKey || i === 0)) { out += '\\ '; continue; }
    const lone = code >= 0xd800 && code <= 0xdfff && !(code <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) && !(code >= 0xdc00 && (s.charCodeAt(i - 1) & 0xfc00) === 0xd800);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029 || lone) {
      out += `\\u${code.toString(16).padStart(4, '0')}`;
      continue;
    }
    out += ch;
  }
  return out;
}

/** Sections of `key = value` lines, each under a comment. */
export function properties(sections: { title: string; entries: [string, string][] }[]): string {
  const out: string[] = [];
  for (const s of sections) {
    out.push(`# [${s.title}]`);
    for (const [k, v] of s.entries) out.push(`${escape(k, true)} = ${escape(v, false)}`);
    out.push('');
  }
  return out.join('\n');
}
