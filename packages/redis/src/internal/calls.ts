/**
 * Redis calls as Effects: an ioredis promise whose rejection becomes a `BrokerError` that says what the failure
 * means (not connected, reply lost, timed out) and whether the command may have been applied, with credentials never
 * shown.
 *
 * @internal
 */
import { ErrandError } from "@errand/core"
import { Effect } from "effect"
import * as Connection from "./connection.ts"

/** The `BrokerError` of a failed Redis call. @internal */
export const brokerError = (operation: string, cause: unknown): ErrandError.BrokerError => {
  const clean = Connection.sanitize(cause)
  return new ErrandError.BrokerError({
    broker: "redis",
    operation,
    message: `Redis ${operation} failed: ${Connection.explain(clean)}`,
    applied: Connection.applied(clean),
    cause: clean
  })
}

/** The `BrokerError` of a call refused before it was sent (invalid input). @internal */
export const invalid = (operation: string, message: string): ErrandError.BrokerError =>
  new ErrandError.BrokerError({ broker: "redis", operation, message, applied: "no" })

/** Runs an ioredis call. @internal */
export const call = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, ErrandError.BrokerError> =>
  Effect.tryPromise({ try: f, catch: (cause) => brokerError(operation, cause) })
