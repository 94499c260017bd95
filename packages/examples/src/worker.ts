/**
 * `pnpm worker --queues email,processing --concurrency 8`: the example worker process. It runs until SIGINT or
 * SIGTERM, then shuts down gracefully (running handlers finish, prefetched messages are released) and exits 0.
 *
 * Uses Redis when `REDIS_URL` is set, else the in-memory broker (then only messages sent in this process exist).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Worker } from "@errand/core"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import { Command, Flag } from "effect/cli"
import { brokerFromEnv } from "./broker.ts"
import { handlers } from "./handlers.ts"
import { MailerConsole, UsersLive } from "./services.ts"

const queues = Flag.String("queues").pipe(
  Flag.withDescription("Comma-separated queues to consume"),
  Flag.withDefault("email,processing"),
  Flag.map((value) => value.split(",").map((queue) => queue.trim()).filter((queue) => queue.length > 0))
)
const concurrency = Flag.Int("concurrency").pipe(
  Flag.withAlias("c"),
  Flag.withDescription("How many handlers run at once"),
  Flag.withDefault(8)
)

const broker = brokerFromEnv()

const worker = Command.make(
  "worker",
  { queues, concurrency },
  (options) =>
    Effect.logInfo(`Worker on ${broker.name}: queues ${options.queues.join(", ")}, concurrency ${options.concurrency}`)
      .pipe(
        Effect.andThen(
          Layer.launch(Worker.layer({ handlers, queues: options.queues, concurrency: options.concurrency }))
        ),
        Effect.provide(Layer.mergeAll(broker.layer, UsersLive, MailerConsole))
      )
)

/** Interrupted by SIGINT/SIGTERM is a clean stop: exit 0, not 130. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

Command.run(worker, { version: "0.1.0" }).pipe(
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain({ teardown })
)
