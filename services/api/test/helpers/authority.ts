// Moved to the auth package; re-exported here for code that still imports it from its old path.
export * from '../../../../packages/fastify-entra-auth/test/helpers/authority.ts'
