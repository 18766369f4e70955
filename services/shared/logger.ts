import type { FastifyServerOptions } from 'fastify'

/**
 * Paths pino blanks out wherever they appear in a log line. The services never log a token on
 * purpose; this is the belt to that pair of braces, for headers and bodies logged while debugging.
 */
export const redactedPaths = [
  'req.headers.authorization',
  'req.headers["x-identity-header"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-identity-header"]',
  'authorization',
  'token',
  'accessToken',
  'access_token',
  '*.token',
  '*.accessToken',
  '*.access_token'
]

export function loggerOptions (level: string): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' }
  }
}
