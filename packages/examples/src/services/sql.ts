/**
 * Shared by the SQL services: SQL failures become `DatabaseError` (retried by the actors), and times come from
 * Effect's `Clock` (so `TestClock` moves the app's "now" too).
 */
import { Clock, Effect } from "effect"
import type { SqlError } from "effect/sql"
import { DatabaseError } from "../domain.ts"

/** The message of a failure of any shape: its `message` if it has one, else the value as a string. */
export const reasonOf = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "message" in cause ? String(cause.message) : String(cause)

/** Maps any SQL failure of `self` to a `DatabaseError` naming `operation`. */
export const dbError =
  (operation: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, DatabaseError, R> =>
    Effect.mapError(self, (cause) => new DatabaseError({ operation, message: reasonOf(cause) }))

/**
 * Maps only the `SqlError`s of `self` to a `DatabaseError` naming `operation`; its other errors (the domain's) pass
 * through. For a transaction whose body fails with both.
 */
export const sqlError =
  (operation: string) =>
  <A, E, R>(self: Effect.Effect<A, E | SqlError.SqlError, R>): Effect.Effect<A, E | DatabaseError, R> =>
    Effect.catchTag(
      self,
      "SqlError",
      (error) => Effect.fail(new DatabaseError({ operation, message: reasonOf(error) }))
    )

/** The current time as a `Date`, from the `Clock`. */
export const now: Effect.Effect<Date> = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))
