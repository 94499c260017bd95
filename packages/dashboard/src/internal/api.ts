/**
 * The dashboard's HTTP API and page routes.
 *
 * @internal
 */
import { Broker, type ErrandError, Heartbeat, Message } from "@errand/core"
import { Clock, Effect, Redacted, Schedule, Schema } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createHash, timingSafeEqual } from "node:crypto"
import { RequestRefused } from "../DashboardError.ts"
import { assets } from "./assets.ts"
import type { Settings } from "./settings.ts"
import { Throughput } from "./throughput.ts"

/** Errand's queue-name grammar (as `Actor.make` checks it). */
const QUEUE = /^[a-zA-Z_][a-zA-Z0-9._-]{0,254}$/

/** The header every action must carry (a cross-site request cannot send it without a CORS preflight). */
export const requestHeader = "x-errand-dashboard"

/** The most dead letters one page lists. */
const maxPage = 500

/** The most ids one action names. */
const maxIds = 1_000

const Selection = Schema.Union([
  Schema.Struct({ ids: Schema.Array(Schema.String).check(Schema.isMinLength(1), Schema.isMaxLength(maxIds)) }),
  Schema.Struct({ all: Schema.Literal(true) })
])

const refused = (status: 400 | 401 | 403 | 404, reason: string) => new RequestRefused({ status, reason })

const securityHeaders = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
}

/** A JSON answer, or the error's. */
const answer = <A, R>(
  effect: Effect.Effect<A, RequestRefused | ErrandError.BrokerError, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  effect.pipe(
    Effect.map((body) => HttpServerResponse.jsonUnsafe(body, { headers: securityHeaders })),
    Effect.catch((error) =>
      Effect.succeed(
        error._tag === "RequestRefused"
          ? HttpServerResponse.jsonUnsafe({ error: error._tag, message: error.reason }, {
            status: error.status,
            headers: error.status === 401
              ? { ...securityHeaders, "www-authenticate": "Bearer realm=\"errand-dashboard\"" }
              : securityHeaders
          })
          : HttpServerResponse.jsonUnsafe(
            { error: error._tag, message: error.message, operation: error.operation },
            { status: 502, headers: securityHeaders }
          )
      )
    )
  )

/** Whether `given` is the token, compared in constant time (of their SHA-256 digests). */
const sameSecret = (given: string, expected: string): boolean =>
  timingSafeEqual(createHash("sha256").update(given).digest(), createHash("sha256").update(expected).digest())

const queueParam = (params: Readonly<Record<string, string | undefined>>) => {
  const queue = params["queue"]
  return queue !== undefined && QUEUE.test(queue)
    ? Effect.succeed(queue)
    : Effect.fail(refused(400, `Not a queue name: ${JSON.stringify(queue ?? "")}`))
}

const integerParam = (url: URL, name: string, fallback: number, max: number) => {
  const raw = url.searchParams.get(name)
  if (raw === null || raw === "") return Effect.succeed(fallback)
  const value = Number(raw)
  return Number.isInteger(value) && value >= 0 && value <= max
    ? Effect.succeed(value)
    : Effect.fail(refused(400, `"${name}" must be an integer from 0 to ${max} (got ${JSON.stringify(raw)})`))
}

/** The actor of an envelope, when the body is one. */
const actorOf = (body: unknown): string | undefined =>
  typeof body === "object" && body !== null && "actor" in body && typeof body.actor === "string"
    ? body.actor
    : undefined

const deadLetterJson = (letter: Broker.DeadLetter) => ({
  id: letter.id,
  queue: letter.queue,
  actor: actorOf(letter.body) ?? null,
  attempts: letter.attempts,
  reason: letter.reason,
  deadAt: letter.deadAt,
  history: letter.history,
  body: letter.body
})

/** Adds the routes to `router` (already prefixed) and starts the throughput sampler in the layer's scope. */
export const routes = Effect.fnUntraced(function*(settings: Settings, router: HttpRouter.HttpRouter) {
  const broker = yield* Broker.Broker
  const files = yield* assets(settings.prefix)
  const throughput = new Throughput(settings.historyMillis + 60_000)
  const reports = Heartbeat.reports.pipe(Effect.provideService(Broker.Broker, broker))

  const sample = Effect.gen(function*() {
    const live = yield* reports
    const now = yield* Clock.currentTimeMillis
    throughput.record(now, live)
  }).pipe(Effect.catch((error) => Effect.logDebug("Dashboard: the heartbeats could not be read", error)))
  yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(settings.sampleMillis)))

  /** Checks an action: the request header, read-only mode, the token. */
  const authorize = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (request.headers[requestHeader] !== "1") {
      return yield* refused(403, `Actions need the header ${requestHeader}: 1`)
    }
    if (settings.readOnly) return yield* refused(403, "The dashboard is read-only")
    if (settings.token !== undefined) {
      const header = request.headers["authorization"] ?? ""
      const given = header.startsWith("Bearer ") ? header.slice(7) : ""
      if (!sameSecret(given, Redacted.value(settings.token))) {
        return yield* refused(401, "This action needs the dashboard's token")
      }
    }
  })

  const requestUrl = Effect.map(HttpServerRequest.HttpServerRequest, (request) => new URL(request.url, "http://x"))

  const page = HttpServerResponse.text(files.page, {
    contentType: "text/html; charset=utf-8",
    headers: securityHeaders
  })

  const queueStats = Effect.gen(function*() {
    const names = yield* broker.queues
    return yield* Effect.forEach(
      names,
      (queue) => Effect.map(broker.stats(queue), (stats) => ({ queue, ...stats })),
      { concurrency: 8 }
    )
  })

  const action = (
    name: "requeue" | "delete",
    run: (queue: string, selection: Broker.DeadLetterSelection) => Effect.Effect<number, ErrandError.BrokerError>
  ) =>
    answer(Effect.gen(function*() {
      yield* authorize
      const queue = yield* queueParam(yield* HttpRouter.params)
      const selection = yield* HttpServerRequest.schemaBodyJson(Selection).pipe(
        Effect.mapError((error) =>
          refused(400, `The body must be {"ids": [...]} (1 to ${maxIds} ids) or {"all": true}: ${error.message}`)
        )
      )
      if ("ids" in selection) {
        const bad = selection.ids.find((id) => !Message.isMessageId(id))
        if (bad !== undefined) return yield* refused(400, `Not a message id: ${JSON.stringify(bad)}`)
      }
      const count = yield* run(queue, "ids" in selection ? { ids: selection.ids } : {})
      yield* Effect.logInfo(`Dashboard: ${name} ${count} dead letter(s) of ${queue}`)
      return name === "requeue" ? { queue, requeued: count } : { queue, deleted: count }
    }))

  yield* router.addAll([
    HttpRouter.route("GET", "/", Effect.succeed(page)),
    HttpRouter.route("GET", "/index.html", Effect.succeed(page)),
    HttpRouter.route(
      "GET",
      "/assets/app.js",
      Effect.succeed(HttpServerResponse.text(files.script, {
        contentType: "text/javascript; charset=utf-8",
        headers: securityHeaders
      }))
    ),
    HttpRouter.route(
      "GET",
      "/assets/style.css",
      Effect.succeed(HttpServerResponse.text(files.style, {
        contentType: "text/css; charset=utf-8",
        headers: securityHeaders
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/info",
      answer(Effect.succeed({
        broker: broker.name,
        readOnly: settings.readOnly,
        tokenRequired: settings.token !== undefined,
        pollMillis: settings.pollMillis,
        requestHeader
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/queues",
      answer(Effect.gen(function*() {
        const queues = yield* queueStats
        return { at: yield* Clock.currentTimeMillis, queues }
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/throughput",
      answer(Effect.gen(function*() {
        return {
          at: yield* Clock.currentTimeMillis,
          sampleMillis: settings.sampleMillis,
          series: throughput.series(settings.historyMillis, 10_000),
          actors: throughput.actors(60_000)
        }
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/workers",
      answer(Effect.gen(function*() {
        const live = yield* reports
        return {
          at: yield* Clock.currentTimeMillis,
          workers: live.map(({ actors: _, schedules: __, ...worker }) => worker)
        }
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/schedules",
      answer(Effect.gen(function*() {
        const live = yield* reports
        const byName = new Map<string, Heartbeat.ScheduleInfo & { schedulers: number }>()
        for (const report of live) {
          for (const schedule of report.schedules) {
            const key = `${schedule.queue}\u0000${schedule.name}`
            const seen = byName.get(key)
            byName.set(
              key,
              seen === undefined
                ? { ...schedule, schedulers: 1 }
                : { ...seen, nextRun: Math.min(seen.nextRun, schedule.nextRun), schedulers: seen.schedulers + 1 }
            )
          }
        }
        return {
          at: yield* Clock.currentTimeMillis,
          schedules: [...byName.values()].sort((a, b) => a.nextRun - b.nextRun || (a.name < b.name ? -1 : 1))
        }
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/queues/:queue/dead-letters",
      answer(Effect.gen(function*() {
        const queue = yield* queueParam(yield* HttpRouter.params)
        const url = yield* requestUrl
        const offset = yield* integerParam(url, "offset", 0, Number.MAX_SAFE_INTEGER)
        const limit = yield* integerParam(url, "limit", 50, maxPage)
        const [stats, letters] = yield* Effect.all([
          broker.stats(queue),
          broker.deadLetters(queue, { offset, limit })
        ], { concurrency: 2 })
        return { queue, total: stats.dead, offset, limit, deadLetters: letters.map(deadLetterJson) }
      }))
    ),
    HttpRouter.route(
      "GET",
      "/api/queues/:queue/dead-letters/:id",
      answer(Effect.gen(function*() {
        const params = yield* HttpRouter.params
        const queue = yield* queueParam(params)
        const id = params["id"] ?? ""
        if (!Message.isMessageId(id)) return yield* refused(400, `Not a message id: ${JSON.stringify(id)}`)
        const letter = yield* broker.deadLetter(queue, id)
        if (letter === undefined) return yield* refused(404, `No dead letter ${id} in ${queue}`)
        return deadLetterJson(letter)
      }))
    ),
    HttpRouter.route(
      "POST",
      "/api/queues/:queue/dead-letters/requeue",
      action("requeue", (queue, selection) => broker.requeueDeadLetters(queue, selection))
    ),
    HttpRouter.route(
      "POST",
      "/api/queues/:queue/dead-letters/delete",
      action("delete", (queue, selection) => broker.purgeDeadLetters(queue, selection))
    )
  ])
})
