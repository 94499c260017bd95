/**
 * Sessions and one-time codes (password-reset tokens): created by the web side, cleaned up by the cron jobs.
 */
import { Context, Duration, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import type { DatabaseError } from "../domain.ts"
import { dbError, now } from "./sql.ts"

/** A password-reset token that is unknown, used or expired. */
export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {}) {}

/** A new random token (32 bytes, URL-safe). */
const token = Effect.sync(() => randomBytes(32).toString("base64url"))

/** Sessions and one-time codes. */
export class Auth extends Context.Service<Auth, {
  /** Opens a session for `ttl`; returns its id. */
  readonly createSession: (userId: number, ttl: Duration.Input) => Effect.Effect<string, DatabaseError>
  /** Deletes every session that expired by now; returns how many. */
  readonly deleteExpiredSessions: Effect.Effect<number, DatabaseError>
  /** Creates a password-reset token valid for `ttl`. */
  readonly createResetToken: (userId: number, ttl: Duration.Input) => Effect.Effect<string, DatabaseError>
  /** Uses a reset token (once): the user it was made for. */
  readonly useResetToken: (resetToken: string) => Effect.Effect<number, InvalidToken | DatabaseError>
  /** Deletes one-time codes created before `before`; returns how many. */
  readonly deleteCodesBefore: (before: Date) => Effect.Effect<number, DatabaseError>
}>()("@errand/examples/Auth") {}

/** Sessions and codes in the SQL database. */
export const layer: Layer.Layer<Auth, never, SqlClient.SqlClient> = Layer.effect(
  Auth,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const expiry = (from: Date, ttl: Duration.Input) => new Date(from.getTime() + Duration.toMillis(ttl))
    return Auth.of({
      createSession: (userId, ttl) =>
        Effect.gen(function*() {
          const [id, createdAt] = [yield* token, yield* now]
          yield* sql`INSERT INTO sessions ${sql.insert({ id, userId, createdAt, expiresAt: expiry(createdAt, ttl) })}`
            .pipe(dbError("auth.createSession"))
          return id
        }),
      deleteExpiredSessions: Effect.gen(function*() {
        const at = yield* now
        const rows = yield* sql`DELETE FROM sessions WHERE expires_at <= ${at} RETURNING id`.pipe(
          dbError("auth.deleteExpiredSessions")
        )
        return rows.length
      }),
      createResetToken: (userId, ttl) =>
        Effect.gen(function*() {
          const [code, createdAt] = [yield* token, yield* now]
          yield* sql`INSERT INTO otp_codes ${
            sql.insert({ userId, purpose: "password_reset", code, createdAt, expiresAt: expiry(createdAt, ttl) })
          }`.pipe(dbError("auth.createResetToken"))
          return code
        }),
      useResetToken: (resetToken) =>
        Effect.gen(function*() {
          const at = yield* now
          const rows = yield* sql<{ readonly userId: number }>`
            UPDATE otp_codes SET used_at = ${at}
            WHERE code = ${resetToken} AND purpose = 'password_reset' AND used_at IS NULL AND expires_at > ${at}
            RETURNING user_id`.pipe(dbError("auth.useResetToken"))
          return rows[0] === undefined ? yield* new InvalidToken() : rows[0].userId
        }),
      deleteCodesBefore: (before) =>
        sql`DELETE FROM otp_codes WHERE created_at < ${before} RETURNING id`.pipe(
          dbError("auth.deleteCodesBefore"),
          Effect.map((rows) => rows.length)
        )
    })
  })
)
