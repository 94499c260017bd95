/**
 * Users: sign-up, lookup, and the two updates of the idempotency pair (set a status; add loyalty points).
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { DatabaseError, type User, UserNotFound } from "../domain.ts"
import { dbError, now } from "./sql.ts"

/** Someone already signed up with this email. */
export class EmailTaken extends Schema.TaggedError<EmailTaken>()("EmailTaken", { email: Schema.String }) {}

/** What sign-up needs. */
export interface NewUser {
  readonly email: string
  readonly name: string
}

/** The users table. */
export class Users extends Context.Service<Users, {
  /** Signs a user up. */
  readonly create: (user: NewUser) => Effect.Effect<User, EmailTaken | DatabaseError>
  readonly get: (userId: number) => Effect.Effect<User, UserNotFound | DatabaseError>
  readonly findByEmail: (email: string) => Effect.Effect<Option.Option<User>, DatabaseError>
  /** Sets the status (idempotent: the same call twice leaves the same row). */
  readonly setStatus: (userId: number, status: string) => Effect.Effect<void, UserNotFound | DatabaseError>
  /** Adds loyalty points (NOT idempotent: the same call twice adds them twice). */
  readonly addLoyaltyPoints: (userId: number, points: number) => Effect.Effect<void, UserNotFound | DatabaseError>
  /** How many users signed up in `[from, to)`. */
  readonly countSignups: (from: Date, to: Date) => Effect.Effect<number, DatabaseError>
}>()("@errand/examples/Users") {}

const columns = "id, email, name, status, loyalty_points"

/** Users in the SQL database. */
export const layer: Layer.Layer<Users, never, SqlClient.SqlClient> = Layer.effect(
  Users,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const get = (userId: number) =>
      sql<User>`SELECT ${sql.literal(columns)} FROM users WHERE id = ${userId}`.pipe(
        dbError("users.get"),
        Effect.flatMap((rows) =>
          rows[0] === undefined ? Effect.fail(new UserNotFound({ userId })) : Effect.succeed(rows[0])
        )
      )
    const updated = (userId: number) => (rows: ReadonlyArray<unknown>) =>
      rows.length === 0 ? Effect.fail(new UserNotFound({ userId })) : Effect.void
    return Users.of({
      create: (user) =>
        Effect.gen(function*() {
          const createdAt = yield* now
          const rows = yield* sql<User>`
            INSERT INTO users (email, name, created_at) VALUES (${user.email}, ${user.name}, ${createdAt})
            ON CONFLICT (email) DO NOTHING
            RETURNING ${sql.literal(columns)}`.pipe(dbError("users.create"))
          return rows[0] === undefined ? yield* new EmailTaken({ email: user.email }) : rows[0]
        }),
      get,
      findByEmail: (email) =>
        sql<User>`SELECT ${sql.literal(columns)} FROM users WHERE email = ${email}`.pipe(
          dbError("users.findByEmail"),
          Effect.map((rows) => Option.fromNullishOr(rows[0]))
        ),
      setStatus: (userId, status) =>
        sql`UPDATE users SET status = ${status} WHERE id = ${userId} RETURNING id`.pipe(
          dbError("users.setStatus"),
          Effect.flatMap(updated(userId))
        ),
      addLoyaltyPoints: (userId, points) =>
        sql`UPDATE users SET loyalty_points = loyalty_points + ${points} WHERE id = ${userId} RETURNING id`.pipe(
          dbError("users.addLoyaltyPoints"),
          Effect.flatMap(updated(userId))
        ),
      countSignups: (from, to) =>
        sql<{ readonly n: number }>`
          SELECT count(*)::int AS n FROM users WHERE created_at >= ${from} AND created_at < ${to}`.pipe(
          dbError("users.countSignups"),
          Effect.map((rows) => rows[0]?.n ?? 0)
        )
    })
  })
)
