/*
 * What explain needs to know about Entra's clouds: the issuer each cloud writes into v1 and v2 tokens,
 * to derive the expected issuer offline (no discovery document read) and to say which cloud a token
 * came from when the api reads its keys from another.
 *
 * Sources: Microsoft Learn, "Microsoft Entra authentication & national clouds" (authentication endpoints
 * per cloud); Microsoft Q&A 1190472, "What are the token issuers for the sovereign clouds" (v1 issuer
 * sts.windows.net for global and US Government, sts.chinacloudapi.cn for 21Vianet; v2 issuer on the
 * cloud's login host, login.partner.microsoftonline.cn for 21Vianet).
 */

export interface EntraCloud {
  readonly name: string
  /** The value for AUTH_AUTHORITY_HOST / authorityHost. */
  readonly authorityHost: string
  /** Hosts that serve this cloud's discovery documents. */
  readonly loginHosts: readonly string[]
  /** The issuer hosts of its tokens: v2 `https://{v2}/{tid}/v2.0`, v1 `https://{v1}/{tid}/`. */
  readonly v2IssuerHost: string
  readonly v1IssuerHost: string
}

export const CLOUDS: readonly EntraCloud[] = Object.freeze([
  { name: 'Azure public cloud', authorityHost: 'https://login.microsoftonline.com', loginHosts: ['login.microsoftonline.com', 'login.windows.net', 'login.microsoft.com'], v2IssuerHost: 'login.microsoftonline.com', v1IssuerHost: 'sts.windows.net' },
  { name: 'Azure US Government', authorityHost: 'https://login.microsoftonline.us', loginHosts: ['login.microsoftonline.us', 'login.usgovcloudapi.net'], v2IssuerHost: 'login.microsoftonline.us', v1IssuerHost: 'sts.windows.net' },
  { name: 'Azure operated by 21Vianet (China)', authorityHost: 'https://login.chinacloudapi.cn', loginHosts: ['login.chinacloudapi.cn', 'login.partner.microsoftonline.cn'], v2IssuerHost: 'login.partner.microsoftonline.cn', v1IssuerHost: 'sts.chinacloudapi.cn' }
])

/** The cloud of an authority host, or undefined for a host that is no Entra login host (a local mock). */
export function cloudOfAuthority (authorityHost: string): EntraCloud | undefined {
  const host = new URL(authorityHost).hostname.toLowerCase()
  return CLOUDS.find((cloud) => cloud.loginHosts.includes(host))
}

/**
 * The cloud a token's iss names, by its host. A v1 issuer on sts.windows.net is the public cloud's or
 * US Government's (both use it), so it names no single cloud: undefined.
 */
export function cloudOfIssuer (iss: unknown): EntraCloud | undefined {
  if (typeof iss !== 'string') return undefined
  let host: string
  try {
    host = new URL(iss).hostname.toLowerCase()
  } catch {
    return undefined
  }
  if (host === 'sts.windows.net') return undefined
  return CLOUDS.find((cloud) => cloud.v2IssuerHost === host || cloud.v1IssuerHost === host)
}

/**
 * The issuer the tenant's discovery document would name for a version, without reading it: the cloud's
 * forms for an Entra authority; for any other authority (a mock) the public cloud's forms, as mock
 * authorities issue them (`assumed` then says so).
 */
export function expectedIssuer (authorityHost: string, tenant: string, version: '1.0' | '2.0'): { issuer: string, assumed: boolean } {
  const cloud = cloudOfAuthority(authorityHost)
  const forms = cloud ?? CLOUDS[0] as EntraCloud
  const issuer = version === '2.0' ? `https://${forms.v2IssuerHost}/${tenant}/v2.0` : `https://${forms.v1IssuerHost}/${tenant}/`
  return { issuer, assumed: cloud === undefined }
}
