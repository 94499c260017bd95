/**
 * The seed's cron jobs (Dramatiq's `DRAMATIQ_CRON_JOBS`), in UTC. Run with the worker (`worker.ts`) or on their own
 * (`Schedules.layer(schedules)`): each slot is sent once, however many schedulers run.
 */
import { Schedules } from "@errand/core"
import { backupDatabase, cleanupExpiredSessions, cleanupOldData, sendDailyReport } from "./actors.ts"

/** Who gets the daily report. */
export const reportRecipient = "team@example.com"

/** The schedules. */
export const schedules: ReadonlyArray<Schedules.Entry> = [
  // every night at 02:00: one-time codes and failed orders older than 30 days
  Schedules.entry({ name: "cleanup_old_data", actor: cleanupOldData, cron: "0 2 * * *", payload: { days: 30 } }),
  // every hour, on the hour
  Schedules.entry({ name: "cleanup_expired_sessions", actor: cleanupExpiredSessions, cron: "0 * * * *", payload: {} }),
  // weekdays at 09:00
  Schedules.entry({
    name: "send_daily_report",
    actor: sendDailyReport,
    cron: "0 9 * * 1-5",
    payload: { to: reportRecipient }
  }),
  // Sundays at midnight
  Schedules.entry({ name: "backup_database", actor: backupDatabase, cron: "0 0 * * 0", payload: {} })
]
