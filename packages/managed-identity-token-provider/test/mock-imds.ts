/** The in-process mock-imds these tests run the real SDK against (its source: tests need no build). */
export { buildMockImds, defaultTenant, startMockImds } from '../../mock-imds/src/index.ts'

/** The scope of the api in mock-imds's default tenant. */
export const apiScope = 'api://msi-pair-api/.default'
