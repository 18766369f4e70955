import { Type, type Static } from 'typebox'
import { CommonConfig, Port, loadConfig } from '../../shared/config.ts'

export const MockImdsConfigSchema = Type.Object({
  ...CommonConfig.properties,
  PORT: Port(3002),
  /** The tenant file (app registrations, identities, role assignments); the built-in default when unset. */
  MOCK_IMDS_TENANT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** The secret the identity endpoint expects in X-IDENTITY-HEADER (IDENTITY_HEADER on the client). */
  MOCK_IMDS_IDENTITY_HEADER: Type.String({ minLength: 1, default: 'mock-imds-identity-header' }),
  /** Token lifetime: Azure's managed identity tokens live 24 h. */
  MOCK_IMDS_TOKEN_LIFETIME_SECONDS: Type.Integer({ minimum: 60, maximum: 7 * 86400, default: 86400 })
})

export type MockImdsConfig = Static<typeof MockImdsConfigSchema>

export const readConfig = (env = process.env): MockImdsConfig => loadConfig(MockImdsConfigSchema, env)
