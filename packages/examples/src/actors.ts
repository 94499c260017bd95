/**
 * Actor definitions: imported by producers and workers alike. No handler code here, so a web server that only sends
 * messages never loads the handlers or their services.
 */
import { Actor } from "@errand/core"
import { Schema } from "effect"
import { MailerUnavailable, UserNotFound } from "./services.ts"

/** Dramatiq: `@dramatiq.actor(queue_name="email")`. An unknown user is never retried (`throws`). */
export const sendWelcomeEmail = Actor.make("send_welcome_email", {
  queue: "email",
  payload: Schema.Struct({ userId: Schema.Number }),
  success: Schema.String,
  error: Schema.Union([UserNotFound, MailerUnavailable]),
  throws: ["UserNotFound"]
})

/** Dramatiq: `max_retries=3, min_backoff=15000, max_backoff=3600000, queue_name="email", time_limit=60000`. */
export const sendOrderConfirmation = Actor.make("send_order_confirmation", {
  queue: "email",
  payload: Schema.Struct({ orderId: Schema.String, email: Schema.String }),
  error: MailerUnavailable,
  maxRetries: 3,
  minBackoff: "15 seconds",
  maxBackoff: "1 hour",
  timeLimit: "60 seconds"
})

/** The inventory service is down. */
export class InventoryUnavailable extends Schema.TaggedError<InventoryUnavailable>()("InventoryUnavailable", {
  sku: Schema.String
}) {}

/** Always fails in the demo: retried twice after short backoffs, then dead-lettered. */
export const syncInventory = Actor.make("sync_inventory", {
  queue: "processing",
  payload: Schema.Struct({ sku: Schema.String }),
  error: InventoryUnavailable,
  maxRetries: 2,
  minBackoff: "200 millis",
  maxBackoff: "1 second"
})

/** The invoice renderer is busy. */
export class RendererBusy extends Schema.TaggedError<RendererBusy>()("RendererBusy", {}) {}

/** Fails on its first attempt in the demo and succeeds on the retry. */
export const generateInvoice = Actor.make("generate_invoice", {
  queue: "processing",
  payload: Schema.Struct({ orderId: Schema.String, amountCents: Schema.Int }),
  success: Schema.String,
  error: RendererBusy,
  minBackoff: "300 millis",
  maxBackoff: "5 seconds"
})

/** Sent with a delay: the message waits in the broker, not in any process's memory. */
export const sendReminder = Actor.make("send_reminder", {
  queue: "email",
  payload: Schema.Struct({ userId: Schema.Number, note: Schema.String })
})

// The seed's nightly jobs (`DRAMATIQ_CRON_JOBS`), run by the schedules of `worker.ts`.

/** Deletes data older than `days` (cron `0 2 * * *`). */
export const cleanupOldData = Actor.make("cleanup_old_data", {
  queue: "processing",
  payload: Schema.Struct({ days: Schema.Int }),
  success: Schema.Number
})

/** Sends the daily report (cron `0 9 * * 1-5`: weekdays at 09:00). */
export const sendDailyReport = Actor.make("send_daily_report", {
  queue: "email",
  payload: Schema.Struct({ to: Schema.String })
})

/** Backs up the database (cron `0 0 * * 0`: Sundays at midnight). */
export const weeklyBackup = Actor.make("weekly_backup", {
  queue: "processing",
  payload: Schema.Struct({}),
  success: Schema.String,
  timeLimit: "1 hour"
})
