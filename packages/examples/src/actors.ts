/**
 * Actor definitions: every background task of the seed's sample project, imported by producers (the web side) and
 * workers alike. No handler code and no services here, so a web server that only sends messages never loads the
 * handlers, the mailer or the backup code. The handlers are in `handlers.ts`.
 *
 * Queues: `email` (every mail), `orders` (the order pipeline), `exports` (long CSV exports, time limit 1 hour) and
 * `maintenance` (cron jobs, the backup, the critical task and the idempotency pair).
 */
import { Actor } from "@errand/core"
import { Schema } from "effect"
import {
  BackupFailed,
  DatabaseError,
  Id,
  InvalidOrderState,
  LedgerMismatch,
  MailerUnavailable,
  OrderNotFound,
  OutOfStock,
  PaymentDeclined,
  StorageError,
  UserNotFound
} from "./domain.ts"

// ---------------------------------------------------------------------------------------------------------------
// Emails

/** Alerts the on-call admin that a message failed for good (the `onFailure` callback of `critical_task`). */
export const sendAlert = Actor.make("send_alert", {
  queue: "email",
  payload: Actor.FailurePayload,
  success: Schema.String,
  error: MailerUnavailable
})

/** Dramatiq: `@dramatiq.actor(queue_name="email")`. An unknown user is never retried (`throws`). */
export const sendWelcomeEmail = Actor.make("send_welcome_email", {
  queue: "email",
  payload: Schema.Struct({ userId: Id }),
  success: Schema.String,
  error: Schema.Union([UserNotFound, MailerUnavailable, DatabaseError]),
  throws: ["UserNotFound"]
})

/** Dramatiq: `send_password_reset_email(user_id, reset_token)`: mails the reset link holding the token. */
export const sendPasswordResetEmail = Actor.make("send_password_reset_email", {
  queue: "email",
  payload: Schema.Struct({ userId: Id, resetToken: Schema.String.check(Schema.isMinLength(16)) }),
  success: Schema.String,
  error: Schema.Union([UserNotFound, MailerUnavailable, DatabaseError]),
  throws: ["UserNotFound"]
})

// ---------------------------------------------------------------------------------------------------------------
// The order pipeline: process_order (payment) -> reserve_inventory -> send_order_confirmation. Each step's payload is
// the previous step's success, so `Pipeline.run` checks the chain at compile time.

/** An order, by id: what `process_order` is sent and what `send_order_confirmation` receives. */
export const OrderRef = Schema.Struct({ orderId: Id })

/** A paid order: `process_order`'s success, `reserve_inventory`'s payload. */
export const OrderPaid = Schema.Struct({ orderId: Id, paymentId: Schema.String })

/**
 * Step 1: charges the order's total (Dramatiq's `process_order`). A declined card marks the order failed and stops
 * the pipeline (never retried); a charge is idempotent per order, so a redelivered step never charges twice.
 */
export const processOrder = Actor.make("process_order", {
  queue: "orders",
  payload: OrderRef,
  success: OrderPaid,
  error: Schema.Union([OrderNotFound, PaymentDeclined, InvalidOrderState, DatabaseError]),
  throws: ["OrderNotFound", "PaymentDeclined", "InvalidOrderState"],
  maxRetries: 5,
  minBackoff: "1 second",
  maxBackoff: "1 minute"
})

/**
 * Step 2: takes the order's items out of stock, in one transaction (correct under concurrent workers). A line with
 * too little stock fails the order and refunds its payment (`OutOfStock`, never retried). Running it again for a
 * reserved order changes nothing: stock is decremented exactly once per order.
 */
export const reserveInventory = Actor.make("reserve_inventory", {
  queue: "orders",
  payload: OrderPaid,
  success: OrderRef,
  error: Schema.Union([OrderNotFound, OutOfStock, InvalidOrderState, DatabaseError]),
  throws: ["OrderNotFound", "OutOfStock", "InvalidOrderState"],
  maxRetries: 5,
  minBackoff: "1 second",
  maxBackoff: "1 minute"
})

/** Step 3. Dramatiq: `max_retries=3, min_backoff=15000, max_backoff=3600000, queue_name="email", time_limit=60000`. */
export const sendOrderConfirmation = Actor.make("send_order_confirmation", {
  queue: "email",
  payload: OrderRef,
  success: Schema.String,
  error: Schema.Union([OrderNotFound, UserNotFound, InvalidOrderState, MailerUnavailable, DatabaseError]),
  throws: ["OrderNotFound", "UserNotFound", "InvalidOrderState"],
  maxRetries: 3,
  minBackoff: "15 seconds",
  maxBackoff: "1 hour",
  timeLimit: "60 seconds"
})

// ---------------------------------------------------------------------------------------------------------------
// Exports

/** Where an export was written, and how many rows it holds. */
export const ExportResult = Schema.Struct({
  userId: Id,
  file: Schema.String,
  url: Schema.String,
  rows: Schema.Int
})

/** Where an export was written, and how many rows it holds. */
export type ExportResult = typeof ExportResult.Type

/** Where an export is: still running (or unknown), done with its file, or failed with the reason. */
export const ExportStatus = Schema.Union([
  Schema.Struct({ status: Schema.Literal("pending") }),
  Schema.Struct({ status: Schema.Literal("done"), result: ExportResult }),
  Schema.Struct({ status: Schema.Literal("failed"), error: Schema.String, reason: Schema.String })
])

/** Where an export is: still running (or unknown), done with its file, or failed with the reason. */
export type ExportStatus = typeof ExportStatus.Type

/**
 * Dramatiq: `@dramatiq.actor(time_limit=3600000)`. Writes the user's orders as CSV to the storage folder, then sends
 * `send_export_ready_email` with the link. Its result is stored for a day: the web side reads it by message id.
 */
export const exportUserData = Actor.make("export_user_data", {
  queue: "exports",
  payload: Schema.Struct({ userId: Id }),
  success: ExportResult,
  error: Schema.Union([UserNotFound, StorageError, DatabaseError]),
  throws: ["UserNotFound"],
  timeLimit: "1 hour",
  storeResults: "1 day",
  maxRetries: 3,
  minBackoff: "10 seconds",
  maxBackoff: "10 minutes"
})

/** Mails the link to a finished export. */
export const sendExportReadyEmail = Actor.make("send_export_ready_email", {
  queue: "email",
  payload: Schema.Struct({ userId: Id, url: Schema.String }),
  success: Schema.String,
  error: Schema.Union([UserNotFound, MailerUnavailable, DatabaseError]),
  throws: ["UserNotFound"]
})

// ---------------------------------------------------------------------------------------------------------------
// Cron jobs (Dramatiq's `DRAMATIQ_CRON_JOBS`; the schedules are in `schedules.ts`)

/** What `cleanup_old_data` removed. */
export const CleanupReport = Schema.Struct({ otpCodes: Schema.Int, failedOrders: Schema.Int })

/** Cron `0 2 * * *`: deletes one-time codes and failed orders older than `days`. */
export const cleanupOldData = Actor.make("cleanup_old_data", {
  queue: "maintenance",
  payload: Schema.Struct({ days: Schema.Int.check(Schema.isGreaterThan(0)) }),
  success: CleanupReport,
  error: DatabaseError
})

/** Cron `0 * * * *` (hourly): deletes sessions that expired. Succeeds with how many it deleted. */
export const cleanupExpiredSessions = Actor.make("cleanup_expired_sessions", {
  queue: "maintenance",
  payload: Schema.Struct({}),
  success: Schema.Int,
  error: DatabaseError
})

/** The figures of a daily report. */
export const DailyReport = Schema.Struct({
  day: Schema.String,
  signups: Schema.Int,
  orders: Schema.Int,
  revenueCents: Schema.Int
})

/** Cron `0 9 * * 1-5` (weekdays at 09:00): mails yesterday's signups, orders and revenue. */
export const sendDailyReport = Actor.make("send_daily_report", {
  queue: "email",
  payload: Schema.Struct({ to: Schema.String }),
  success: DailyReport,
  error: Schema.Union([MailerUnavailable, DatabaseError])
})

/** Where a backup was written. */
export const BackupResult = Schema.Struct({ file: Schema.String, bytes: Schema.Int, method: Schema.String })

/**
 * Cron `0 0 * * 0` (Sundays at midnight): dumps the database to the storage folder (`pg_dump` on PostgreSQL, the
 * embedded database's own dump otherwise), within an hour.
 */
export const backupDatabase = Actor.make("backup_database", {
  queue: "maintenance",
  payload: Schema.Struct({}),
  success: BackupResult,
  error: Schema.Union([BackupFailed, StorageError]),
  timeLimit: "1 hour",
  maxRetries: 2,
  minBackoff: "1 minute",
  maxBackoff: "10 minutes"
})

// ---------------------------------------------------------------------------------------------------------------
// The critical task: reconciles a day's payments with its orders. When it fails for good, `send_alert` is sent
// (`onFailure` on the actor, so every send of it carries the alert).

/** A calendar day, `YYYY-MM-DD`, that exists (not `2026-02-30`: the handler computes the day's bounds from it). */
export const Day = Schema.String.check(
  Schema.isPattern(/^\d{4}-\d{2}-\d{2}$/),
  Schema.makeFilter((day: string) => {
    const millis = Date.parse(`${day}T00:00:00Z`)
    return (!Number.isNaN(millis) && new Date(millis).toISOString().slice(0, 10) === day) || "an existing day"
  })
)

/** What a reconciliation found. */
export const Reconciled = Schema.Struct({ day: Schema.String, payments: Schema.Int, totalCents: Schema.Int })

/** Dramatiq: a critical task with `on_failure=alert_admins`: retried 3 times, then the admin is alerted once. */
export const criticalTask = Actor.make("critical_task", {
  queue: "maintenance",
  payload: Schema.Struct({ day: Day }),
  success: Reconciled,
  error: Schema.Union([LedgerMismatch, DatabaseError]),
  maxRetries: 3,
  minBackoff: "5 seconds",
  maxBackoff: "1 minute",
  onFailure: sendAlert
})

// ---------------------------------------------------------------------------------------------------------------
// The seed's best practice: make actors idempotent. The pair below differs in exactly that.

/** A user's account status. */
export const UserStatus = Schema.Literals(["active", "inactive", "suspended"])

/** Idempotent: sets the status. Running it twice leaves the same row as running it once. */
export const updateUserStatus = Actor.make("update_user_status", {
  queue: "maintenance",
  payload: Schema.Struct({ userId: Id, status: UserStatus }),
  error: Schema.Union([UserNotFound, DatabaseError]),
  throws: ["UserNotFound"]
})

/**
 * NOT idempotent: adds points. A redelivered message (its worker died after the update, before the ack) adds them
 * twice. Kept to show the difference; see `updateUserStatus`.
 */
export const addLoyaltyPoints = Actor.make("add_loyalty_points", {
  queue: "maintenance",
  payload: Schema.Struct({ userId: Id, points: Schema.Int }),
  error: Schema.Union([UserNotFound, DatabaseError]),
  throws: ["UserNotFound"]
})
