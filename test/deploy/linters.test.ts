// shellcheck on every shell script of deploy/ and scripts/, yamllint (with the shared
// .yamllint.yml) on every YAML file of deploy/ and on the compose file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { deployDir, listFiles, rel, repoRoot, requireTool, runSync, tempDir } from './helpers/tools.ts'

const shellScripts = [
  ...listFiles(deployDir, (n) => n.endsWith('.sh')),
  ...listFiles(path.join(repoRoot, 'scripts'), (n) => n.endsWith('.sh'))
]
const yamlFiles = [
  ...listFiles(deployDir, (n) => /\.ya?ml$/.test(n)),
  ...['docker-compose.yml', 'docker-compose.yaml'].map((n) => path.join(repoRoot, n)).filter((f) => existsSync(f))
]
const yamllintConfig = path.join(repoRoot, '.yamllint.yml')

test('shellcheck: every script passes', (t) => {
  const shellcheck = requireTool(t, 'shellcheck')
  if (shellcheck === undefined) return
  const mine = ['deploy/entra/register-api.sh', 'scripts/ci/install-deploy-tools.sh']
  for (const f of mine) assert.ok(shellScripts.map(rel).includes(f), `${f} is checked`)
  const r = runSync(shellcheck, ['--external-sources', ...shellScripts])
  assert.equal(r.code, 0, r.stdout + r.stderr)
})

test('shellcheck: fails on a broken script (the check can fail)', (t) => {
  const shellcheck = requireTool(t, 'shellcheck')
  if (shellcheck === undefined) return
  const broken = path.join(tempDir('shellcheck'), 'broken.sh')
  writeFileSync(broken, '#!/usr/bin/env bash\nset -euo pipefail\nrm -rf $1/*\n')
  const r = runSync(shellcheck, [broken])
  assert.notEqual(r.code, 0)
  assert.match(r.stdout, /SC2086/)
})

test('yamllint: every YAML file passes with .yamllint.yml', (t) => {
  const yamllint = requireTool(t, 'yamllint')
  if (yamllint === undefined) return
  for (const f of ['deploy/vmss/cloud-init.yaml', 'deploy/prometheus/azure-vmss.yml', 'deploy/containerapps/prometheus-agent.yml']) {
    assert.ok(yamlFiles.map(rel).includes(f), `${f} is checked`)
  }
  const r = runSync(yamllint, ['--strict', '-c', yamllintConfig, ...yamlFiles])
  assert.equal(r.code, 0, r.stdout + r.stderr)
})

test('yamllint: fails on a broken copy (the check can fail)', (t) => {
  const yamllint = requireTool(t, 'yamllint')
  if (yamllint === undefined) return
  const broken = path.join(tempDir('yamllint'), 'broken.yml')
  const source = readFileSync(path.join(deployDir, 'prometheus/azure-vmss.yml'), 'utf8')
  writeFileSync(broken, source.replace('  scrape_interval: 30s', '  scrape_interval: 30s\n  scrape_interval: 15s') + 'trailing: x   \n')
  const r = runSync(yamllint, ['--strict', '-c', yamllintConfig, broken])
  assert.notEqual(r.code, 0)
  assert.match(r.stdout, /key-duplicates/)
  assert.match(r.stdout, /trailing-spaces/)
})
