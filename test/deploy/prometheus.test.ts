// promtool check config on every Prometheus config: the VM Scale Sets scrape config with
// azure_sd_configs, the compose one (when present), and the Container Apps sidecar config.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parse, stringify } from 'yaml'
import { at, deployDir, requireTool, runSync, tempDir } from './helpers/tools.ts'

const promDir = path.join(deployDir, 'prometheus')
const vmssConfig = path.join(promDir, 'azure-vmss.yml')
const sidecarConfig = path.join(deployDir, 'containerapps/prometheus-agent.yml')

/** Copy a config next to the rule files it references: the real rules.yml, or a stand-in. */
function withRules (t: { diagnostic: (m: string) => void }, config: string, body?: string): string {
  const dir = tempDir('promtool')
  const target = path.join(dir, path.basename(config))
  if (body !== undefined) writeFileSync(target, body)
  else copyFileSync(config, target)
  const rules = path.join(promDir, 'rules.yml')
  if (existsSync(rules)) copyFileSync(rules, path.join(dir, 'rules.yml'))
  else {
    t.diagnostic('deploy/prometheus/rules.yml does not exist yet: checked against an empty stand-in')
    writeFileSync(path.join(dir, 'rules.yml'), 'groups: []\n')
  }
  return target
}

test('promtool: the VM Scale Sets scrape config (azure_sd_configs) is valid', (t) => {
  const promtool = requireTool(t, 'promtool')
  if (promtool === undefined) return
  const r = runSync(promtool, ['check', 'config', withRules(t, vmssConfig)])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /SUCCESS: 1 rule files found/)
  // Managed identity, never a secret; one job per service, each kept to its scale set and port.
  const cfg = parse(readFileSync(vmssConfig, 'utf8'), { merge: true }) as { rule_files: string[], scrape_configs: Array<Record<string, any>> }
  assert.deepEqual(cfg.rule_files, ['rules.yml'])
  const jobs = Object.fromEntries(cfg.scrape_configs.map((j) => [j.job_name, j]))
  for (const [job, port] of [['api', 3001], ['caller', 3000]] as const) {
    const sd = jobs[job].azure_sd_configs[0]
    assert.equal(sd.authentication_method, 'ManagedIdentity')
    assert.equal(sd.client_secret, undefined)
    assert.equal(sd.port, port)
    const relabel = JSON.stringify(jobs[job].relabel_configs)
    assert.ok(relabel.includes(`"regex":"msi-pair-${job}","action":"keep"`), relabel)
    assert.ok(relabel.includes(`"replacement":"\${1}:${port}"`), relabel)
  }
})

test('promtool: the compose Prometheus config is valid (when present)', (t) => {
  const promtool = requireTool(t, 'promtool')
  if (promtool === undefined) return
  const composeConfig = path.join(promDir, 'prometheus.yml')
  if (!existsSync(composeConfig)) {
    t.skip('deploy/prometheus/prometheus.yml not written yet')
    return
  }
  const r = runSync(promtool, ['check', 'config', withRules(t, composeConfig)])
  assert.equal(r.code, 0, r.stdout + r.stderr)
})

test('promtool: the Container Apps sidecar config is valid', (t) => {
  const promtool = requireTool(t, 'promtool')
  if (promtool === undefined) return
  const cfg = parse(readFileSync(sidecarConfig, 'utf8')) as { remote_write: Array<Record<string, any>> }
  // remote_write.azuread needs Prometheus >= 2.45; Debian 12's promtool is 2.42 and rejects the
  // key, so it is checked here by shape and the rest of the file by promtool.
  assert.equal(cfg.remote_write.length, 1)
  const { azuread, ...rest } = at(cfg.remote_write)
  assert.deepEqual(Object.keys(azuread.managed_identity), ['client_id'])
  assert.equal(azuread.cloud, 'AzurePublic')
  const stripped = path.join(tempDir('promtool'), 'agent.yml')
  writeFileSync(stripped, stringify({ ...cfg, remote_write: [rest] }))
  const r = runSync(promtool, ['check', 'config', stripped])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  // Sidecar substitutions done by main.bicep must find their placeholders.
  const text = readFileSync(sidecarConfig, 'utf8')
  const bicep = readFileSync(path.join(deployDir, 'containerapps/modules/service-app.bicep'), 'utf8')
  for (const placeholder of ['localhost:3000', 'job_name: caller', rest.url as string, azuread.managed_identity.client_id as string]) {
    assert.ok(text.includes(placeholder) && bicep.includes(`'${placeholder}'`), `placeholder ${placeholder} is substituted`)
  }
})

test('promtool: fails on a broken copy (the check can fail)', (t) => {
  const promtool = requireTool(t, 'promtool')
  if (promtool === undefined) return
  const source = readFileSync(vmssConfig, 'utf8')
  const broken = withRules(t, vmssConfig, source.replace('resource_group: RESOURCE_GROUP', 'resource_grup: RESOURCE_GROUP'))
  const r = runSync(promtool, ['check', 'config', broken])
  assert.notEqual(r.code, 0)
  assert.match(r.stdout + r.stderr, /field resource_grup not found/)
})
