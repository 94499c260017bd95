/**
 * Durations on the command line.
 *
 * @internal
 */
import { Duration, Effect, Option } from "effect"
import { InvalidInput } from "../CommandError.ts"

const shortUnits: Readonly<Record<string, string>> = {
  ms: "millis",
  s: "seconds",
  m: "minutes",
  h: "hours",
  d: "days"
}

/** Parses `30s`, `500ms`, `2m`, `1h`, `1d` or Effect's `30 seconds`; fails with `InvalidInput` naming `input`. */
export const parseDuration = (input: string, text: string): Effect.Effect<Duration.Duration, InvalidInput> => {
  const short = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(text.trim())
  const candidate = short === null ? text.trim() : `${short[1]} ${shortUnits[short[2]!]}`
  const parsed = Duration.fromInput(candidate as Duration.Input)
  return Option.isSome(parsed) && Duration.isGreaterThanOrEqualTo(parsed.value, Duration.zero)
    ? Effect.succeed(parsed.value)
    : Effect.fail(new InvalidInput({ input, problem: `"${text}" is not a duration (e.g. 30s, 500ms, 2m, 1h)` }))
}

/** Parses an optional duration flag: `undefined` when it is absent. */
export const optionalDuration = (
  input: string,
  value: Option.Option<string>
): Effect.Effect<Duration.Duration | undefined, InvalidInput> =>
  Option.isNone(value) ? Effect.succeed(undefined) : parseDuration(input, value.value)
