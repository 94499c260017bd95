/**
 * The example app's worker module. Run it with the `errand` command (`pnpm worker` does):
 *
 * ```sh
 * errand worker src/worker.ts --queues email,processing --concurrency 8 --processes 4
 * ```
 *
 * The broker comes from the command line: `REDIS_URL` (or `--redis-url`), or `--broker memory`. Run directly
 * (`node src/worker.ts`), it is the README's `Layer.launch` + `runMain` program on the broker `REDIS_URL` chooses;
 * SIGINT/SIGTERM stop it gracefully with exit code 0 either way.
 */
import { defineWorker, runMain } from "@errand/cli"
import { Schedules } from "@errand/core"
import { Effect, Layer } from "effect"
import { cleanupOldData, sendDailyReport, weeklyBackup } from "./actors.ts"
import { brokerFromEnv } from "./broker.ts"
import { handlers } from "./handlers.ts"
import { MailerConsole, UsersLive } from "./services.ts"

/** The seed's cron jobs (Dramatiq's `DRAMATIQ_CRON_JOBS`): each slot is sent once, however many workers run. */
export const schedules = [
  Schedules.entry({ name: "cleanup_old_data", actor: cleanupOldData, cron: "0 2 * * *", payload: { days: 30 } }),
  Schedules.entry({
    name: "send_daily_report",
    actor: sendDailyReport,
    cron: "0 9 * * 1-5",
    tz: "Europe/Berlin",
    payload: { to: "team@example.com" }
  }),
  Schedules.entry({ name: "weekly_backup", actor: weeklyBackup, cron: "0 0 * * 0", payload: {} })
]

/** The worker: every example handler, with the services they need, and the schedules. */
export const worker = defineWorker({
  handlers,
  services: Layer.mergeAll(UsersLive, MailerConsole),
  schedules,
  queues: ["email", "processing"],
  concurrency: 8
})

export default worker

if (import.meta.main) {
  Layer.launch(worker.layer()).pipe(Effect.provide(brokerFromEnv().layer), runMain)
}
