/**
 * The error-notification recipe (the seed's `critical_task`): a middleware whose `afterSettle` posts each dead letter
 * to a webhook with `effect/http`'s `HttpClient`, with its own retries, never blocking or failing the worker. Real
 * HTTP on an ephemeral port of 127.0.0.1, recording the calls.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Layer, Schedule, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { createServer, type Server } from "node:http"
import { Actor, Middleware, Worker } from "../src/index.ts"

class Failed extends Schema.TaggedError<Failed>()("Failed", { n: Schema.Number }) {}

const critical = Actor.make("critical_task", {
  queue: "critical",
  payload: Schema.Struct({ n: Schema.Number }),
  error: Failed,
  maxRetries: 0
})

/** The recipe: post `{actor, messageId, error}` for each dead letter; 3 retries 10 ms apart, then log and give up. */
const NotifyOnDeadLetter = (url: string) =>
  Middleware.layer(Effect.gen(function*() {
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.filterStatusOk,
      HttpClient.retry({ schedule: Schedule.spaced("10 millis"), times: 3 })
    )
    return {
      name: "notify-on-dead-letter",
      afterSettle: (outcome) =>
        outcome._tag !== "DeadLettered" ? Effect.void : client.execute(
          HttpClientRequest.post(url).pipe(HttpClientRequest.bodyJsonUnsafe({
            actor: outcome.actor,
            messageId: outcome.messageId,
            error: outcome.reason
          }))
        ).pipe(
          Effect.asVoid,
          Effect.catch((error) => Effect.logWarning(`Webhook for ${outcome.messageId} failed`, error))
        )
    }
  }))

/** A webhook receiver on 127.0.0.1:0 that records each call's body, answering `status(callNumber)`. */
const receiver = (status: (call: number) => number) =>
  Effect.acquireRelease(
    Effect.callback<{
      readonly server: Server
      readonly url: string
      readonly calls: Array<unknown>
      /** Resolves once `count` calls were received. */
      readonly received: (count: number) => Effect.Effect<void>
    }>((resume) => {
      const calls: Array<unknown> = []
      const waiting = new Set<() => void>()
      const received = (count: number) =>
        Effect.callback<void>((done) => {
          const check = () => {
            if (calls.length < count) return
            waiting.delete(check)
            done(Effect.void)
          }
          waiting.add(check)
          check()
          return Effect.sync(() => waiting.delete(check))
        })
      const server = createServer((request, response) => {
        let body = ""
        request.on("data", (chunk) => (body += chunk))
        request.on("end", () => {
          calls.push(JSON.parse(body))
          response.statusCode = status(calls.length)
          response.end()
          for (const check of [...waiting]) check()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as { readonly port: number }
        resume(Effect.succeed({ server, url: `http://127.0.0.1:${address.port}/hook`, calls, received }))
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  )

describe("error notifications (a webhook on dead letters)", () => {
  it.live("posts exactly one call per dead letter", () =>
    Effect.gen(function*() {
      const hook = yield* receiver(() => 204)
      const handler = critical.handle(({ n }) => Effect.fail(new Failed({ n })))
      const sent = yield* Effect.all([critical.send({ n: 1 }), critical.send({ n: 2 })])
      yield* Effect.gen(function*() {
        yield* MemoryBroker.join("critical")
        // afterSettle runs in a fiber of its own: wait for both calls (a hang fails at vitest's timeout)
        yield* hook.received(2)
      }).pipe(
        Effect.provide(
          Worker.layer({ handlers: [handler] }).pipe(
            Layer.provide(NotifyOnDeadLetter(hook.url)),
            Layer.provide(FetchHttpClient.layer)
          )
        )
      )
      const ids = hook.calls.map((call) => (call as { readonly messageId: string }).messageId).sort()
      assert.deepStrictEqual(ids, sent.map((message) => message.id).sort())
      assert.deepStrictEqual((hook.calls[0] as { readonly error: { readonly tag: string } }).error.tag, "Failed")
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))

  it.live("a failing webhook is retried, then given up, and the worker keeps running messages", () =>
    Effect.gen(function*() {
      const hook = yield* receiver(() => 500)
      const handler = critical.handle(({ n }) => n === 1 ? Effect.fail(new Failed({ n })) : Effect.void)
      yield* critical.send({ n: 1 })
      yield* Effect.gen(function*() {
        yield* MemoryBroker.join("critical")
        yield* hook.received(4) // 1 call + 3 retries
        yield* critical.send({ n: 2 })
        yield* MemoryBroker.join("critical") // the worker still runs messages
        assert.deepStrictEqual(yield* MemoryBroker.stats("critical"), { ready: 0, delayed: 0, inFlight: 0, dead: 1 })
      }).pipe(
        Effect.provide(
          Worker.layer({ handlers: [handler] }).pipe(
            Layer.provide(NotifyOnDeadLetter(hook.url)),
            Layer.provide(FetchHttpClient.layer)
          )
        )
      )
      assert.strictEqual(hook.calls.length, 4)
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))
})
