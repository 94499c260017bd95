/**
 * Handlers: worker-side code. Each one's services (Users, Mailer) become requirements of the worker that runs it.
 */
import { Worker } from "@errand/core"
import { Effect } from "effect"
import {
  alertAdmin,
  cleanupOldData,
  createOrder,
  generateInvoice,
  InventoryUnavailable,
  notifyUser,
  PaymentDeclined,
  processPayment,
  RendererBusy,
  sendDailyReport,
  sendOrderConfirmation,
  sendReceipt,
  sendReminder,
  sendWelcomeEmail,
  summarizeNotifications,
  syncInventory,
  weeklyBackup
} from "./actors.ts"
import { Mailer, Users } from "./services.ts"

export const SendWelcomeEmailLive = sendWelcomeEmail.handle(({ userId }) =>
  Effect.gen(function*() {
    const user = yield* (yield* Users).get(userId) // fails with UserNotFound: dead-lettered at once (`throws`)
    yield* (yield* Mailer).send({ to: user.email, template: "welcome", context: { name: user.name } })
    return `Welcome email sent to ${user.email}`
  })
)

export const SendOrderConfirmationLive = sendOrderConfirmation.handle(({ email, orderId }) =>
  Effect.flatMap(Mailer, (mailer) => mailer.send({ to: email, template: "order-confirmation", context: { orderId } }))
)

export const SyncInventoryLive = syncInventory.handle(({ sku }) => Effect.fail(new InventoryUnavailable({ sku })))

export const GenerateInvoiceLive = generateInvoice.handle(({ amountCents, orderId }) =>
  Effect.gen(function*() {
    const message = yield* Worker.CurrentMessage
    if (message.attempts === 0) return yield* new RendererBusy()
    return `invoice-${orderId}.pdf (${(amountCents / 100).toFixed(2)} EUR)`
  })
)

export const SendReminderLive = sendReminder.handle(({ note, userId }) =>
  Effect.gen(function*() {
    const user = yield* (yield* Users).get(userId)
    yield* (yield* Mailer).send({ to: user.email, template: "reminder", context: { note } })
  }).pipe(Effect.orDie)
)

export const CleanupOldDataLive = cleanupOldData.handle(({ days }) =>
  Effect.as(Effect.logInfo(`Deleted data older than ${days} days`), 0)
)

export const SendDailyReportLive = sendDailyReport.handle(({ to }) =>
  Effect.flatMap(Mailer, (mailer) => mailer.send({ to, template: "daily-report", context: {} })).pipe(Effect.orDie)
)

export const WeeklyBackupLive = weeklyBackup.handle(() =>
  Effect.gen(function*() {
    const message = yield* Worker.CurrentMessage
    const slot = new Date(Number(message.options["slot"] ?? message.enqueuedAt)).toISOString().slice(0, 10)
    return `backup-${slot}.tar.gz`
  })
)

export const CreateOrderLive = createOrder.handle(({ amountCents, cartId, email }) =>
  Effect.succeed({ orderId: `order-${cartId}`, email, amountCents })
)

export const ProcessPaymentLive = processPayment.handle(({ amountCents, email, orderId }) =>
  amountCents > 100_000
    ? Effect.fail(new PaymentDeclined({ orderId }))
    : Effect.succeed({ orderId, email, paymentId: `pay-${orderId}` })
)

export const SendReceiptLive = sendReceipt.handle(({ email, orderId, paymentId }) =>
  Effect.flatMap(Mailer, (mailer) => mailer.send({ to: email, template: "receipt", context: { orderId, paymentId } }))
    .pipe(Effect.as(`receipt for ${orderId} sent to ${email}`), Effect.orDie)
)

export const AlertAdminLive = alertAdmin.handle(({ error, messageId }) =>
  Effect.flatMap(
    Mailer,
    (mailer) =>
      mailer.send({ to: "admin@example.com", template: "alert", context: { messageId, reason: error.message } })
  ).pipe(Effect.orDie)
)

export const NotifyUserLive = notifyUser.handle(({ userId }) =>
  Effect.gen(function*() {
    const user = yield* (yield* Users).get(userId)
    yield* (yield* Mailer).send({ to: user.email, template: "notification", context: {} })
    return user.email
  }).pipe(Effect.orDie)
)

export const SummarizeNotificationsLive = summarizeNotifications.handle(({ batch }) =>
  Effect.logInfo(`Every notification of ${batch} went out`)
)

/** Every handler of the example app. */
export const handlers = [
  SendWelcomeEmailLive,
  SendOrderConfirmationLive,
  SyncInventoryLive,
  GenerateInvoiceLive,
  SendReminderLive,
  CleanupOldDataLive,
  SendDailyReportLive,
  WeeklyBackupLive,
  CreateOrderLive,
  ProcessPaymentLive,
  SendReceiptLive,
  AlertAdminLive,
  NotifyUserLive,
  SummarizeNotificationsLive
] as const
