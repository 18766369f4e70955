import { ManagedIdentityCredential } from '@azure/identity'
import fp from 'fastify-plugin'

export interface TokenProvider {
  /** An access token for the api, from the platform's identity endpoint through @azure/identity. */
  getToken: () => Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    tokenProvider: TokenProvider
  }
}

export class TokenUnavailableError extends Error {
  override name = 'TokenUnavailableError'
}

export interface TokenProviderOptions {
  scope: string
  clientId?: string | undefined
}

/**
 * The managed identity credential alone, not DefaultAzureCredential: its chain would try
 * developer tools (CLI processes) that have no place in a container.
 */
export const tokenProviderPlugin = fp<TokenProviderOptions>(async (fastify, { scope, clientId }) => {
  const credential = new ManagedIdentityCredential(clientId ? { clientId } : {})
  fastify.decorate('tokenProvider', {
    async getToken () {
      try {
        const token = await credential.getToken(scope)
        return token.token
      } catch (error) {
        throw new TokenUnavailableError((error as Error).message, { cause: error })
      }
    }
  })
}, { name: 'token-provider', fastify: '5.x' })
