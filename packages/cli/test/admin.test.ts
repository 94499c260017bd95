/**
 * The admin commands as real processes against a private Redis: `errand enqueue`, `errand queues`,
 * `errand dead-letters list|requeue|purge`, with `--json` output.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { errand, fixture, redisUrl } from "./utils/cli.ts"

const onRedis = <A, E>(prefix: string, effect: Effect.Effect<A, E, Broker.Broker>) =>
  Effect.runPromise(effect.pipe(Effect.provide(Layer.fresh(RedisBroker.layer({ url: redisUrl, prefix })))))

describe("errand admin commands", () => {
  it("enqueue validates against the module's actor, queues lists sizes, dead-letters lists, requeues and purges", async () => {
    const prefix = `cli-${randomUUID().slice(0, 12)}`
    const cli = (...args: ReadonlyArray<string>) => errand([...args, "--redis-prefix", prefix], { REDIS_URL: redisUrl })

    const [sent, invalid, unknown, raw] = await Promise.all([
      cli("enqueue", "cli_hold", "--payload", `{"millis":5}`, "--module", fixture("worker.ts"), "--json"),
      cli("enqueue", "cli_hold", "--payload", `{"millis":"soon"}`, "--module", fixture("worker.ts")),
      cli("enqueue", "no_such_actor", "--payload", "{}", "--module", fixture("worker.ts")),
      cli("enqueue", "anything", "--payload", `{"a":1}`, "--queue", "cli_misc", "--delay", "1h", "--json")
    ])
    assert.strictEqual(sent.code, 0, sent.output)
    const message = JSON.parse(sent.output) as { readonly id: string; readonly queue: string }
    assert.strictEqual(message.queue, "cli_jobs")
    assert.strictEqual(invalid.code, 2, invalid.output)
    assert.include(invalid.output, "does not match cli_hold's schema")
    assert.strictEqual(unknown.code, 2, unknown.output)
    assert.include(unknown.output, `exports no actor named "no_such_actor"`)
    assert.strictEqual(raw.code, 0, raw.output)

    // dead-letter the sent message, as a worker that gave up would
    await onRedis(
      prefix,
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const taken = yield* broker.take({ queue: "cli_jobs", max: 1, lease: "30 seconds" })
        assert.strictEqual(taken.deliveries[0]?.id, message.id)
        yield* broker.settle([{
          _tag: "DeadLetter",
          delivery: taken.deliveries[0]!,
          reason: { tag: "Boom", message: "no" }
        }])
      })
    )

    const queues = await cli("queues", "--json")
    assert.strictEqual(queues.code, 0, queues.output)
    assert.deepStrictEqual(JSON.parse(queues.output), [
      { queue: "cli_jobs", ready: 0, delayed: 0, inFlight: 0, dead: 1 },
      { queue: "cli_misc", ready: 0, delayed: 1, inFlight: 0, dead: 0 }
    ])
    const table = await cli("queues")
    assert.match(table.output, /QUEUE\s+READY\s+DELAYED\s+IN FLIGHT\s+DEAD\ncli_jobs\s+0\s+0\s+0\s+1\n/)

    const listed = await cli("dead-letters", "list", "cli_jobs", "--json")
    const letters = JSON.parse(listed.output) as ReadonlyArray<{ readonly id: string; readonly actor: string }>
    assert.deepStrictEqual(letters.map((letter) => [letter.id, letter.actor]), [[message.id, "cli_hold"]])

    const requeued = await cli("dead-letters", "requeue", "cli_jobs", "--id", message.id, "--json")
    assert.deepStrictEqual(JSON.parse(requeued.output), { queue: "cli_jobs", requeued: 1 })
    const afterRequeue = await onRedis(prefix, Effect.flatMap(Broker.Broker, (broker) => broker.stats("cli_jobs")))
    assert.deepStrictEqual(afterRequeue, { ready: 1, delayed: 0, inFlight: 0, dead: 0 })

    const purged = await cli("dead-letters", "purge", "cli_jobs")
    assert.strictEqual(purged.code, 0, purged.output)
    assert.include(purged.output, "Purged 0 dead letter(s)")
  })
})
