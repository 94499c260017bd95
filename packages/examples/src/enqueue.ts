/**
 * `pnpm enqueue [--count N]`: sends the example messages from their own process (to Redis when `REDIS_URL` is set),
 * for a worker started with `pnpm worker` to run.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Actor } from "@errand/core"
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { generateInvoice, sendOrderConfirmation, sendReminder, sendWelcomeEmail, syncInventory } from "./actors.ts"
import { brokerFromEnv } from "./broker.ts"

const count = Flag.Int("count").pipe(
  Flag.withDescription("How many rounds of the example messages to send"),
  Flag.withDefault(1)
)

const broker = brokerFromEnv()

const enqueue = Command.make("enqueue", { count }, (options) =>
  Effect.gen(function*() {
    const messages = []
    for (let round = 0; round < options.count; round++) {
      messages.push(
        yield* sendWelcomeEmail.message({ userId: 1 }),
        yield* sendWelcomeEmail.message({ userId: 42 }),
        yield* sendOrderConfirmation.message({ orderId: `o-${1000 + round}`, email: "ada@example.com" }),
        yield* generateInvoice.message({ orderId: `o-${1000 + round}`, amountCents: 4_250 }),
        yield* syncInventory.message({ sku: `SKU-${round}` }),
        yield* sendReminder.message({ userId: 2, note: "Your cart misses you" }, { delay: "1 second" })
      )
    }
    yield* Actor.enqueue(messages) // one broker call for the whole batch
    yield* Console.log(`Sent ${messages.length} messages to ${broker.name}`)
  }).pipe(Effect.provide(broker.layer)))

Command.run(enqueue, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
