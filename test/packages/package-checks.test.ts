/*
 * publint and @arethetypeswrong/cli on every package, as jose gates its packaging: publint reads the
 * packed file list and the exports map, attw resolves every entry point the way TypeScript does.
 * ESM-only by design (as jose v6), so attw runs with the esm-only profile: the node10 and
 * CJS-resolves-to-ESM results it then ignores are the two that an ESM-only package has by definition.
 * `npm test` builds the packages first; run alone after `npm run build:packages`.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { repoRoot, run } from '../helpers/run.ts'
import { packageDirs } from './packages.ts'

const bin = (name: string) => join(repoRoot, 'node_modules', '.bin', name)

for (const dir of packageDirs) {
  test(`${dir}: publint --strict finds nothing`, async () => {
    const result = await run(bin('publint'), ['--strict', join(repoRoot, dir)], { timeoutMs: 120_000 })
    assert.equal(result.code, 0, `publint failed:\n${result.stdout}${result.stderr}`)
    // publint prints "All good!" when it has no message at any level; a suggestion alone still exits 0.
    assert.match(result.stdout, /All good!/, `publint has suggestions:\n${result.stdout}`)
  })

  test(`${dir}: attw --profile esm-only resolves every entry point with types`, async () => {
    const result = await run(bin('attw'), ['--pack', join(repoRoot, dir), '--profile', 'esm-only', '--format', 'json'], { timeoutMs: 120_000 })
    assert.equal(result.code, 0, `attw failed:\n${result.stdout}${result.stderr}`)
    const report = JSON.parse(result.stdout) as { analysis: { problems: unknown[], entrypoints: Record<string, unknown> } }
    assert.ok(Object.keys(report.analysis.entrypoints).length > 0, 'attw analysed no entry point')
  })
}
