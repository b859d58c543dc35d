// Just enough of tar (POSIX ustar) for the export and its inverse, the import. The writer: a header per entry,
// written before the entry's bytes, so that an archive can be streamed entry by entry without a temporary folder.
// Names up to 255 bytes (the ustar prefix field takes the folder): a pad's entry is at most 32 + 1 + 64 + 4 bytes.
// The reader is strict on purpose: it reads what the writer writes (ustar headers with a valid checksum, octal
// sizes, the end marker of two zero blocks) and refuses the rest as malformed or truncated, never guessing.
'use strict';

const octal = (n, width) => `${n.toString(8).padStart(width - 1, '0')}\0`;

/** The 512-byte header of a regular file (type '0') or a folder (type '5'). */
function tarHeader(name, size, type = '0') {
  const h = Buffer.alloc(512);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  if (Buffer.byteLength(base) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: name too long: ${name}`);
  h.write(base, 0, 100, 'utf8');
  h.write(octal(type === '5' ? 0o755 : 0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(Date.now() / 1000), 12), 136, 'ascii');
  h.fill(0x20, 148, 156);
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** Two zero blocks end an archive. */
const TAR_END = Buffer.alloc(1024);

class TarError extends Error {}

/** A NUL-terminated header field as text. */
const field = (h, at, len) => {
  const f = h.subarray(at, at + len);
  const end = f.indexOf(0);
  return f.subarray(0, end < 0 ? len : end).toString('utf8');
};
/** A numeric header field: octal digits, padded with spaces or NULs (base-256 sizes are not the writer's). */
const octalField = (h, at, len) => {
  const text = h.subarray(at, at + len).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,12}$/.test(text)) throw new TarError('malformed tar header (a number field)');
  return parseInt(text, 8);
};

/** One 512-byte header: { name, size, type } (type '0' for a regular file, whatever else as its flag). */
function parseHeader(h) {
  const stored = octalField(h, 148, 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  if (sum !== stored) throw new TarError('malformed tar header (checksum)');
  const magic = h.subarray(257, 263).toString('latin1');
  if (magic !== 'ustar\0' && magic !== 'ustar ') throw new TarError('not a ustar archive');
  const base = field(h, 0, 100);
  const prefix = magic === 'ustar\0' ? field(h, 345, 155) : '';
  const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]);
  return { name: prefix ? `${prefix}/${base}` : base, size: octalField(h, 124, 12), type };
}

/** A push parser: `push(chunk)` returns the entries completed by it ({ name, size, type, body }), `end()` checks
 * that the archive ended where an archive ends. A member's body is held whole: none may pass `maxMember` bytes. */
function tarReader({ maxMember }) {
  let buf = Buffer.alloc(0);
  let header = null;
  let zeros = 0;
  return {
    push(chunk) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const out = [];
      for (;;) {
        if (zeros >= 2) {
          // After the end marker only zero padding may follow (tar pads archives to a record).
          if (buf.some((b) => b !== 0)) throw new TarError('data after the end of the archive');
          buf = Buffer.alloc(0);
          return out;
        }
        if (!header) {
          if (buf.length < 512) return out;
          const h = buf.subarray(0, 512);
          buf = buf.subarray(512);
          if (h.every((b) => b === 0)) { zeros += 1; continue; }
          if (zeros > 0) throw new TarError('malformed tar archive (a lone zero block)');
          header = parseHeader(h);
          if (header.size > maxMember) throw new TarError(`member ${header.name} is too large (${header.size} bytes)`);
        }
        const padded = Math.ceil(header.size / 512) * 512;
        if (buf.length < padded) return out;
        out.push({ ...header, body: Buffer.from(buf.subarray(0, header.size)) });
        buf = buf.subarray(padded);
        header = null;
      }
    },
    end() {
      if (zeros < 2 || header) throw new TarError('truncated tar archive');
    },
  };
}

module.exports = { tarHeader, TAR_END, tarReader, TarError };
