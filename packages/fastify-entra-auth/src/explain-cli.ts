#!/usr/bin/env node
/* The entra-explain bin: see src/explain/cli.ts. */
import { text } from 'node:stream/consumers'
import { runExplainCli } from './explain/cli.ts'

process.exitCode = await runExplainCli(process.argv.slice(2), process.env, {
  stdin: () => text(process.stdin),
  stdout: (output) => { process.stdout.write(output) },
  stderr: (output) => { process.stderr.write(output) }
})
