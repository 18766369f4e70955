import { readFileSync } from 'node:fs'
import { apiEnv, callerImdsEnv, startService, type RunningService, type StartOptions } from './processes.ts'

interface DefaultTenant {
  tenantId: string
  applications: Array<{ appId: string, identifierUris: string[] }>
}

/** The built-in tenant of mock-imds: its tenant id and the api's registration. */
export function defaultTenant () {
  const tenant = JSON.parse(readFileSync(new URL('../../packages/mock-imds/src/default-tenant.json', import.meta.url), 'utf8')) as DefaultTenant
  const api = tenant.applications[0]
  if (!api) throw new Error('the default tenant has no application')
  const appIdUri = api.identifierUris[0] ?? api.appId
  return { tenantId: tenant.tenantId, apiClientId: api.appId, apiAppIdUri: appIdUri, apiScope: `${appIdUri}/.default` }
}

export interface LocalStack {
  mockImds: RunningService
  api: RunningService
  caller: RunningService
  stop: () => Promise<void>
}

export interface LocalStackOptions {
  ports?: { mockImds?: number, api?: number, caller?: number }
  callerEnv?: Record<string, string | undefined>
  inheritOutput?: boolean
  logLevel?: string
}

/** mock-imds, then the api (which reads its discovery document at start), then the caller. */
export async function startLocalStack (options: LocalStackOptions = {}): Promise<LocalStack> {
  const { tenantId, apiClientId, apiAppIdUri, apiScope } = defaultTenant()
  const common = (port: number | undefined): StartOptions => ({
    inheritOutput: options.inheritOutput ?? false,
    env: { PORT: String(port ?? 0), LOG_LEVEL: options.logLevel ?? 'info' }
  })
  const started: RunningService[] = []
  try {
    const mockImds = await startService('mock-imds', common(options.ports?.mockImds))
    started.push(mockImds)
    const apiOptions = common(options.ports?.api)
    const api = await startService('api', { ...apiOptions, env: { ...apiOptions.env, ...apiEnv(mockImds.url, tenantId, `${apiClientId},${apiAppIdUri}`) } })
    started.push(api)
    const callerOptions = common(options.ports?.caller)
    const caller = await startService('caller', {
      ...callerOptions,
      env: { ...callerOptions.env, ...callerImdsEnv(mockImds.url, api.url, apiScope), ...options.callerEnv }
    })
    started.push(caller)
    return { mockImds, api, caller, stop: () => stopAll(started) }
  } catch (error) {
    await stopAll(started)
    throw error
  }
}

async function stopAll (services: RunningService[]) {
  await Promise.all([...services].reverse().map((service) => service.stop()))
}
