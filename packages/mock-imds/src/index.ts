/*
 * mock-imds as a library: start the server in-process (startMockImds) or build it for inject
 * (buildMockImds); the tenant model and its checks; the admin API's fault shapes.
 * The CLI (bin mock-imds, dist/cli.js) is no export.
 */
export { buildMockImds, startMockImds, type RunningMockImds } from './server.ts'
export { platforms, profiles, unableToLoadIdentity, type Platform, type PlatformProfile } from './profiles.ts'
export { MockImdsConfigError, settings, type LogLevel, type MockImdsOptions, type Setting } from './options.ts'
export {
  TenantFileError,
  defaultTenant,
  loadTenantFile,
  parseTenant,
  type ApplicationModel,
  type ManagedIdentityModel,
  type TenantModel
} from './tenant.ts'
export type { Fault, FaultMode, FaultSpec, FaultTarget } from './faults.ts'
