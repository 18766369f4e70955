import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.ts'
import { resolveOptions, type MockImdsOptions } from './options.ts'

/** A mock-imds that listens. */
export interface RunningMockImds {
  /** Base URL of the public listener, e.g. `http://127.0.0.1:3002`: `AZURE_POD_IDENTITY_AUTHORITY_HOST`, or `${url}/msi/token` for `IDENTITY_ENDPOINT`. */
  url: string
  /** Port the public listener got (useful with `port: 0`). */
  port: number
  /** Base URL of the admin API, or null without `adminPort`. */
  adminUrl: string | null
  /** Port the admin API got, or null without `adminPort`. */
  adminPort: number | null
  /** The Fastify instance, for `inject` and `app.issuer` / `app.faults`. */
  app: FastifyInstance
  /** Stops both listeners; hung requests get their answer first. */
  close: () => Promise<void>
}

/**
 * Builds the server without listening: for `inject` tests.
 * @throws MockImdsConfigError when an option is bad (naming it).
 */
export async function buildMockImds (options: MockImdsOptions = {}): Promise<FastifyInstance> {
  return await buildApp(resolveOptions(options))
}

const urlOf = (app: FastifyInstance): { url: string, port: number } => {
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return { url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`, port: address.port }
}

/**
 * Starts mock-imds in this process and resolves once both listeners are up.
 * @throws MockImdsConfigError when an option is bad (naming it); the listen error when a port is taken.
 */
export async function startMockImds (options: MockImdsOptions = {}): Promise<RunningMockImds> {
  const resolved = resolveOptions(options)
  const app = await buildApp(resolved)
  try {
    await app.listen({ host: resolved.host, port: resolved.port })
  } catch (error) {
    await app.close()
    throw error
  }
  const admin = app.admin === null ? null : urlOf(app.admin)
  return {
    ...urlOf(app),
    adminUrl: admin?.url ?? null,
    adminPort: admin?.port ?? null,
    app,
    close: () => app.close()
  }
}
