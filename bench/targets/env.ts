import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'

/** What every bench target reads: where the issuer is and what to accept (set by bench/lib/issuer.ts targetEnv). */
export function targetConfig (env = process.env) {
  const need = (name: string): string => {
    const value = env[name]
    if (!value) throw new Error(`${name} is required`)
    return value
  }
  const issuerUrl = need('ISSUER_URL')
  const tenantId = need('TENANT_ID')
  return {
    port: Number(env.PORT ?? 0),
    host: env.HOST ?? '127.0.0.1',
    logLevel: env.LOG_LEVEL ?? 'warn',
    issuerUrl,
    tenantId,
    audiences: need('AUDIENCES').split(','),
    requiredRole: need('REQUIRED_ROLE'),
    /** Entra's v2 issuer, whatever host serves its documents. */
    issuer: `https://login.microsoftonline.com/${tenantId}/v2.0`,
    jwksUri: `${issuerUrl}/${tenantId}/discovery/v2.0/keys`
  }
}

/** The line bench/lib/processes.ts startTarget waits for. */
export const announce = (port: number) => { process.stdout.write(`BENCH_LISTENING ${port}\n`) }

export const hasRole = (claims: { roles?: unknown } & object, role: string): boolean =>
  Array.isArray(claims.roles) && claims.roles.includes(role)

/** Listens on HOST:PORT, announces the port, and closes on SIGTERM. */
export async function serve (app: FastifyInstance): Promise<void> {
  await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
  announce((app.server.address() as AddressInfo).port)
  process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
