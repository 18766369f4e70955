import { test } from 'node:test'
import { classifyEach, errorAnswers } from './error-answers.ts'
import { mockAnswers } from './mock-answers.ts'

// Every known error answer (public reports, and mock-imds as each platform), through the SDK's
// IMDS path (AZURE_POD_IDENTITY_AUTHORITY_HOST).
test('each error answer of the platforms, through IMDS, gets its reason and hint', async (t) => {
  await classifyEach(t, 'imds', [...errorAnswers, ...await mockAnswers()])
})
