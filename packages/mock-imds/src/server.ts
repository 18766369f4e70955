import { runServer } from '../../shared/server.ts'
import { buildApp } from './app.ts'
import { readConfig } from './config.ts'

await runServer('mock-imds', readConfig, (config) => buildApp(config))
