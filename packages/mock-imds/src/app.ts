import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { buildAdminApp } from './admin.ts'
import { FaultBoard } from './faults.ts'
import { Issuer } from './issuer.ts'
import { profiles } from './profiles.ts'
import type { ResolvedOptions } from './options.ts'
import { observabilityPlugin } from './plugins/observability.ts'
import { trafficPlugin, type RequestCounts } from './plugins/traffic.ts'
import { entraRoutes } from './routes/entra.ts'
import { identityEndpointRoutes } from './routes/identity-endpoint.ts'
import { imdsRoutes } from './routes/imds.ts'
import { sendJson } from './routes/token-request.ts'

declare module 'fastify' {
  interface FastifyInstance {
    issuer: Issuer
    faults: FaultBoard
    /** The admin API's own instance when an admin port is set; it listens once this app is ready. */
    admin: FastifyInstance | null
  }
}

const imdsOrigin = /^http:\/\/169\.254\.169\.254(:80)?(?=\/|$)/i

/**
 * Paths pino blanks out: the identity endpoint's secret and any bearer token a client sends. The
 * mock logs no token on purpose; this covers headers logged while debugging.
 */
const redact = { paths: ['req.headers["x-identity-header"]', 'req.headers.authorization', 'access_token', '*.access_token'], censor: '[redacted]' }

/** The server, built and never listening (tests use inject; startMockImds listens). */
export async function buildApp (config: ResolvedOptions, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const issuer = new Issuer(config.tenant, { lifetimeSeconds: config.tokenLifetimeSeconds })
  const faults = new FaultBoard()
  const counts: RequestCounts = { tokenRequests: 0, jwksRequests: 0, discoveryRequests: 0 }

  const app = Fastify({
    logger: { level: config.logLevel, redact },
    // With AZURE_POD_IDENTITY_AUTHORITY_HOST set, the SDK asks for .../oauth2/token/ (trailing slash).
    routerOptions: { ignoreTrailingSlash: true },
    // Request ids double as the correlation ids of error bodies, which Azure makes GUIDs.
    genReqId: () => randomUUID(),
    // A URL the router cannot even decode ("/%ZZ") gets the same JSON error as everything else.
    frameworkErrors: (error, _request, reply) => {
      sendJson(reply, 400, { error: 'invalid_request', error_description: error.message })
    },
    ...options
  })
  // IMDS at its real address through HTTP_PROXY: the SDK then sends the absolute URL
  // ("GET http://169.254.169.254/metadata/..."), which the router serves by its path. Any other
  // absolute URL is refused, so that the mock never answers in another host's name.
  app.addHook('onRequest', async (request, reply) => {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(request.originalUrl) && !imdsOrigin.test(request.originalUrl)) {
      return sendJson(reply, 404, { error: 'not_found', error_description: 'As a proxy, mock-imds only answers for IMDS at http://169.254.169.254.' })
    }
  })
  // Whatever goes wrong outside the routes' own answers still gets a JSON error in IMDS's shape.
  app.setNotFoundHandler(async (request, reply) =>
    sendJson(reply, 404, { error: 'not_found', error_description: `No such endpoint: ${request.method} ${request.url.split('?')[0]}` }))
  app.setErrorHandler(async (error: { statusCode?: number, message: string }, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
    if (status === 500) request.log.error({ err: error }, 'request failed')
    return sendJson(reply, status, status === 500
      ? { error: 'server_error', error_description: 'An internal error occurred.' }
      : { error: 'invalid_request', error_description: error.message })
  })
  app.decorate('issuer', issuer)
  app.decorate('faults', faults)
  await app.register(observabilityPlugin, { registry: config.registry })
  await app.register(trafficPlugin, { faults, counts })
  const profile = profiles[config.platform]
  if (profile.endpoint === 'imds') await app.register(imdsRoutes, { issuer })
  else await app.register(identityEndpointRoutes, { issuer, identityHeader: config.identityHeader, profile })
  // The other endpoint does not exist on this platform; the 404 says so, so that a test pointed
  // the wrong way fails with the reason rather than a bare "not found".
  const absent = profile.endpoint === 'imds' ? '/msi/token' : '/metadata/identity/oauth2/token'
  app.all(absent, async (_request, reply) => sendJson(reply, 404, {
    error: 'not_found',
    error_description: `mock-imds answers as ${profile.title} (--platform ${profile.platform}), which has no ${absent}: ` +
      (profile.endpoint === 'imds' ? 'start it with --platform app-service or container-apps for the identity endpoint' : 'start it with --platform vm for IMDS')
  }))
  await app.register(entraRoutes, { issuer })

  const adminPort = config.adminPort
  if (adminPort === undefined) {
    app.decorate('admin', null)
    return app
  }
  const admin = buildAdminApp({ issuer, faults, counts }, { loggerInstance: app.log.child({ listener: 'admin' }) })
  app.decorate('admin', admin)
  // The admin listener lives and dies with the public one; its log line is worded differently
  // so that nothing waiting for "Server listening at" mistakes its port for the public one.
  app.addHook('onReady', async () => {
    await admin.listen({
      host: config.adminHost,
      port: adminPort,
      listenTextResolver: (address) => `Admin API listening at ${address}`
    })
  })
  app.addHook('onClose', async () => { await admin.close() })
  return app
}
