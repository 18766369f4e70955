import { Type, type Static } from 'typebox'
import { CommonConfig, Port, loadConfig } from '../../shared/config.ts'

const guid = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

export const CallerConfigSchema = Type.Object({
  ...CommonConfig.properties,
  PORT: Port(3000),
  /** Where the api listens, e.g. http://api:3001. */
  API_BASE_URL: Type.String({ pattern: '^https?://[^\\s]+$' }),
  /** The scope to ask a token for: the api's App ID URI (or client ID) with /.default. */
  API_SCOPE: Type.String({ pattern: '^[^\\s]+/\\.default$' }),
  /** A user-assigned identity's client ID; unset means the system-assigned identity. */
  AZURE_CLIENT_ID: Type.Optional(Type.String({ pattern: guid }))
})

export type CallerConfig = Static<typeof CallerConfigSchema>

export const readConfig = (env = process.env): CallerConfig => {
  const config = loadConfig(CallerConfigSchema, env)
  return { ...config, API_BASE_URL: config.API_BASE_URL.replace(/\/+$/, '') }
}
