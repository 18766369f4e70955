// Facts that decide whether the templates survive their first deployment and every redeploy, checked
// on the compiled ARM JSON (`bicep build`), each with the Microsoft Learn page that states the fact.
// Nothing here reaches Azure: a template that compiles but would fail there is what these catch.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { compiled, dig, modulesHolding, ofType, unbracket } from './helpers/arm.ts'
import type { Json } from './helpers/arm.ts'
import { at, deployDir, requireTool } from './helpers/tools.ts'

const vmss = 'vmss/main.bicep'
const aca = 'containerapps/main.bicep'
const identities = 'identities/main.bicep'

type Ctx = Parameters<typeof requireTool>[0]
function bicepOrSkip (t: Ctx): string | undefined { return requireTool(t, 'bicep') }

const scaleSetsOf = (tpl: Json): Json[] => ofType(tpl, 'Microsoft.Compute/virtualMachineScaleSets').filter((r) => r.properties !== undefined)
const extensionsOf = (scaleSet: Json): Json[] => {
  const ext = dig(scaleSet, 'properties', 'virtualMachineProfile', 'extensionProfile', 'extensions')
  assert.ok(Array.isArray(ext), `extensions must be a literal array, got ${JSON.stringify(ext)}`)
  return ext as Json[]
}
const extension = (scaleSet: Json, type: string): Json => {
  const found = extensionsOf(scaleSet).filter((e) => dig(e, 'properties', 'type') === type)
  assert.equal(found.length, 1, `one ${type} extension`)
  return at(found)
}

// Learn: "Using Application Health extension with Virtual Machine Scale Sets"
// (https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-health-extension):
// typeHandlerVersion 1.0 is Binary Health States (HTTP 200 = Healthy); 2.0 is Rich Health States and
// reads ApplicationHealthState from the body, which /readyz does not send (Unknown = unhealthy).
// "Only one source of health monitoring can be used": the extension, not also networkProfile.healthProbe.
test('arm: scale set health is the Binary Health extension (1.0) on /readyz, the only health source', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const sets = scaleSetsOf(await compiled(bicep, vmss))
  assert.ok(sets.length >= 1)
  for (const s of sets) {
    const health = extension(s, 'ApplicationHealthLinux')
    assert.equal(dig(health, 'properties', 'publisher'), 'Microsoft.ManagedServices')
    assert.match(String(dig(health, 'properties', 'typeHandlerVersion')), /^1\.\d+$/)
    const settings = dig(health, 'properties', 'settings') as Json
    assert.equal(settings.protocol, 'http')
    assert.equal(settings.requestPath, '/readyz')
    assert.ok(!('healthProbe' in (dig(s, 'properties', 'virtualMachineProfile', 'networkProfile') as Json)),
      'no load balancer probe as a second health source')
  }
})

// Learn: "Azure Load Balancer health probes"
// (https://learn.microsoft.com/azure/load-balancer/load-balancer-custom-probe-overview): an instance
// gets new flows only while its probe answers 200, so the probe must be readiness (/readyz: keys loaded).
test('arm: the api load balancer rule probes /readyz', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const lbs = ofType(await compiled(bicep, vmss), 'Microsoft.Network/loadBalancers')
  assert.equal(lbs.length, 1)
  const props = dig(at(lbs), 'properties') as Json
  const probes = props.probes as Json[]
  const rules = props.loadBalancingRules as Json[]
  assert.ok(rules.length >= 1)
  for (const rule of rules) {
    const probeRef = String(dig(rule, 'properties', 'probe', 'id'))
    const probe = probes.find((p) => probeRef.includes(`'${String(p.name)}')`))
    assert.ok(probe !== undefined, `rule ${String(rule.name)} uses one of the declared probes`)
    assert.equal(dig(probe, 'properties', 'protocol'), 'Http')
    assert.equal(dig(probe, 'properties', 'requestPath'), '/readyz')
  }
})

// Learn: "Create Azure RBAC resources by using Bicep"
// (https://learn.microsoft.com/azure/azure-resource-manager/bicep/scenarios-rbac): name a role assignment
// guid(scope, principalId, roleDefinitionId); a name without the principal makes a new principal's PUT
// collide with the old assignment (RoleAssignmentUpdateNotPermitted).
test('arm: every role assignment is named guid(scope, principalId, roleDefinitionId)', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  let seen = 0
  for (const entry of [vmss, aca, identities]) {
    for (const ra of ofType(await compiled(bicep, entry), 'Microsoft.Authorization/roleAssignments')) {
      seen++
      const principal = unbracket(dig(ra, 'properties', 'principalId'))
      const role = unbracket(dig(ra, 'properties', 'roleDefinitionId'))
      const name = unbracket(ra.name)
      assert.ok(name.startsWith('guid(') && name.endsWith(`, ${principal}, ${role})`),
        `${entry}: role assignment ${name} must be guid(scope, ${principal}, ${role})`)
    }
  }
  assert.ok(seen >= 4, `expected the AcrPull, Reader and publisher assignments, saw ${seen}`)
})

// Learn: "Authenticate with Azure Container Registry by using a managed identity"
// (https://learn.microsoft.com/azure/container-registry/container-registry-authentication-managed-identity)
// and "Resource dependencies in Bicep" (https://learn.microsoft.com/azure/azure-resource-manager/bicep/resource-dependencies):
// the identity and its AcrPull come first; whatever pulls depends on the grant, and no grant waits on its consumer.
test('arm: identities and grants come first; every consumer depends on its AcrPull', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  for (const entry of [vmss, aca]) {
    const tpl = await compiled(bicep, entry)
    const consumers = [
      ...modulesHolding(tpl, 'Microsoft.Compute/virtualMachineScaleSets'),
      ...modulesHolding(tpl, 'Microsoft.App/containerApps')
    ]
    assert.ok(consumers.length >= 2, `${entry}: the caller and the api`)
    // Grants are modules (deploy/shared/role-assignment.bicep), so that their names can use the principal id.
    const acrPull = modulesHolding(tpl, 'Microsoft.Authorization/roleAssignments')
      .filter((g) => JSON.stringify(dig(g, 'properties', 'parameters')).includes('acrPullRoleId'))
    assert.ok(acrPull.length >= 1, `${entry}: AcrPull grants`)
    for (const g of acrPull) {
      assert.doesNotMatch(JSON.stringify(dig(g, 'properties', 'parameters', 'principalId')), /Microsoft\.Resources\/deployments/,
        `${entry}: an AcrPull principal must not come out of the module that needs it (the grant would come after)`)
    }
    for (const c of consumers) {
      const deps = (c.dependsOn ?? []) as string[]
      assert.ok(deps.some((d) => acrPull.some((g) => d.includes(unbracket(g.name)))),
        `${entry}: ${String(c.name)} depends on the AcrPull grant it pulls with: ${JSON.stringify(deps)}`)
    }
  }
})

// Learn: "Managed identities in Azure Container Apps" (https://learn.microsoft.com/azure/container-apps/managed-identity):
// a user-assigned identity exists before the app, so its app role can be assigned before the first
// revision has to become ready; a system-assigned one exists only once the app does.
test('arm: the caller identity is user-assigned, made before the services, and selected with AZURE_CLIENT_ID', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const ids = await compiled(bicep, identities)
  const created = ofType(ids, 'Microsoft.ManagedIdentity/userAssignedIdentities')
  assert.equal(created.length, 1)
  assert.match(JSON.stringify(at(created).name), /-caller-id/)
  assert.ok('callerPrincipalId' in (ids.outputs as Json))
  for (const entry of [vmss, aca]) {
    const tpl = await compiled(bicep, entry)
    const text = JSON.stringify(tpl)
    assert.doesNotMatch(text, /SystemAssigned/, `${entry}: no system-assigned identity (its principal exists only after the consumer)`)
    assert.ok(!('callerPrincipalId' in (tpl.outputs as Json)), `${entry}: the principal id comes from the identities step, before this one`)
    assert.match(text, /AZURE_CLIENT_ID/, `${entry}: the caller selects its identity`)
    assert.ok(!ofType(tpl, 'Microsoft.ManagedIdentity/userAssignedIdentities').some((r) => JSON.stringify(r.name).includes('-caller-id') && r.properties !== undefined),
      `${entry}: the caller identity is referenced (existing), not created here`)
  }
})

// The README's steps, in order, on a fresh subscription: the app role is assigned to the caller's
// identity before any template whose readiness needs it (Container Apps waits for the first revision
// to be ready; the caller is ready once it holds a token, which needs the role).
test('README: deployment steps need no output of a later step', () => {
  const readme = readFileSync(path.join(deployDir, 'README.md'), 'utf8')
  const pos = (needle: string): number => {
    const i = readme.indexOf(needle)
    assert.ok(i >= 0, `README has ${needle}`)
    return i
  }
  const identitiesStep = pos('-f deploy/identities/main.bicep')
  const principalDefined = pos('CALLER_PRINCIPAL_ID=$(')
  const assign = pos('register-api.sh --caller-principal-id "$CALLER_PRINCIPAL_ID"')
  assert.ok(identitiesStep < principalDefined && principalDefined < assign)
  for (const main of ['-f deploy/vmss/main.bicep', '-f deploy/containerapps/main.bicep']) {
    assert.ok(assign < pos(main), `the role is assigned before ${main}`)
  }
  assert.doesNotMatch(readme, /out callerPrincipalId/, 'no step reads the principal id from a service deployment')
})

// Learn: "Configure rolling upgrades on Virtual Machine Scale Sets"
// (https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-configure-rolling-upgrades)
// and "Sequence extension provisioning in Virtual Machine Scale Sets"
// (https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-extension-sequencing):
// a model change (an extension's settings) is applied batch by batch and each batch is judged by health.
// userData read by a timer on the instance changed every instance outside the upgrade.
test('arm: the image tag is an extension setting the rolling upgrade applies, judged by health', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  for (const s of scaleSetsOf(await compiled(bicep, vmss))) {
    const profile = dig(s, 'properties', 'virtualMachineProfile') as Json
    assert.ok(!('userData' in profile), 'settings do not travel in userData')
    const apply = extension(s, 'CustomScript')
    assert.equal(dig(apply, 'properties', 'publisher'), 'Microsoft.Azure.Extensions')
    assert.match(String(dig(apply, 'properties', 'settings', 'commandToExecute')), /parameters\('settings'\)/,
      'the settings (image tag included) are part of the extension, so changing them is a model change')
    const health = extension(s, 'ApplicationHealthLinux')
    assert.deepEqual(dig(health, 'properties', 'provisionAfterExtensions'), [apply.name], 'health is judged after the new container runs')
    const policy = dig(s, 'properties', 'upgradePolicy') as Json
    assert.equal(policy.mode, 'Rolling')
    assert.equal(dig(policy, 'rollingUpgradePolicy', 'rollbackFailedInstancesOnPolicyBreach'), true)
    assert.ok(Number(dig(policy, 'rollingUpgradePolicy', 'maxUnhealthyUpgradedInstancePercent')) < 100)
  }
})

// Learn: "Overview of autoscale with Azure Virtual Machine Scale Sets"
// (https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-autoscale-overview)
// and the template reference of Microsoft.Compute/virtualMachineScaleSets (sku.capacity = the number of VMs):
// a capacity in every PUT resets what autoscale chose, so redeploys must not send one. The property
// must be absent, not null: ARM rejects a null capacity (Azure/vm-scale-sets#70).
test('arm: a redeploy sends no sku.capacity', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const tpl = await compiled(bicep, vmss)
  assert.ok('scaleSetsExist' in (tpl.parameters as Json), 'the main template asks whether the scale sets exist')
  assert.ok(!('defaultValue' in (dig(tpl, 'parameters', 'scaleSetsExist') as Json)), 'no default: a redeploy cannot forget it')
  for (const s of scaleSetsOf(tpl)) {
    const sku = s.sku
    assert.equal(typeof sku, 'string', `sku is computed, not a literal with a capacity: ${JSON.stringify(sku)}`)
    assert.match(String(sku), /createObject\(\)/, 'the capacity is left out when not creating')
  }
  for (const m of modulesHolding(tpl, 'Microsoft.Compute/virtualMachineScaleSets')) {
    assert.match(JSON.stringify(dig(m, 'properties', 'parameters')), /scaleSetsExist/)
  }
})

// Learn: "Use Bicep modules" (https://learn.microsoft.com/azure/azure-resource-manager/bicep/modules):
// a module is a deployment named in the resource group; the same name from another run replaces it.
test('arm: nested deployment names carry the name prefix', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  for (const entry of [vmss, aca]) {
    const deployments = ofType(await compiled(bicep, entry), 'Microsoft.Resources/deployments')
    assert.ok(deployments.length >= 3)
    for (const d of deployments) assert.match(String(d.name), /parameters\('namePrefix'\)/, `${entry}: ${String(d.name)}`)
  }
})

// Learn: "Reliability in Virtual Machine Scale Sets", "Reliability in Azure Load Balancer",
// "Reliability in Azure NAT Gateway" (StandardV2 is zone-redundant and needs StandardV2 public IPs),
// and "Reliability in Azure Container Apps" (zone redundancy needs an infrastructure subnet; 2+ replicas).
test('arm: zones by default (scale sets, load balancer frontend, NAT gateway, Container Apps)', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const tpl = await compiled(bicep, vmss)
  assert.deepEqual(dig(tpl, 'parameters', 'zones', 'defaultValue'), ['1', '2', '3'])
  for (const s of scaleSetsOf(tpl)) assert.match(JSON.stringify(s.zones), /parameters\('zones'\)/)
  const fe = at(dig(at(ofType(tpl, 'Microsoft.Network/loadBalancers')), 'properties', 'frontendIPConfigurations') as Json[])
  assert.match(JSON.stringify(fe.zones), /parameters\('zones'\)/)
  for (const type of ['Microsoft.Network/natGateways', 'Microsoft.Network/publicIPAddresses']) {
    const r = at(ofType(tpl, type))
    assert.match(JSON.stringify(r.zones), /parameters\('zones'\)/, type)
    // StandardV2 is the zone-redundant SKU; Standard (no zones) stays for regions without zones.
    const sku = String(dig(r, 'sku', 'name'))
    const network = at(modulesHolding(tpl, type))
    const resolved = sku.startsWith("[variables('") ? JSON.stringify(dig(network, 'properties', 'template', 'variables', sku.slice(12, -3))) : sku
    assert.match(resolved, /if\(empty\(parameters\('zones'\)\), 'Standard', 'StandardV2'\)/, `${type}: ${resolved}`)
  }
  const apps = await compiled(bicep, aca)
  const env = at(ofType(apps, 'Microsoft.App/managedEnvironments'))
  assert.match(JSON.stringify(dig(env, 'properties', 'zoneRedundant')), /parameters\('zoneRedundant'\)/)
  assert.equal(dig(apps, 'parameters', 'zoneRedundant', 'defaultValue'), true)
  assert.ok(dig(env, 'properties', 'vnetConfiguration', 'infrastructureSubnetId') !== undefined)
  assert.ok(Number(dig(apps, 'parameters', 'minReplicas', 'defaultValue')) >= 2)
})

// Learn: "Azure Metadata Service: Scheduled Events for Linux VMs"
// (https://learn.microsoft.com/azure/virtual-machines/linux/scheduled-events) and "Terminate notification
// for Azure Virtual Machine Scale Set instances": the notification only helps if something polls,
// drains and approves (test/deploy/cloud-init.test.ts runs that handler against a fake IMDS).
test('arm: the terminate notification has a handler on the instance', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const userData = readFileSync(path.join(deployDir, 'vmss/cloud-init.yaml'), 'utf8')
  for (const s of scaleSetsOf(await compiled(bicep, vmss))) {
    const on = dig(s, 'properties', 'virtualMachineProfile', 'scheduledEventsProfile', 'terminateNotificationProfile', 'enable')
    if (on === true) {
      assert.match(userData, /path: \/etc\/systemd\/system\/msi-pair-events\.service/)
      assert.match(userData, /enable, --now, [^\]]*msi-pair-events\.service/)
    }
  }
})

// Learn: "Authenticate with an Azure container registry" / Azure/acr "AAD-OAuth"
// (https://azure.github.io/acr/AAD-OAuth.html): the exchange takes the tenant; with ARM-audience
// authentication disabled (Azure Policy), only tokens for https://containerregistry.azure.net work.
test('arm: instances pull with a registry-audience token and know their tenant', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const tpl = await compiled(bicep, vmss)
  for (const m of modulesHolding(tpl, 'Microsoft.Compute/virtualMachineScaleSets')) {
    const settings = dig(m, 'properties', 'parameters', 'settings', 'value') as Json
    assert.ok('tenantId' in settings, `${String(m.name)}: settings carry the tenant for the ACR exchange`)
  }
  const userData = readFileSync(path.join(deployDir, 'vmss/cloud-init.yaml'), 'utf8')
  assert.doesNotMatch(userData, /management\.azure\.com/)
  assert.match(userData, /resource=https:\/\/containerregistry\.azure\.net/)
})

// Learn: "Azure Instance Metadata Service" (https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service):
// any process on the VM, containers included, can ask IMDS for the VM identity's tokens; the api never needs one.
test('arm: only the caller container may reach IMDS', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const byName = Object.fromEntries(modulesHolding(await compiled(bicep, vmss), 'Microsoft.Compute/virtualMachineScaleSets')
    .map((m) => [String(m.name), dig(m, 'properties', 'parameters', 'settings', 'value') as Json]))
  const api = Object.entries(byName).find(([n]) => n.includes('-api-'))
  const caller = Object.entries(byName).find(([n]) => n.includes('-caller-'))
  assert.ok(api !== undefined && caller !== undefined, JSON.stringify(Object.keys(byName)))
  assert.equal(api[1].blockImds, true)
  assert.equal(caller[1].blockImds, false)
})

// Learn: "Azure Monitor Agent overview" and "Collect Syslog events with Azure Monitor Agent"
// (https://learn.microsoft.com/azure/azure-monitor/vm/data-collection-syslog): the agent authenticates
// with a user-assigned identity (mi_res_id) and collects what a data collection rule associated with the VMs says.
test('arm: logs leave the instances through Azure Monitor Agent and a data collection rule', async (t) => {
  const bicep = bicepOrSkip(t)
  if (bicep === undefined) return
  const tpl = await compiled(bicep, vmss)
  for (const s of scaleSetsOf(tpl)) {
    const ama = extension(s, 'AzureMonitorLinuxAgent')
    assert.equal(dig(ama, 'properties', 'publisher'), 'Microsoft.Azure.Monitor')
    assert.equal(dig(ama, 'properties', 'settings', 'authentication', 'managedIdentity', 'identifier-name'), 'mi_res_id')
  }
  const dcr = at(ofType(tpl, 'Microsoft.Insights/dataCollectionRules'))
  assert.ok(Array.isArray(dig(dcr, 'properties', 'dataSources', 'syslog')))
  assert.ok(Array.isArray(dig(dcr, 'properties', 'destinations', 'logAnalytics')))
  assert.equal(ofType(tpl, 'Microsoft.Insights/dataCollectionRuleAssociations').length, scaleSetsOf(tpl).length)
})

// The bicep.test.ts lint test fails on any warning; this rule keeps API versions current.
// Learn: "Linter rule - use recent API versions" (https://learn.microsoft.com/azure/azure-resource-manager/bicep/linter-rule-use-recent-api-versions).
test('bicepconfig: use-recent-api-versions is on', () => {
  const config = JSON.parse(readFileSync(path.join(deployDir, 'bicepconfig.json'), 'utf8')) as Json
  assert.match(String(dig(config, 'analyzers', 'core', 'rules', 'use-recent-api-versions', 'level')), /^(warning|error)$/)
})
