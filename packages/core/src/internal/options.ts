/**
 * Validation of the options users pass at the boundary (actor, send and worker options): a value out of range fails
 * with `InvalidOption` naming the option, instead of being clamped or reaching a broker.
 *
 * @internal
 */
import { Duration } from "effect"
import { InvalidOption } from "../ErrandError.ts"

/** Whose options are checked. */
type Of = InvalidOption["of"]

/**
 * The priority range every broker accepts: integers in `[-maxPriority, maxPriority]` (2^21 - 1, as BullMQ's bound).
 *
 * @internal
 */
export const maxPriority = 2_097_151

const render = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "bigint" || value === undefined || value === null) {
    return String(value)
  }
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const invalid = (of: Of, option: string, value: unknown, expected: string) =>
  new InvalidOption({ of, option, value: render(value), expected })

/**
 * An integer in `[min, max]` (`Infinity` only when `max` is `Infinity`), or `fallback` when absent.
 *
 * @internal
 */
export const integer = (
  of: Of,
  option: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number
): number | InvalidOption => {
  if (value === undefined) return fallback
  const ok = typeof value === "number" && value >= min && value <= max &&
    (Number.isInteger(value) || (value === Infinity && max === Infinity))
  if (ok) return value
  const range = max === Infinity ? `an integer >= ${min}, or Infinity` : `an integer from ${min} to ${max}`
  return invalid(of, option, value, range)
}

/**
 * A duration in milliseconds, at least `minMillis`; `Infinity` only with `allowInfinity`. A malformed input
 * (`"5 bogus"`, `NaN`, a negative duration) fails instead of being read as 0 or clamped.
 *
 * @internal
 */
export const duration = (
  of: Of,
  option: string,
  input: Duration.Input | undefined,
  fallback: number,
  minMillis: number,
  allowInfinity: boolean
): number | InvalidOption => {
  if (input === undefined) return fallback
  const expected = `a duration of at least ${minMillis} ms${allowInfinity ? ", or Infinity" : ", and finite"}`
  if (typeof input === "number" && Number.isNaN(input)) return invalid(of, option, input, expected)
  const parsed = Duration.fromInput(input)
  if (parsed._tag === "None") return invalid(of, option, input, expected)
  const millis = Duration.toMillis(parsed.value)
  if (Number.isNaN(millis) || millis < minMillis || (millis === Infinity && !allowInfinity)) {
    return invalid(of, option, input, expected)
  }
  return millis
}

/**
 * A priority: an integer in `[-maxPriority, maxPriority]`.
 *
 * @internal
 */
export const priority = (of: Of, value: number | undefined, fallback: number): number | InvalidOption =>
  integer(of, "priority", value, fallback, -maxPriority, maxPriority)
