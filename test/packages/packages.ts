/** The publishable packages, as paths from the repository root: one list for every packaging check. */
export const packageDirs = [
  'packages/fastify-entra-auth',
  'packages/managed-identity-token-provider',
  'packages/mock-imds'
] as const
