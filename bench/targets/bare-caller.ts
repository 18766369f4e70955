// Row 6's baseline: the caller's shape without auth. A Fastify route that calls BARE_API_URL with
// undici and the same pool settings as services/caller's api client, and answers with its body.
import Fastify from 'fastify'
import { Agent, request } from 'undici'
import { loggerOptions } from '../../services/shared/logger.ts'
import { serve } from './env.ts'

const baseUrl = process.env.BARE_API_URL
if (!baseUrl) throw new Error('BARE_API_URL is required')
const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 64 })
const app = Fastify({ logger: loggerOptions(process.env.LOG_LEVEL ?? 'warn') })
app.get('/call', async (_request, reply) => {
  const response = await request(`${baseUrl}/claims`, { dispatcher, headersTimeout: 10_000, bodyTimeout: 10_000 })
  const text = await response.body.text()
  if (response.statusCode !== 200) return reply.code(502).send({ error: 'api_rejected', status: response.statusCode })
  return JSON.parse(text)
})
app.addHook('onClose', async () => { await dispatcher.close() })
await serve(app)
