// Row 1, the limit: Fastify with the api's options (its logger settings) and one route answering a
// small JSON. Also the api half of the bare caller-to-api pair in row 6. With BARE_METRICS=1 and
// BARE_BODY (row 1b, a diagnostic) it adds the services' metrics plugin and answers that JSON
// instead, so that what the api pays for auth can be told apart from what it pays for the rest.
import Fastify from 'fastify'
import { loggerOptions } from '../../services/shared/logger.ts'
import { metricsPlugin } from '../../services/shared/metrics.ts'
import { serve } from './env.ts'

const app = Fastify({ logger: loggerOptions(process.env.LOG_LEVEL ?? 'warn') })
if (process.env.BARE_METRICS === '1') await app.register(metricsPlugin, { defaultLabels: { service: 'bare' } })
const body = process.env.BARE_BODY ? JSON.parse(process.env.BARE_BODY) as Record<string, unknown> : { ok: true }
app.get('/claims', async () => body)
await serve(app)
