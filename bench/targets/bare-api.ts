// Row 1, the limit: Fastify with the api's options (its logger settings) and one route answering a
// small JSON. Also the api half of the bare caller-to-api pair in row 6.
import Fastify from 'fastify'
import { loggerOptions } from '../../services/shared/logger.ts'
import { serve } from './env.ts'

const app = Fastify({ logger: loggerOptions(process.env.LOG_LEVEL ?? 'warn') })
app.get('/claims', async () => ({ ok: true }))
await serve(app)
