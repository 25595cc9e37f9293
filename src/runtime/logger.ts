/**
 * The App's default logger: pino on stderr, human-readable lines on a terminal and pino's JSON
 * (one object a line) everywhere else, so log collectors get one shape and people get readable text.
 */
import { pino } from 'pino';
import type { Logger, LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import type { TributaryConfig } from './config.js';

export type LogFormat = TributaryConfig['logFormat'];

/** `auto` decided: pretty on a terminal, JSON when the lines go to a file, a pipe or a collector. */
export function resolveLogFormat(format: LogFormat, isTerminal: boolean): 'json' | 'pretty' {
  if (format === 'auto') return isTerminal ? 'pretty' : 'json';
  return format;
}

/** A pino logger on stderr (fd 2) in the given format; `isTerminal` defaults to whether stderr is a TTY. */
export function createDefaultLogger(
  options: LoggerOptions,
  format: LogFormat,
  isTerminal: boolean = process.stderr.isTTY === true,
): Logger {
  if (resolveLogFormat(format, isTerminal) === 'json') return pino(options, pino.destination(2));
  // In process and synchronous (no worker thread): the last lines before an exit are not lost.
  // One line per entry, its fields after the message: a terminal scrolls less and greps the same.
  const stream = pretty({
    destination: 2,
    sync: true,
    colorize: isTerminal,
    singleLine: true,
    ignore: 'pid,hostname',
  });
  return pino(options, stream);
}
