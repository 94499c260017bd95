/**
 * The producer side of the app — what the seed's web service does when a request comes in: write to the database,
 * then send the background task. These are plain Effects over the services and the broker; the HTTP API wraps them,
 * and `pnpm example` calls them directly.
 */
import { Pipeline } from "@errand/core"
import type { Array as Arr } from "effect"
import { Effect, Option } from "effect"
import {
  type ExportStatus,
  exportUserData,
  processOrder,
  reserveInventory,
  sendOrderConfirmation,
  sendPasswordResetEmail,
  sendWelcomeEmail
} from "./actors.ts"
import { Auth } from "./services/Auth.ts"
import { type NewItem, Orders } from "./services/Orders.ts"
import { type NewUser, Users } from "./services/Users.ts"

/** How long a session lasts. */
export const sessionTtl = "30 days"

/** How long a password-reset link works. */
export const resetTokenTtl = "1 hour"

/** Signs a user up, opens a session, and sends the welcome email. */
export const signUp = Effect.fn("producer.signUp")(function*(input: NewUser) {
  const user = yield* (yield* Users).create(input)
  const sessionId = yield* (yield* Auth).createSession(user.id, sessionTtl)
  const message = yield* sendWelcomeEmail.send({ userId: user.id })
  return { user, sessionId, message }
})

/**
 * Creates a password-reset token for the user with this email and sends the mail with its link. An unknown email
 * sends nothing and answers the same (`Option.none()`), so the endpoint does not reveal who has an account.
 */
export const requestPasswordReset = Effect.fn("producer.requestPasswordReset")(function*(email: string) {
  const user = yield* (yield* Users).findByEmail(email)
  if (Option.isNone(user)) return Option.none()
  const resetToken = yield* (yield* Auth).createResetToken(user.value.id, resetTokenTtl)
  return Option.some(yield* sendPasswordResetEmail.send({ userId: user.value.id, resetToken }))
})

/**
 * Places an order and starts its pipeline: `process_order` (payment) → `reserve_inventory` →
 * `send_order_confirmation`, each step sent the previous one's result.
 */
export const placeOrder = Effect.fn("producer.placeOrder")(
  function*(userId: number, items: Arr.NonEmptyReadonlyArray<NewItem>) {
    const order = yield* (yield* Orders).place(userId, items)
    const first = yield* processOrder.message({ orderId: order.id })
    const message = yield* Pipeline.run(first, [reserveInventory, sendOrderConfirmation])
    return { order, message }
  }
)

/** Requests an export of a user's data; the message id is what `exportStatus` takes. */
export const requestExport = Effect.fn("producer.requestExport")(function*(userId: number) {
  return yield* exportUserData.send({ userId })
})

/** The status of an export, from its stored result (kept a day). */
export const exportStatus = (messageId: string) =>
  exportUserData.result(messageId).pipe(
    Effect.map((result): ExportStatus => ({ status: "done", result })),
    Effect.catchTags({
      ResultMissing: () => Effect.succeed<ExportStatus>({ status: "pending" }),
      UserNotFound: (error) =>
        Effect.succeed<ExportStatus>({ status: "failed", error: error._tag, reason: `no user ${error.userId}` }),
      StorageError: (error) =>
        Effect.succeed<ExportStatus>({ status: "failed", error: error._tag, reason: error.reason }),
      DatabaseError: (error) =>
        Effect.succeed<ExportStatus>({ status: "failed", error: error._tag, reason: error.message }),
      MessageFailed: (error) =>
        Effect.succeed<ExportStatus>({ status: "failed", error: error.tag, reason: error.reason })
    })
  )
