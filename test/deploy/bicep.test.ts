// Compiles and lints every .bicep file under deploy/ with the real Bicep CLI. Any warning fails:
// a warning may only stay if a `#disable-next-line rule  // reason` comment justifies it.
// Modules are compiled and linted through the entry files that reference them (bicep reports a
// module's diagnostics with its parent's), and the first test proves every file is reached.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { at, deployDir, listFiles, rel, requireTool, run, tempDir } from './helpers/tools.ts'
import type { RunResult } from './helpers/tools.ts'
import { resources, type Json } from './helpers/arm.ts'

// Files that need the Microsoft Graph extension, whose types are restored from a registry this
// machine cannot reach. They carry a "NOT COMPILED IN CI" header.
const notCompiledMarker = 'NOT COMPILED IN CI'
const bicepFiles = listFiles(deployDir, (n) => n.endsWith('.bicep'))
const compiled = bicepFiles.filter((f) => !readFileSync(f, 'utf8').includes(notCompiledMarker))
const graphOnly = bicepFiles.filter((f) => readFileSync(f, 'utf8').includes(notCompiledMarker))

/** Files referenced as `module name 'path'` by another file. */
const moduleFiles = new Set(compiled.flatMap((f) =>
  [...readFileSync(f, 'utf8').matchAll(/^module\s+\w+\s+'([^']+)'/gm)].map((m) => path.resolve(path.dirname(f), at(m, 1)))))
const entryFiles = compiled.filter((f) => !moduleFiles.has(f))

/** One `bicep build` per entry file, shared by the tests below. */
const builds = new Map<string, Promise<RunResult>>()
function build (bicep: string, file: string): Promise<RunResult> {
  let b = builds.get(file)
  if (b === undefined) {
    b = run(bicep, ['build', file, '--stdout'])
    builds.set(file, b)
  }
  return b
}

async function buildTemplate (bicep: string, file: string): Promise<Json> {
  const r = await build(bicep, file)
  assert.equal(r.code, 0, `bicep build ${rel(file)} failed:\n${r.stderr}`)
  return JSON.parse(r.stdout) as Json
}

test('bicep: every file compiles and lints without a warning', async (t) => {
  const bicep = requireTool(t, 'bicep')
  if (bicep === undefined) return
  assert.ok(compiled.length >= 7, `expected the vmss and containerapps files, found ${compiled.length}`)
  for (const m of moduleFiles) assert.ok(compiled.includes(m), `module ${rel(m)} is referenced but missing`)
  assert.deepEqual(entryFiles.map(rel), ['deploy/containerapps/main.bicep', 'deploy/identities/main.bicep', 'deploy/vmss/main.bicep'])
  for (const f of entryFiles) {
    for (const [what, r] of [['build', await build(bicep, f)], ['lint', await run(bicep, ['lint', f])]] as const) {
      assert.equal(r.code, 0, `bicep ${what} ${rel(f)} exited ${r.code}:\n${r.stderr}`)
      assert.doesNotMatch(r.stderr, /Warning|Error/, `bicep ${what} ${rel(f)} reported:\n${r.stderr}`)
    }
  }
})

test('bicep: lint fails on a broken copy (the check can fail)', async (t) => {
  const bicep = requireTool(t, 'bicep')
  if (bicep === undefined) return
  const dir = tempDir('bicep')
  copyFileSync(path.join(deployDir, 'bicepconfig.json'), path.join(dir, 'bicepconfig.json'))
  const source = readFileSync(path.join(deployDir, 'vmss/modules/autoscale.bicep'), 'utf8')
  // An unused parameter and a hard-coded cloud URL: both are errors in deploy/bicepconfig.json.
  writeFileSync(path.join(dir, 'broken.bicep'),
    `${source}\nparam unused string = 'x'\noutput u string = 'https://management.azure.com/'\n`)
  const r = await run(bicep, ['lint', path.join(dir, 'broken.bicep')])
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /no-unused-params/)
  assert.match(r.stderr, /no-hardcoded-env-urls/)
})

test('bicep: Graph-extension files fail only because the extension cannot be restored here', async (t) => {
  const bicep = requireTool(t, 'bicep')
  if (bicep === undefined) return
  assert.ok(graphOnly.length >= 1, 'expected deploy/entra/graph-bicep/api-app.bicep')
  for (const f of graphOnly) {
    const r = await run(bicep, ['build', f, '--stdout'])
    if (r.code === 0) {
      // The registry became reachable: then the file must be as clean as the others.
      assert.doesNotMatch(r.stderr, /Warning|Error/, r.stderr)
      continue
    }
    const codes = new Set([...r.stderr.matchAll(/ (?:Error|Warning) (BCP\d+):/g)].map((m) => at(m, 1)))
    assert.ok(codes.has('BCP192'), `expected BCP192 (restore failed), got:\n${r.stderr}`)
    // BCP029/BCP062 follow from the missing types; anything else would be a real mistake.
    for (const c of codes) assert.ok(['BCP192', 'BCP029', 'BCP062'].includes(c), `unexpected ${c} in ${rel(f)}:\n${r.stderr}`)
  }
})

test('bicep: VM Scale Sets template has the secure defaults the README promises', async (t) => {
  const bicep = requireTool(t, 'bicep')
  if (bicep === undefined) return
  const template = await buildTemplate(bicep, path.join(deployDir, 'vmss/main.bicep'))
  const all = resources(template)
  const text = JSON.stringify(all)
  const scaleSets = all.filter((r) => r.type === 'Microsoft.Compute/virtualMachineScaleSets' && r.properties !== undefined)
  assert.equal(scaleSets.length, 2, 'the scale-set module, inlined for the caller and for the api')
  assert.deepEqual(at(scaleSets, 0), at(scaleSets, 1))
  const props = at(scaleSets).properties as Json
  const vmProfile = props.virtualMachineProfile as Json
  const linux = (vmProfile.osProfile as Json).linuxConfiguration as Json
  assert.equal(linux.disablePasswordAuthentication, true)
  assert.ok(!('adminPassword' in (vmProfile.osProfile as Json)), 'no admin password')
  assert.equal((props.upgradePolicy as Json).mode, 'Rolling')
  assert.equal((props.automaticRepairsPolicy as Json).enabled, true)
  assert.doesNotMatch(text, /publicIPAddressConfiguration/, 'no public IP on any instance')
  assert.doesNotMatch(text, /adminUserEnabled"\s*:\s*true|passwordSecretRef|listCredentials/, 'no registry password')
  const lbs = all.filter((r) => r.type === 'Microsoft.Network/loadBalancers')
  assert.equal(lbs.length, 1)
  const frontends = (at(lbs).properties as Json).frontendIPConfigurations as Json[]
  for (const fe of frontends) assert.ok(!('publicIPAddress' in (fe.properties as Json)), 'the api load balancer is internal')
  // Health sources, the rollout and the grants are checked in arm-facts.test.ts.
  assert.ok(all.some((r) => r.type === 'Microsoft.Insights/autoscalesettings'), 'autoscale settings')
  assert.match(JSON.stringify(template.variables), /"acrPullRoleId":"7f951dda-4ed3-4680-a7ca-43fe172d538d"/)
  const grants = all.filter((r) => r.type === 'Microsoft.Resources/deployments' && JSON.stringify((r.properties as Json).parameters).includes("variables('acrPullRoleId')"))
  assert.equal(grants.length, 2, 'AcrPull for the caller and the api identities')
  const nsgs = all.filter((r) => r.type === 'Microsoft.Network/networkSecurityGroups')
  assert.equal(nsgs.length, 2)
  // Egress is limited: both NSGs end with the shared deny rules (a variable of the network module).
  for (const nsg of nsgs) assert.match(JSON.stringify(nsg), /variables\('denyRest'\)\)\]"/)
  assert.match(JSON.stringify(template), /"name":"deny-internet-outbound","properties":\{[^}]*"access":"Deny","protocol":"\*","sourceAddressPrefix":"\*","sourcePortRange":"\*","destinationAddressPrefix":"Internet"/)
})

test('bicep: Container Apps template keeps the api internal and pulls with an identity', async (t) => {
  const bicep = requireTool(t, 'bicep')
  if (bicep === undefined) return
  const template = await buildTemplate(bicep, path.join(deployDir, 'containerapps/main.bicep'))
  const all = resources(template)
  const apps = all.filter((r) => r.type === 'Microsoft.App/containerApps')
  assert.equal(apps.length, 2, 'the container-app module, inlined for the caller and for the api')
  // The probes live in the module's variables: look at the whole inlined module template.
  const appModule = all.find((r) => r.type === 'Microsoft.Resources/deployments' && JSON.stringify(r).includes('Microsoft.App/containerApps'))
  const text = JSON.stringify(appModule)
  assert.match(text, /"path":"\/healthz"/)
  assert.match(text, /"path":"\/readyz"/)
  assert.match(text, /"concurrentRequests"/)
  assert.match(text, /"identity":"\[parameters\('platformIdentityId'\)\]"/, 'registry pulled with the identity')
  assert.doesNotMatch(JSON.stringify(template), /passwordSecretRef|listCredentials|sharedKey|listKeys/)
  // The api module is called with externalIngress false; the caller only with a source CIDR.
  const modules = all.filter((r) => r.type === 'Microsoft.Resources/deployments')
  const apiModule = modules.find((m) => JSON.stringify(m).includes("'msi-pair-api:'") || JSON.stringify(m).includes('msi-pair-api:'))
  assert.ok(apiModule !== undefined)
  assert.match(JSON.stringify((apiModule.properties as Json).parameters), /"externalIngress":\{"value":false\}/)
  const outputs = template.outputs as Json
  assert.ok('apiUrl' in outputs && 'callerUrl' in outputs)
})
