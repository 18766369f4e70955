/**
 * The Azure platforms mock-imds answers as, one at a time. Where they differ, a local test that
 * passes against the wrong one fails on Azure, so each difference below has its source; the
 * README's platform table lists every behaviour with its source, or "unknown".
 */
export type Platform = 'vm' | 'app-service' | 'container-apps'

export const platforms: readonly Platform[] = ['vm', 'app-service', 'container-apps']

export interface PlatformProfile {
  platform: Platform
  /** As the README and messages name it. */
  title: string
  /**
   * The token endpoint the platform has: IMDS on a VM or scale set; the identity endpoint
   * (IDENTITY_ENDPOINT) on App Service, Functions and Container Apps, which have no IMDS for
   * managed identity. The other one answers 404.
   */
  endpoint: 'imds' | 'identity'
  /**
   * No selector, no system-assigned identity, exactly one user-assigned one: IMDS uses it ("If system
   * assigned managed identity isn't enabled, and only one user assigned managed identity exists, IMDS
   * defaults to that single user assigned managed identity", Learn: managed-identities-faq). App
   * Service / Functions answer 400 (Azure/azure-functions-host#8037, azure-sdk-for-python#18454);
   * Container Apps asks for the system-assigned identity (Learn: container-apps/managed-identity,
   * REST endpoint reference).
   */
  fallsBackToLoneUserAssigned: boolean
  /**
   * The answer to a token request without a matching X-IDENTITY-HEADER. Container Apps: 403 with an
   * empty body (AzureAD/microsoft-authentication-library-for-dotnet#5077, a curl capture without the
   * header; a wrong value is assumed to be answered alike). App Service: unknown, the mock keeps a
   * 401 in App Service's JSON shape.
   */
  identityHeaderRejection: 'empty-403' | 'json-401'
  /**
   * Container Apps answers an unsupported api-version in ASP.NET API Versioning's shape,
   * `{"error":{"code":"UnsupportedApiVersion","message":"The HTTP resource …"}}`
   * (microsoft/azure-container-apps#297). App Service: unknown, App Service's JSON shape.
   */
  unsupportedApiVersion: 'aspnet' | 'app-service'
}

export const profiles: Readonly<Record<Platform, PlatformProfile>> = {
  vm: {
    platform: 'vm',
    title: 'VM / VM Scale Sets (IMDS)',
    endpoint: 'imds',
    fallsBackToLoneUserAssigned: true,
    identityHeaderRejection: 'json-401',
    unsupportedApiVersion: 'app-service'
  },
  'app-service': {
    platform: 'app-service',
    title: 'App Service / Functions',
    endpoint: 'identity',
    fallsBackToLoneUserAssigned: false,
    identityHeaderRejection: 'json-401',
    unsupportedApiVersion: 'app-service'
  },
  'container-apps': {
    platform: 'container-apps',
    title: 'Container Apps',
    endpoint: 'identity',
    fallsBackToLoneUserAssigned: false,
    identityHeaderRejection: 'empty-403',
    unsupportedApiVersion: 'aspnet'
  }
}

/**
 * What App Service, Functions and Container Apps say for every identity they cannot pick: an
 * unassigned client_id, no selector with only several user-assigned identities, or (App Service)
 * no selector with one (azure-sdk-for-net#43691, microsoft/azure-container-apps#442).
 */
export const unableToLoadIdentity = 'Unable to load the proper Managed Identity.'
