import { Type, type Static } from 'typebox'
import { CommonConfig, ConfigError, Port, loadConfig } from '../../shared/config.ts'
import { TenantFileError, defaultTenant, loadTenantFile, type TenantModel } from './tenant.ts'

export const MockImdsConfigSchema = Type.Object({
  ...CommonConfig.properties,
  PORT: Port(3002),
  /** The tenant file (app registrations, identities, role assignments), JSON or YAML; the built-in default when unset. */
  MOCK_IMDS_TENANT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** The secret the identity endpoint expects in X-IDENTITY-HEADER (IDENTITY_HEADER on the client). */
  MOCK_IMDS_IDENTITY_HEADER: Type.String({ minLength: 1, default: 'mock-imds-identity-header' }),
  /** Token lifetime: Azure's managed identity tokens live 24 h. */
  MOCK_IMDS_TOKEN_LIFETIME_SECONDS: Type.Integer({ minimum: 60, maximum: 7 * 86400, default: 86400 }),
  /** The admin API's port. Unset: no admin API at all. 0: any free port (logged). */
  MOCK_IMDS_ADMIN_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  /** The admin API's address: loopback unless someone means otherwise. */
  MOCK_IMDS_ADMIN_HOST: Type.String({ minLength: 1, default: '127.0.0.1' })
})

export interface MockImdsConfig extends Static<typeof MockImdsConfigSchema> {
  /** The tenant, read and checked with the rest of the configuration. */
  tenant: TenantModel
}

export function readConfig (env = process.env): MockImdsConfig {
  const config = loadConfig(MockImdsConfigSchema, env)
  // Two listeners on one port would put the admin API in reach of every client of the public one.
  if (config.MOCK_IMDS_ADMIN_PORT !== undefined && config.MOCK_IMDS_ADMIN_PORT !== 0 && config.MOCK_IMDS_ADMIN_PORT === config.PORT) {
    throw new ConfigError('invalid configuration: MOCK_IMDS_ADMIN_PORT must differ from PORT')
  }
  // A bad tenant file is a configuration error like any other: the service refuses to start,
  // naming the variable, the file and the path of the first bad field.
  try {
    const tenant = config.MOCK_IMDS_TENANT_FILE === undefined ? defaultTenant() : loadTenantFile(config.MOCK_IMDS_TENANT_FILE)
    return { ...config, tenant }
  } catch (error) {
    if (!(error instanceof TenantFileError)) throw error
    throw new ConfigError(`invalid configuration: MOCK_IMDS_TENANT_FILE: ${error.message}`)
  }
}
