/*
 * fastify-entra-auth/explain: why the api would accept or refuse a token, and what to change. The same
 * validator as the plugin; the entra-explain bin prints it (src/explain-cli.ts).
 */
export { ExplainInputError, explainToken, normalizeToken, type ExplainOptions, type ExplainReport, type Verdict } from './explain.ts'
export type { Check, CheckStatus } from './checks.ts'
export { SETTING_NAMES, SOURCES, type Fix } from './fixes.ts'
export { OFFLINE_SKIPS } from './offline-keys.ts'
export { renderText } from './render.ts'
export { USAGE, runExplainCli, type CliIo } from './cli.ts'
