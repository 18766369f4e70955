import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { ConfigError } from './config.ts'

export interface ListenConfig {
  HOST: string
  PORT: number
}

/**
 * The one way every service starts: read config (failing with the variable's name), build the
 * app, listen, and close gracefully on SIGTERM/SIGINT so in-flight requests finish.
 */
export async function runServer<C extends ListenConfig> (
  name: string,
  readConfig: () => C,
  build: (config: C) => Promise<FastifyInstance>
): Promise<FastifyInstance> {
  let config: C
  try {
    config = readConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`${name}: ${error.message}\n`)
    process.exit(78) // EX_CONFIG
  }

  const app = await build(config)
  closeWithGrace({ delay: Number(process.env.CLOSE_GRACE_DELAY_MS ?? 10_000) }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an unexpected error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  await app.listen({ host: config.HOST, port: config.PORT })
  return app
}
