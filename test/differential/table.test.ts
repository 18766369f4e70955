import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { ALLOWED_DIFFERENCES } from './allowed-differences.ts'

/*
 * The differences the differential test allows are exactly the table "Stricter than
 * Microsoft.Identity.Web" of the auth package's README: same ids, same reasons, same order. Needs no
 * .NET, so it runs in every `npm test`.
 */

const README = new URL('../../packages/fastify-entra-auth/README.md', import.meta.url)
const HEADING = '## Stricter than Microsoft.Identity.Web'

/** The README row of one entry, as it must read. */
export const readmeRow = (d: { id: string, reason: string }) => `| \`${d.id}\` | ${d.reason} |`

function readmeRows (): string[] {
  const text = readFileSync(README, 'utf8')
  const start = text.indexOf(`\n${HEADING}\n`)
  assert.ok(start >= 0, `packages/fastify-entra-auth/README.md has no "${HEADING}" section`)
  const section = text.slice(start + HEADING.length + 2).split('\n## ')[0] as string
  return section.split('\n').filter((line) => /^\| `[^`]+` \|/.test(line))
}

test('every allowed difference is a row of the auth README\'s table, with the same reason, and nothing else is', () => {
  const rows = readmeRows()
  const expected = ALLOWED_DIFFERENCES.map(readmeRow)
  for (const row of expected) assert.ok(rows.includes(row), `README row missing or different; it must read:\n${row}`)
  for (const row of rows) assert.ok(expected.includes(row), `README row with no entry in test/differential/allowed-differences.ts:\n${row}`)
  assert.deepEqual(rows, expected, 'same order')
})

test('ids and reasons are there to be read: unique ids, each reason names Microsoft\'s behaviour', () => {
  assert.equal(new Set(ALLOWED_DIFFERENCES.map((d) => d.id)).size, ALLOWED_DIFFERENCES.length)
  for (const d of ALLOWED_DIFFERENCES) {
    assert.match(d.id, /^[a-z0-9-]+$/)
    assert.match(d.reason, /Microsoft/, `${d.id}: the reason says what Microsoft does`)
    assert.doesNotMatch(d.reason, /\|/, `${d.id}: a | would break the README table`)
  }
})
