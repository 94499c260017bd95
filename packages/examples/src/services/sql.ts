/**
 * Shared by the SQL services: SQL failures become `DatabaseError` (retried by the actors), and times come from
 * Effect's `Clock` (so `TestClock` moves the app's "now" too).
 */
import { Clock, Effect } from "effect"
import { DatabaseError } from "../domain.ts"

/** Maps any SQL failure of `self` to a `DatabaseError` naming `operation`. */
export const dbError =
  (operation: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, DatabaseError, R> =>
    Effect.mapError(
      self,
      (cause) =>
        new DatabaseError({
          operation,
          message: typeof cause === "object" && cause !== null && "message" in cause
            ? String(cause.message)
            : String(cause)
        })
    )

/** The current time as a `Date`, from the `Clock`. */
export const now: Effect.Effect<Date> = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))
