/**
 * The app's worker module. Run it with the `errand` command (`pnpm worker` does):
 *
 * ```sh
 * DATABASE_URL=postgres://... SMTP_URL=smtp://... REDIS_URL=redis://... errand worker src/worker.ts --processes 4
 * ```
 *
 * Every handler of `handlers.ts`, the services they need from the environment (`services.ts`: `DATABASE_URL` or the
 * embedded database, `STORAGE_DIR`, `SMTP_URL` or a local capture whose mails are logged, `APP_URL`,
 * `ADMIN_EMAIL`), and the cron jobs of `schedules.ts`. The broker comes from the command line: `REDIS_URL` (or
 * `--redis-url`), or `--broker memory`. Run directly (`node src/worker.ts`), it is the README's `Layer.launch` +
 * `runMain` program on the broker `REDIS_URL` chooses; SIGINT/SIGTERM stop it gracefully with exit code 0 either way.
 *
 * The embedded database lives in the worker's process: with it, producers in other processes cannot see the data,
 * so across processes set `DATABASE_URL`.
 */
import { defineWorker, runMain } from "@errand/cli"
import { Effect, Layer } from "effect"
import { brokerFromEnv } from "./broker.ts"
import { handlers } from "./handlers.ts"
import { schedules } from "./schedules.ts"
import { layerFromEnv } from "./services.ts"

/** The worker: every handler, with the services they need, and the schedules. */
export const worker = defineWorker({
  handlers,
  services: layerFromEnv,
  schedules,
  queues: ["email", "orders", "exports", "maintenance"],
  concurrency: 8
})

export default worker

if (import.meta.main) {
  Layer.launch(worker.layer()).pipe(Effect.provide(brokerFromEnv().layer), runMain)
}
