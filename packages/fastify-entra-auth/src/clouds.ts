/*
 * The Entra login hosts of each cloud. A discovery document may name its jwks_uri on another login host
 * of the same cloud (login.chinacloudapi.cn's documents point at login.partner.microsoftonline.cn), so
 * keys are fetched from any host of the configured authority's group, over https only, and from nowhere
 * else: neither a tampered document nor a token can send the key store to a host of its choosing.
 *
 * Source: Entra's instance discovery metadata, GET https://login.microsoftonline.com/common/discovery/instance
 * ?api-version=1.1 (member "metadata": preferred_network, preferred_cache, aliases per cloud), the list MSAL
 * also carries built in; authority hosts per cloud: Microsoft Learn, "Microsoft Entra authentication &
 * national clouds" (authentication-national-cloud.md).
 */

/** Alias groups of Entra login hosts, one group per cloud. */
export const ENTRA_CLOUD_HOSTS: ReadonlyArray<readonly string[]> = Object.freeze([
  /** Global (public) cloud: authority host login.microsoftonline.com. */
  Object.freeze(['login.microsoftonline.com', 'login.windows.net', 'login.microsoft.com', 'sts.windows.net']),
  /** Azure US Government: authority host login.microsoftonline.us. */
  Object.freeze(['login.microsoftonline.us', 'login.usgovcloudapi.net']),
  /** Azure US Government (legacy login-us host, a group of its own in the instance metadata). */
  Object.freeze(['login-us.microsoftonline.com']),
  /** Microsoft Azure operated by 21Vianet (China): authority host login.chinacloudapi.cn. */
  Object.freeze(['login.partner.microsoftonline.cn', 'login.chinacloudapi.cn']),
  /** Azure Germany (closed in 2021; still listed by the instance metadata). */
  Object.freeze(['login.microsoftonline.de'])
])

/** The login hosts of the cloud `authorityHost` belongs to; undefined for a host that is not an Entra login host (a mock). */
export function cloudHostsOf (authority: URL): readonly string[] | undefined {
  if (authority.protocol !== 'https:' || authority.port !== '') return undefined
  const host = authority.hostname.toLowerCase()
  return ENTRA_CLOUD_HOSTS.find((group) => group.includes(host))
}

/**
 * Whether keys may be fetched from `jwksUri`, named by the discovery document read from `authority`:
 * for an Entra authority, https on the default port to a login host of the same cloud; for any other
 * authority (a local mock), its own origin only.
 */
export function jwksUriAllowed (authority: URL, jwksUri: URL): boolean {
  const cloud = cloudHostsOf(authority)
  if (cloud === undefined) return jwksUri.origin === authority.origin
  return jwksUri.protocol === 'https:' && jwksUri.port === '' && jwksUri.username === '' && jwksUri.password === '' &&
    cloud.includes(jwksUri.hostname.toLowerCase())
}
