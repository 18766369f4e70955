/*
 * One SDK flavour against mock-imds, in a process of its own: @azure/identity and MSAL freeze
 * the endpoint, the first credential's HTTP client (with its retry options) and the token cache
 * in module statics, so a flavour cannot share a process with another.
 *
 * The parent test passes the plan in CONFORMANCE_PLAN (JSON) and the endpoint through the SDK's
 * own environment variables; this prints one JSON document of measured results and asserts
 * nothing: every judgement is the parent's.
 */
import { DefaultAzureCredential, ManagedIdentityCredential, type AccessToken, type TokenCredential } from '@azure/identity'
import { ManagedIdentityApplication } from '@azure/msal-node'
import { MockImdsAdmin, type FaultSpec } from '../../scripts/lib/mock-imds.ts'
import type { Plan, Outcome, ScenarioResult, Credential } from './plan.ts'

const plan = JSON.parse(process.env.CONFORMANCE_PLAN ?? 'null') as Plan
const admin = new MockImdsAdmin(plan.adminUrl)

function makeCredential (spec: Credential): { getToken: (resource: string) => Promise<AccessToken> } {
  if (spec.kind === 'msal') {
    const app = new ManagedIdentityApplication({
      managedIdentityIdParams: {
        ...(spec.clientId ? { userAssignedClientId: spec.clientId } : {}),
        ...(spec.resourceId ? { userAssignedResourceId: spec.resourceId } : {}),
        ...(spec.objectId ? { userAssignedObjectId: spec.objectId } : {})
      }
    })
    return {
      async getToken (resource) {
        const result = await app.acquireToken({ resource })
        return { token: result.accessToken, expiresOnTimestamp: result.expiresOn?.getTime() ?? 0, tokenType: 'Bearer' }
      }
    }
  }
  let credential: TokenCredential
  if (spec.kind === 'mi') {
    credential = new ManagedIdentityCredential({
      ...(spec.clientId ? { clientId: spec.clientId } : {}),
      ...(spec.resourceId ? { resourceId: spec.resourceId } : {}),
      ...(spec.objectId ? { objectId: spec.objectId } : {}),
      ...(spec.retryOptions ? { retryOptions: spec.retryOptions } : {})
    })
  } else {
    // DefaultAzureCredential reads AZURE_CLIENT_ID at construction, as it would in a container.
    if (spec.envClientId) process.env.AZURE_CLIENT_ID = spec.envClientId
    else delete process.env.AZURE_CLIENT_ID
    credential = new DefaultAzureCredential({
      ...(spec.clientId ? { managedIdentityClientId: spec.clientId } : {}),
      ...(spec.resourceId ? { managedIdentityResourceId: spec.resourceId } : {}),
      ...(spec.retryOptions ? { retryOptions: spec.retryOptions } : {})
    })
  }
  return {
    async getToken (resource) {
      const token = await credential.getToken(`${resource}/.default`)
      if (!token) throw new Error('getToken returned null')
      return token
    }
  }
}

const describeError = (error: unknown) => {
  const e = error as Error & { cause?: Error & { errorCode?: string } }
  return { errorName: e.name, errorMessage: e.message, ...(e.cause ? { causeName: e.cause.name, causeCode: e.cause.errorCode } : {}) }
}

async function call (credential: ReturnType<typeof makeCredential>, resource: string): Promise<Outcome> {
  const started = performance.now()
  try {
    const token = await credential.getToken(resource)
    return {
      ok: true,
      token: token.token,
      expiresOnTimestamp: token.expiresOnTimestamp,
      ...(token.refreshAfterTimestamp ? { refreshAfterTimestamp: token.refreshAfterTimestamp } : {}),
      elapsedMs: Math.round(performance.now() - started)
    }
  } catch (error) {
    return { ok: false, ...describeError(error), elapsedMs: Math.round(performance.now() - started) }
  }
}

const results: ScenarioResult[] = []
for (const scenario of plan.scenarios) {
  await admin.clearFaults()
  for (const fault of scenario.faults ?? []) await admin.addFault(fault as FaultSpec)
  const before = (await admin.state()).tokenRequests
  let credential: ReturnType<typeof makeCredential>
  try {
    credential = makeCredential(scenario.credential)
  } catch (error) {
    results.push({ name: scenario.name, outcomes: [{ ok: false, ...describeError(error), elapsedMs: 0 }], requests: 0 })
    continue
  }
  const outcomes: Outcome[] = []
  let pendingAtRelease: boolean | undefined
  for (let i = 0; i < (scenario.calls ?? 1); i++) {
    if (scenario.releaseAfterMs === undefined) {
      outcomes.push(await call(credential, scenario.resource))
      continue
    }
    // A hang: see whether the SDK gives up by itself, then let the mock answer.
    let settled = false
    const pending = call(credential, scenario.resource).finally(() => { settled = true })
    await new Promise((resolve) => setTimeout(resolve, scenario.releaseAfterMs))
    pendingAtRelease = !settled
    await admin.clearFaults()
    outcomes.push(await pending)
  }
  const requests = (await admin.state()).tokenRequests - before
  results.push({ name: scenario.name, outcomes, requests, ...(pendingAtRelease === undefined ? {} : { pendingAtRelease }) })
}
await admin.clearFaults()
process.stdout.write(JSON.stringify(results))
