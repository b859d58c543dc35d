// SMTP spoken by hand, for the tests that judge each reply of a mail server (nodemailer hides them): one command, one
// whole (possibly multi-line) reply; STARTTLS turns the same session into TLS in place. Shared by the mail tests.
import net from 'node:net';
import tls from 'node:tls';

export interface SmtpSession {
  /** Send one line and read the reply it gets, trimmed (`250 2.1.0 Ok`, or the lines of an EHLO answer). */
  cmd(line: string): Promise<string>;
  /** STARTTLS, then the TLS handshake on the same socket; fails on anything but a 220 or a certificate that does not
   * verify against `opts` (the caller gives `ca` and `servername`, never `rejectUnauthorized: false`). */
  starttls(opts: tls.ConnectionOptions): Promise<tls.TLSSocket>;
  close(): void;
  /** True once a reply did not come in time or the server hung up: the session is closed and must not be used
   * again (a late reply would otherwise be read as the answer to the next command: "503 nested MAIL command"). */
  readonly broken: boolean;
}

/** A session to `host:port`, its greeting read. `replyTimeoutMs` bounds each reply. */
export async function smtpSession(port: number, opts: { host?: string; replyTimeoutMs?: number } = {}): Promise<SmtpSession> {
  const timeout = opts.replyTimeoutMs ?? 30_000;
  let sock: net.Socket = net.connect(port, opts.host ?? '127.0.0.1');
  let buf = '';
  let closed = false;
  let broken = false;
  let wake: (() => void) | undefined;
  const onData = (d: Buffer) => { buf += d.toString('latin1'); wake?.(); };
  const onClose = () => { closed = true; wake?.(); };
  const attach = (s: net.Socket) => { s.on('data', onData); s.on('close', onClose); s.on('error', onClose); };
  attach(sock);
  const close = () => { sock.end(); sock.destroy(); };
  const reply = async (): Promise<string> => {
    const deadline = Date.now() + timeout;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\n/.exec(buf);
      if (m) { buf = buf.slice(m[0].length); return m[0].trim(); }
      if (closed || Date.now() > deadline) {
        broken = true;
        close();
        throw new Error(`SMTP on ${port}: no reply (${closed ? 'closed' : `nothing within ${timeout} ms`}) after ${JSON.stringify(buf)}`);
      }
      await new Promise<void>((r) => { wake = r; setTimeout(r, 500); });
    }
  };
  const cmd = (line: string) => {
    if (broken) return Promise.reject(new Error(`SMTP on ${port}: the session is broken`));
    sock.write(`${line}\r\n`);
    return reply();
  };
  await reply();
  return {
    cmd,
    async starttls(tlsOpts) {
      const r = await cmd('STARTTLS');
      if (!r.startsWith('220')) throw new Error(`STARTTLS: ${r}`);
      sock.removeListener('data', onData); sock.removeListener('close', onClose); sock.removeListener('error', onClose);
      const secure = tls.connect({ socket: sock, ...tlsOpts });
      await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject); });
      attach(secure);
      sock = secure;
      return secure;
    },
    close,
    get broken() { return broken || closed; },
  };
}
