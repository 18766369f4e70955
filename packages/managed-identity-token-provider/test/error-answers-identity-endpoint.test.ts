import { test } from 'node:test'
import { classifyEach, errorAnswers } from './error-answers.ts'
import { mockAnswers } from './mock-answers.ts'

// Every known error answer (public reports, and mock-imds as each platform), through the SDK's
// identity-endpoint path (IDENTITY_ENDPOINT + IDENTITY_HEADER: App Service, Functions, Container Apps).
test('each error answer of the platforms, through the identity endpoint, gets its reason and hint', async (t) => {
  await classifyEach(t, 'identity', [...errorAnswers, ...await mockAnswers()])
})
