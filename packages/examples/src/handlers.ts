/**
 * Handlers: worker-side code. Each one's services (Users, Mailer) become requirements of the worker that runs it.
 */
import { Worker } from "@errand/core"
import { Effect } from "effect"
import {
  cleanupOldData,
  generateInvoice,
  InventoryUnavailable,
  RendererBusy,
  sendDailyReport,
  sendOrderConfirmation,
  sendReminder,
  sendWelcomeEmail,
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

/** Every handler of the example app. */
export const handlers = [
  SendWelcomeEmailLive,
  SendOrderConfirmationLive,
  SyncInventoryLive,
  GenerateInvoiceLive,
  SendReminderLive,
  CleanupOldDataLive,
  SendDailyReportLive,
  WeeklyBackupLive
] as const
