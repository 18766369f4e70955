import { envSchema } from 'env-schema'
import { Type, type Static, type TObject, type TProperties } from 'typebox'

/** PORT, HOST and LOG_LEVEL: what every service reads, with the same defaults everywhere. */
export const CommonConfig = Type.Object({
  HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' }
  )
})

export const Port = (fallback: number) => Type.Integer({ minimum: 0, maximum: 65535, default: fallback })

/** A comma-separated list in one variable, each item matching `pattern`. */
export const CommaList = (pattern: string, fallback?: string) =>
  Type.String({ pattern: `^\\s*${pattern}\\s*(,\\s*${pattern}\\s*)*$`, ...(fallback === undefined ? {} : { default: fallback }) })

export const splitList = (value: string): string[] =>
  value.split(',').map((item) => item.trim()).filter((item) => item.length > 0)

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Reads and checks a service's configuration once, at start. The message names the variable,
 * because "env/API_BASE_URL must match format uri" is what an operator needs at 3 a.m.
 */
export function loadConfig<T extends TProperties> (
  schema: TObject<T>,
  env: Record<string, string | undefined> = process.env
): Static<TObject<T>> {
  try {
    return envSchema<Static<TObject<T>>>({
      schema: schema as unknown as object,
      data: env,
      dotenv: false
    })
  } catch (error) {
    const details = (error as { errors?: Array<{ instancePath: string, message?: string, params: { missingProperty?: string } }> }).errors
    const message = details
      ? details.map((e) => e.params.missingProperty
        ? `${e.params.missingProperty} is required`
        : `${e.instancePath.replace(/^\//, '')} ${e.message ?? 'is invalid'}`).join('; ')
      : (error as Error).message
    throw new ConfigError(`invalid configuration: ${message}`)
  }
}
