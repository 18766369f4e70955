import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { nodeFlags } from '../../scripts/lib/processes.ts'
import { repoRoot } from './tools.ts'

/*
 * A service runs three ways: `npm run start:<name>`, scripts/lib/processes.ts (npm start, the tests, the
 * bench) and its image's CMD. Their Node flags (nodeFlags, with why) must be the same, or what the bench
 * measured is not what ships.
 */
test('the api runs with the same Node flags from npm, from the scripts and from its image', async () => {
  const flags = nodeFlags.api
  assert.ok(flags.length > 0, 'the api has flags to hold together')
  const scripts = (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  const npmArgs = (scripts['start:api'] ?? '').split(/\s+/)
  assert.deepEqual(npmArgs.slice(1, -1), flags, `package.json start:api: ${scripts['start:api']}`)
  const dockerfile = await readFile(join(repoRoot, 'Dockerfile.api'), 'utf8')
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1]
  assert.ok(cmd, 'Dockerfile.api has an exec-form CMD')
  const cmdArgs = JSON.parse(cmd) as string[]
  assert.deepEqual(cmdArgs.filter((arg) => arg.startsWith('--') && arg !== '--enable-source-maps'), flags, `Dockerfile.api CMD: ${cmd}`)
})
