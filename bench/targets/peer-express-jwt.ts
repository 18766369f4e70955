// Peer: Microsoft's own Node sample pattern, express + express-jwt + jwks-rsa, configured as the
// jwks-rsa README recommends (cache and rate limit on), checking aud, iss, RS256 and the role.
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { expressjwt } from 'express-jwt'
import jwksRsa from 'jwks-rsa'
import { announce, hasRole, targetConfig } from './env.ts'

interface Req { auth?: { roles?: unknown } }
interface Res { status: (code: number) => Res, json: (body: unknown) => void }
type Next = (error?: unknown) => void
interface ExpressApp {
  disable: (setting: string) => void
  get: (path: string, ...handlers: Array<(req: Req, res: Res, next: Next) => void>) => void
  use: (handler: (error: { name?: string, status?: number }, req: Req, res: Res, next: Next) => void) => void
  listen: (port: number, host: string, callback: () => void) => { address: () => AddressInfo | string | null, close: (cb: () => void) => void }
}
// express 5 ships no types and @types/express is not installed: the few calls made are typed above.
const express = createRequire(import.meta.url)('express') as () => ExpressApp

const config = targetConfig()
const app = express()
app.disable('x-powered-by')
app.get('/claims',
  expressjwt({
    secret: jwksRsa.expressJwtSecret({ cache: true, rateLimit: true, jwksRequestsPerMinute: 10, jwksUri: config.jwksUri }),
    audience: config.audiences as [string, ...string[]],
    issuer: config.issuer,
    algorithms: ['RS256']
  }) as unknown as (req: Req, res: Res, next: Next) => void,
  (req, res, next) => {
    if (!hasRole(req.auth ?? {}, config.requiredRole)) { res.status(403).json({ error: 'insufficient_scope' }); return }
    next()
  },
  (req, res) => { res.json(req.auth) })
app.use((error, _req, res, next) => {
  if (error.name === 'UnauthorizedError') { res.status(401).json({ error: 'invalid_token' }); return }
  next(error)
})
const server = app.listen(config.port, config.host, () => { announce((server.address() as AddressInfo).port) })
process.once('SIGTERM', () => { server.close(() => process.exit(0)) })
