import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/lib/logger';

export interface CapturedLogger {
  logger: Logger;
  lines: string[];
  /** Every captured line joined: for "this secret appears nowhere" assertions. */
  text(): string;
}

export function captureLogger(level = 'debug'): CapturedLogger {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ level, json: true, stream }), lines, text: () => lines.join('') };
}
