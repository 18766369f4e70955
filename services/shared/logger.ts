import type { FastifyRequest, FastifyServerOptions } from 'fastify'

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

/**
 * Query parameters whose values are credentials. A client that puts a token in the URL (RFC 6750
 * §2.3, which the api refuses) must not get it written to the request log either.
 */
const secretQuery = /([?&](?:access_token|id_token|refresh_token|token|code|client_secret|client_assertion)=)[^&#]*/gi

export const redactUrl = (url: string): string => url.replace(secretQuery, '$1[redacted]')

export function loggerOptions (level: string): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    hooks: {
      // Messages are text, out of redact's reach: Fastify's 404 line ("Route GET:/x?access_token=... not
      // found") carries the raw URL. Found by the end-to-end log scan (test/e2e/log-redaction.test.ts).
      logMethod (args, method) {
        method.apply(this, args.map((arg) => typeof arg === 'string' ? redactUrl(arg) : arg) as Parameters<typeof method>)
      }
    },
    serializers: {
      // Fastify's own request serializer, with the URL's credentials blanked out.
      req (request: FastifyRequest) {
        return {
          method: request.method,
          url: redactUrl(request.url),
          host: request.host,
          remoteAddress: request.ip,
          remotePort: request.socket?.remotePort
        }
      }
    }
  }
}
