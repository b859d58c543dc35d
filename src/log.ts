// pino everywhere. Pretty output only when a person watches a terminal; JSON lines otherwise (journald, files, CI).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const pretty = !destination && process.stdout.isTTY && process.env.CI === undefined;
  const options: pino.LoggerOptions = {
    level,
    base: { app: 'cattery' },
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.secret', '*.password'], censor: '[redacted]' },
  };
  if (pretty) return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true } } });
  return destination ? pino(options, destination) : pino(options);
}
