import { Type, type Static } from 'typebox'
import { CommaList, CommonConfig, Port, loadConfig, splitList } from '../../shared/config.ts'

const guid = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'

export const ApiConfigSchema = Type.Object({
  ...CommonConfig.properties,
  PORT: Port(3001),
  /** The tenants whose tokens are accepted (GUIDs, comma-separated). */
  AUTH_TENANT_ID: CommaList(guid),
  /** Accepted audiences: the api's client ID and/or its App ID URI, comma-separated. */
  AUTH_AUDIENCE: CommaList('[^,\\s]+'),
  /** Roles any one of which lets a caller in (comma-separated). */
  AUTH_REQUIRED_ROLES: CommaList('[^,\\s]+', 'DoAll'),
  /** Where the OpenID configuration of each tenant is read; a sovereign cloud's host, or mock-imds. */
  AUTH_AUTHORITY_HOST: Type.String({ pattern: '^https?://[^/\\s]+(/[^\\s]*)?$', default: 'https://login.microsoftonline.com' })
})

type RawApiConfig = Static<typeof ApiConfigSchema>

export interface ApiConfig extends Omit<RawApiConfig, 'AUTH_TENANT_ID' | 'AUTH_AUDIENCE' | 'AUTH_REQUIRED_ROLES'> {
  AUTH_TENANT_ID: string[]
  AUTH_AUDIENCE: string[]
  AUTH_REQUIRED_ROLES: string[]
}

export function readConfig (env = process.env): ApiConfig {
  const raw = loadConfig(ApiConfigSchema, env)
  return {
    ...raw,
    AUTH_TENANT_ID: splitList(raw.AUTH_TENANT_ID).map((tenant) => tenant.toLowerCase()),
    AUTH_AUDIENCE: splitList(raw.AUTH_AUDIENCE),
    AUTH_REQUIRED_ROLES: splitList(raw.AUTH_REQUIRED_ROLES),
    AUTH_AUTHORITY_HOST: raw.AUTH_AUTHORITY_HOST.replace(/\/+$/, '')
  }
}
