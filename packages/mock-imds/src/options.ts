import type { Registry } from 'prom-client'
import { platforms, type Platform } from './profiles.ts'
import { TenantFileError, defaultTenant, loadTenantFile, parseTenant, type TenantModel } from './tenant.ts'

/** pino's levels, plus `silent`. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/**
 * How a mock-imds server is set up. Every field is optional; the CLI flag and environment
 * variable that set the same thing are named on each (a flag wins over its variable).
 */
export interface MockImdsOptions {
  /**
   * The Azure platform it answers as: `vm` (a VM or scale set: IMDS only), `app-service` (App Service
   * and Functions: the identity endpoint only) or `container-apps` (the identity endpoint only). Each
   * platform's status codes, bodies and identity rules are in the README's platform table.
   * Default `vm`. `--platform`, `MOCK_IMDS_PLATFORM`.
   */
  platform?: Platform
  /** Port of the public listener (token endpoints, Entra documents, health, metrics). 0: any free port. Default 3002. `--port`, `PORT`. */
  port?: number
  /** Address of the public listener. Default `127.0.0.1` (the container image sets `0.0.0.0`). `--host`, `HOST`. */
  host?: string
  /**
   * The tenant: app registrations, managed identities, app role assignments (see the README's
   * "The tenant file"). A path to a JSON or YAML (`.yaml`/`.yml`) file, or the document itself.
   * Default: the built-in tenant (`defaultTenant()`). `--tenant`, `MOCK_IMDS_TENANT_FILE`.
   */
  tenant?: string | TenantModel
  /** The secret `/msi/token` expects in `X-IDENTITY-HEADER` (a client's `IDENTITY_HEADER`). Default `mock-imds-identity-header`. `--identity-header`, `MOCK_IMDS_IDENTITY_HEADER`. */
  identityHeader?: string
  /** Lifetime of the tokens it mints, in seconds, 60 to 604800. Default 86400: Azure's managed identity tokens live 24 h. `--token-lifetime-seconds`, `MOCK_IMDS_TOKEN_LIFETIME_SECONDS`. */
  tokenLifetimeSeconds?: number
  /** Port of the admin API (faults, key rotation, state). Absent: no admin API at all. 0: any free port. Must differ from `port`. `--admin-port`, `MOCK_IMDS_ADMIN_PORT`. */
  adminPort?: number
  /** Address of the admin API. Default `127.0.0.1`: whoever can reach it can break the mock. `--admin-host`, `MOCK_IMDS_ADMIN_HOST`. */
  adminHost?: string
  /** Log level of its JSON (pino) log on stdout. Default `info`. `--log-level`, `LOG_LEVEL`. */
  logLevel?: LogLevel
  /**
   * The prom-client registry its metrics go on and `GET /metrics` serves. Default: a registry of
   * its own per server, with the process metrics, so that several mocks can run in one process
   * (prom-client's global registry refuses a second metric of the same name).
   */
  registry?: Registry
}

/** A setting's check: the value, or a reason it is bad. */
type Check<T> = (value: T) => string | null

/** One setting as the CLI, the environment and the options object all know it: one table for parsing, checks and --help. */
export interface Setting {
  option: keyof MockImdsOptions
  flag: string
  env: string
  type: 'integer' | 'string' | 'choice'
  /** The allowed values of a `choice`. */
  values?: readonly string[]
  /** What --help prints as the default. */
  defaultText: string
  meaning: string
  min?: number
  max?: number
}

export const logLevels: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export const settings: readonly Setting[] = [
  { option: 'platform', flag: 'platform', env: 'MOCK_IMDS_PLATFORM', type: 'choice', values: platforms, defaultText: 'vm', meaning: `platform to answer as: ${platforms.join(', ')}` },
  { option: 'tenant', flag: 'tenant', env: 'MOCK_IMDS_TENANT_FILE', type: 'string', defaultText: 'built-in tenant', meaning: 'tenant file (JSON, or YAML when named .yaml/.yml)' },
  { option: 'port', flag: 'port', env: 'PORT', type: 'integer', min: 0, max: 65535, defaultText: '3002', meaning: 'port of the public listener (0: any free port)' },
  { option: 'host', flag: 'host', env: 'HOST', type: 'string', defaultText: '127.0.0.1', meaning: 'address of the public listener' },
  { option: 'adminPort', flag: 'admin-port', env: 'MOCK_IMDS_ADMIN_PORT', type: 'integer', min: 0, max: 65535, defaultText: 'none: no admin API', meaning: 'port of the admin API (0: any free port); must differ from --port' },
  { option: 'adminHost', flag: 'admin-host', env: 'MOCK_IMDS_ADMIN_HOST', type: 'string', defaultText: '127.0.0.1', meaning: 'address of the admin API' },
  { option: 'identityHeader', flag: 'identity-header', env: 'MOCK_IMDS_IDENTITY_HEADER', type: 'string', defaultText: 'mock-imds-identity-header', meaning: 'secret /msi/token expects in X-IDENTITY-HEADER' },
  { option: 'tokenLifetimeSeconds', flag: 'token-lifetime-seconds', env: 'MOCK_IMDS_TOKEN_LIFETIME_SECONDS', type: 'integer', min: 60, max: 7 * 86400, defaultText: '86400', meaning: 'lifetime of minted tokens, in seconds' },
  { option: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', type: 'choice', values: logLevels, defaultText: 'info', meaning: `log level: ${logLevels.join(', ')}` }
]

/** Every option MockImdsOptions has: the settings' and `registry`, which only the API can pass. */
const OPTION_NAMES: readonly string[] = [...settings.map((setting) => setting.option), 'registry']

/** A setting that cannot work: the message names it (option, flag or variable, whichever the user wrote). */
export class MockImdsConfigError extends Error {
  override name = 'MockImdsConfigError'
}

/** Checks one setting's value; the reason, or null when it is good. */
export function checkSetting (setting: Setting, value: unknown): string | null {
  const checks: Record<Setting['type'], Check<unknown>> = {
    integer: (v) => Number.isInteger(v) && (v as number) >= (setting.min ?? -Infinity) && (v as number) <= (setting.max ?? Infinity)
      ? null
      : `must be an integer from ${setting.min} to ${setting.max}, got ${JSON.stringify(v)}`,
    string: (v) => typeof v === 'string' && v.length > 0 ? null : `must be a non-empty string, got ${JSON.stringify(v)}`,
    choice: (v) => setting.values?.includes(v as string) === true ? null : `must be one of ${setting.values?.join(', ')}, got ${JSON.stringify(v)}`
  }
  return checks[setting.type](value)
}

/**
 * Turns a flag's or variable's text into the option's value. Integers must be written as
 * integers ("3002", not "3e3" or " 3002"): a typo should fail, not become another port.
 */
export function parseSetting (setting: Setting, text: string): unknown {
  if (setting.type === 'integer') return /^\d+$/.test(text) ? Number(text) : text
  return text
}

/** Options with every default applied and the tenant loaded: what the server is built from. */
export interface ResolvedOptions {
  platform: Platform
  port: number
  host: string
  tenant: TenantModel
  identityHeader: string
  tokenLifetimeSeconds: number
  adminPort: number | undefined
  adminHost: string
  logLevel: LogLevel
  registry: Registry | undefined
}

/**
 * Applies the defaults and checks every option once, before anything listens.
 * @throws MockImdsConfigError naming the option (or, through `names`, the flag or variable it came from).
 */
export function resolveOptions (options: MockImdsOptions = {}, names: Partial<Record<keyof MockImdsOptions, string>> = {}): ResolvedOptions {
  const nameOf = (option: keyof MockImdsOptions) => names[option] ?? option
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new MockImdsConfigError('the options must be an object')
  // A misspelled option (`prot: 1`) would otherwise start a mock on the default port without a word.
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.includes(name))
  if (unknown.length > 0) {
    throw new MockImdsConfigError(`unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; known: ${OPTION_NAMES.join(', ')}`)
  }
  for (const setting of settings) {
    const value = options[setting.option]
    if (value === undefined || (setting.option === 'tenant' && typeof value === 'object')) continue
    const reason = checkSetting(setting, value)
    if (reason !== null) throw new MockImdsConfigError(`${nameOf(setting.option)} ${reason}`)
  }
  const port = options.port ?? 3002
  // Two listeners on one port would put the admin API in reach of every client of the public one.
  if (options.adminPort !== undefined && options.adminPort !== 0 && options.adminPort === port) {
    throw new MockImdsConfigError(`${nameOf('adminPort')} must differ from ${nameOf('port')} (both ${port})`)
  }
  let tenant: TenantModel
  try {
    tenant = options.tenant === undefined
      ? defaultTenant()
      : typeof options.tenant === 'string' ? loadTenantFile(options.tenant) : parseTenant(options.tenant, nameOf('tenant'))
  } catch (error) {
    // A bad tenant fails like any other setting: naming it, the file and the first bad field. A file's
    // error starts with its path; a document's already starts with the option's name.
    if (!(error instanceof TenantFileError)) throw error
    throw new MockImdsConfigError(typeof options.tenant === 'string' ? `${nameOf('tenant')}: ${error.message}` : error.message)
  }
  return {
    platform: options.platform ?? 'vm',
    port,
    host: options.host ?? '127.0.0.1',
    tenant,
    identityHeader: options.identityHeader ?? 'mock-imds-identity-header',
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 86400,
    adminPort: options.adminPort,
    adminHost: options.adminHost ?? '127.0.0.1',
    logLevel: options.logLevel ?? 'info',
    registry: options.registry
  }
}
