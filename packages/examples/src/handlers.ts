/**
 * Handlers: worker-side code, one per actor of `actors.ts`. Each one's services (Users, Orders, Mailer, Storage...)
 * become requirements of the worker that runs it; `services.ts` builds them.
 *
 * Every handler is safe to run twice for one message (Errand delivers at least once), except `add_loyalty_points`,
 * kept to show why that matters: see `actors.ts`.
 */
import { Worker } from "@errand/core"
import { Effect } from "effect"
import {
  addLoyaltyPoints,
  backupDatabase,
  cleanupExpiredSessions,
  cleanupOldData,
  criticalTask,
  exportUserData,
  processOrder,
  reserveInventory,
  sendAlert,
  sendDailyReport,
  sendExportReadyEmail,
  sendOrderConfirmation,
  sendPasswordResetEmail,
  sendWelcomeEmail,
  updateUserStatus
} from "./actors.ts"
import { InvalidOrderState, LedgerMismatch, type Order } from "./domain.ts"
import { AppConfig } from "./services/AppConfig.ts"
import { Auth } from "./services/Auth.ts"
import { Backups } from "./services/Backups.ts"
import { Mailer } from "./services/Mailer.ts"
import { Orders } from "./services/Orders.ts"
import { Payments } from "./services/Payments.ts"
import { now } from "./services/sql.ts"
import { Storage } from "./services/Storage.ts"
import { Users } from "./services/Users.ts"

/** `1234` cents as `12.34 EUR`. */
export const money = (cents: number): string => `${(cents / 100).toFixed(2)} EUR`

const dayMillis = 24 * 60 * 60 * 1000

/** The UTC day (`YYYY-MM-DD`) holding `millis`, and its bounds. */
export const utcDay = (millis: number): { readonly day: string; readonly from: Date; readonly to: Date } => {
  const start = Math.floor(millis / dayMillis) * dayMillis
  return { day: new Date(start).toISOString().slice(0, 10), from: new Date(start), to: new Date(start + dayMillis) }
}

/** When a run is for: its cron slot when a schedule sent it, else now. */
const runTime = Effect.gen(function*() {
  const message = yield* Worker.CurrentMessage
  const slot = message.options["slot"]
  return typeof slot === "number" ? slot : (yield* now).getTime()
})

export const SendAlertLive = sendAlert.handle(({ actor, error, messageId, queue }) =>
  Effect.gen(function*() {
    const { adminEmail } = yield* AppConfig
    yield* (yield* Mailer).send({
      to: adminEmail,
      template: "alert",
      context: { messageId, actor, queue, tag: error.tag, reason: error.message }
    })
    return `alert about ${messageId} sent to ${adminEmail}`
  })
)

export const SendWelcomeEmailLive = sendWelcomeEmail.handle(({ userId }) =>
  Effect.gen(function*() {
    const user = yield* (yield* Users).get(userId) // UserNotFound: dead-lettered at once (`throws`)
    const { appUrl } = yield* AppConfig
    yield* (yield* Mailer).send({
      to: user.email,
      template: "welcome",
      context: { name: user.name, email: user.email, appUrl }
    })
    return `welcome email sent to ${user.email}`
  })
)

export const SendPasswordResetEmailLive = sendPasswordResetEmail.handle(({ resetToken, userId }) =>
  Effect.gen(function*() {
    const user = yield* (yield* Users).get(userId)
    const { appUrl } = yield* AppConfig
    const link = `${appUrl}/reset-password?token=${encodeURIComponent(resetToken)}`
    yield* (yield* Mailer).send({
      to: user.email,
      template: "password-reset",
      context: { name: user.name, email: user.email, link }
    })
    return `password reset link sent to ${user.email}`
  })
)

export const ProcessOrderLive = processOrder.handle(({ orderId }) =>
  Effect.map(Orders.use((orders) => orders.pay(orderId)), (paymentId) => ({ orderId, paymentId }))
)

export const ReserveInventoryLive = reserveInventory.handle(({ orderId }) =>
  Effect.as(Orders.use((orders) => orders.reserve(orderId)), { orderId })
)

/** An order's lines, one per line of text. */
const lines = (order: Order) =>
  order.items.map((item) => `  ${item.quantity} x ${item.sku}  ${money(item.priceCents * item.quantity)}`).join("\n")

export const SendOrderConfirmationLive = sendOrderConfirmation.handle(({ orderId }) =>
  Effect.gen(function*() {
    const orders = yield* Orders
    const order = yield* orders.get(orderId)
    if (order.status === "confirmed") return `order #${orderId} was confirmed already` // a redelivery
    if (order.status !== "reserved") {
      return yield* new InvalidOrderState({ orderId, status: order.status, expected: "reserved" })
    }
    const user = yield* (yield* Users).get(order.userId)
    yield* (yield* Mailer).send({
      to: user.email,
      template: "order-confirmation",
      context: {
        name: user.name,
        orderId,
        lines: lines(order),
        total: money(order.totalCents),
        paymentId: order.paymentId ?? "-"
      }
    })
    yield* orders.markConfirmed(orderId)
    return `confirmation of order #${orderId} sent to ${user.email}`
  })
)

/** A CSV field, quoted when it must be. */
const csvField = (value: string | number): string => {
  const text = String(value)
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
}

/** The CSV of a user's orders: one row per order, its items in one column. */
export const ordersCsv = (orders: ReadonlyArray<Order>): string =>
  [
    ["order_id", "created_at", "status", "total_cents", "items"],
    ...orders.map((order) => [
      order.id,
      new Date(order.createdAt).toISOString(),
      order.status,
      order.totalCents,
      order.items.map((item) => `${item.sku} x${item.quantity}`).join("; ")
    ])
  ].map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n"

export const ExportUserDataLive = exportUserData.handle(({ userId }, message) =>
  Effect.gen(function*() {
    yield* (yield* Users).get(userId)
    const orders = yield* (yield* Orders).listForUser(userId)
    // named by message id: a redelivery rewrites the same file
    const file = yield* (yield* Storage).write(`exports/user-${userId}-${message.id}.csv`, ordersCsv(orders))
    // the key makes the mail's send idempotent too: a redelivered export does not mail twice
    yield* sendExportReadyEmail.send({ userId, url: file.url }, { key: `export-ready:${message.id}` }).pipe(
      Effect.orDie
    )
    return { userId, file: file.key, url: file.url, rows: orders.length }
  })
)

export const SendExportReadyEmailLive = sendExportReadyEmail.handle(({ url, userId }) =>
  Effect.gen(function*() {
    const user = yield* (yield* Users).get(userId)
    yield* (yield* Mailer).send({ to: user.email, template: "export-ready", context: { name: user.name, link: url } })
    return `export link sent to ${user.email}`
  })
)

export const CleanupOldDataLive = cleanupOldData.handle(({ days }) =>
  Effect.gen(function*() {
    const cutoff = new Date((yield* runTime) - days * dayMillis)
    const otpCodes = yield* (yield* Auth).deleteCodesBefore(cutoff)
    const failedOrders = yield* (yield* Orders).deleteFailedBefore(cutoff)
    return { otpCodes, failedOrders }
  })
)

export const CleanupExpiredSessionsLive = cleanupExpiredSessions.handle(() =>
  Auth.use((auth) => auth.deleteExpiredSessions)
)

export const SendDailyReportLive = sendDailyReport.handle(({ to }) =>
  Effect.gen(function*() {
    const { day, from, to: until } = utcDay((yield* runTime) - dayMillis) // the report is about yesterday
    const signups = yield* (yield* Users).countSignups(from, until)
    const figures = yield* (yield* Orders).figures(from, until)
    yield* (yield* Mailer).send({
      to,
      template: "daily-report",
      context: { day, signups, orders: figures.orders, revenue: money(figures.revenueCents) }
    })
    return { day, signups, orders: figures.orders, revenueCents: figures.revenueCents }
  })
)

export const BackupDatabaseLive = backupDatabase.handle(() =>
  Effect.map(
    Backups.use((backups) => backups.run),
    (backup) => ({ file: backup.file.key, bytes: backup.file.bytes, method: backup.method })
  )
)

export const CriticalTaskLive = criticalTask.handle(({ day }) =>
  Effect.gen(function*() {
    const { from, to } = utcDay(Date.parse(`${day}T00:00:00Z`))
    const ledger = yield* (yield* Payments).ledger(from, to)
    if (ledger.orphanPayments.length > 0 || ledger.unpaidOrders.length > 0) {
      return yield* new LedgerMismatch({
        day,
        orphanPayments: ledger.orphanPayments,
        unpaidOrders: ledger.unpaidOrders
      })
    }
    return { day, payments: ledger.payments, totalCents: ledger.totalCents }
  })
)

export const UpdateUserStatusLive = updateUserStatus.handle(({ status, userId }) =>
  Users.use((users) => users.setStatus(userId, status))
)

export const AddLoyaltyPointsLive = addLoyaltyPoints.handle(({ points, userId }) =>
  Users.use((users) => users.addLoyaltyPoints(userId, points))
)

/** Every handler of the app. */
export const handlers = [
  SendAlertLive,
  SendWelcomeEmailLive,
  SendPasswordResetEmailLive,
  ProcessOrderLive,
  ReserveInventoryLive,
  SendOrderConfirmationLive,
  ExportUserDataLive,
  SendExportReadyEmailLive,
  CleanupOldDataLive,
  CleanupExpiredSessionsLive,
  SendDailyReportLive,
  BackupDatabaseLive,
  CriticalTaskLive,
  UpdateUserStatusLive,
  AddLoyaltyPointsLive
] as const
