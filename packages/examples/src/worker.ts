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
import { Effect, Layer } from "effect"
import { brokerFromEnv } from "./broker.ts"
import { handlers } from "./handlers.ts"
import { MailerConsole, UsersLive } from "./services.ts"

/** The worker: every example handler, with the services they need. */
export const worker = defineWorker({
  handlers,
  services: Layer.mergeAll(UsersLive, MailerConsole),
  queues: ["email", "processing"],
  concurrency: 8
})

export default worker

if (import.meta.main) {
  Layer.launch(worker.layer()).pipe(Effect.provide(brokerFromEnv().layer), runMain)
}
