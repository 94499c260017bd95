/**
 * The dashboard's options, checked.
 *
 * @internal
 */
import { Duration, Effect, Redacted } from "effect"
import type { Options } from "../Dashboard.ts"
import { InvalidDashboardOptions } from "../DashboardError.ts"

/** The settings the API runs with, checked. */
export interface Settings {
  readonly prefix: string
  readonly token: Redacted.Redacted<string> | undefined
  readonly readOnly: boolean
  readonly pollMillis: number
  readonly sampleMillis: number
  readonly historyMillis: number
}

const PREFIX = /^(\/[A-Za-z0-9._~-]+)*$/

const millis = (
  option: string,
  input: Duration.Input | undefined,
  fallback: number,
  min: number,
  max: number
): Effect.Effect<number, InvalidDashboardOptions> => {
  if (input === undefined) return Effect.succeed(fallback)
  const parsed = Duration.fromInput(input)
  const value = parsed._tag === "None" ? Number.NaN : Duration.toMillis(parsed.value)
  return value >= min && value <= max
    ? Effect.succeed(value)
    : Effect.fail(
      new InvalidDashboardOptions({
        option,
        problem: `must be a duration from ${min} ms to ${max} ms (got ${String(input)})`
      })
    )
}

/** Checks options. */
export const settings = (options: Options): Effect.Effect<Settings, InvalidDashboardOptions> =>
  Effect.gen(function*() {
    const prefix = (options.prefix ?? "").replace(/\/+$/, "")
    if (!PREFIX.test(prefix)) {
      return yield* new InvalidDashboardOptions({
        option: "prefix",
        problem: `must be a path like "/errand" (segments of letters, digits and . _ ~ -), got ${
          JSON.stringify(options.prefix)
        }`
      })
    }
    if (options.token !== undefined && Redacted.value(options.token).length < 8) {
      return yield* new InvalidDashboardOptions({ option: "token", problem: "must be at least 8 characters" })
    }
    return {
      prefix,
      token: options.token,
      readOnly: options.readOnly ?? false,
      pollMillis: yield* millis("pollEvery", options.pollEvery, 2_000, 500, 3_600_000),
      sampleMillis: yield* millis("sampleEvery", options.sampleEvery, 2_000, 500, 3_600_000),
      historyMillis: yield* millis("history", options.history, 600_000, 10_000, 86_400_000)
    }
  })
