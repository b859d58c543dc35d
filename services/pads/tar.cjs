// Just enough of a tar writer (POSIX ustar) for the export: a header per entry, written before the entry's bytes,
// so that an archive can be streamed entry by entry without a temporary folder. Names up to 255 bytes (the ustar
// prefix field takes the folder): a pad's entry is at most 32 + 1 + 64 + 4 bytes.
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

module.exports = { tarHeader, TAR_END };
