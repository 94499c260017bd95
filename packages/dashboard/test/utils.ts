/**
 * Helpers of the dashboard tests: a dashboard served on a free port, JSON requests, and the private Redis of the run
 * (the redis project's globalSetup).
 */
import { RedisBroker } from "@errand/redis"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { randomUUID } from "node:crypto"
import { inject } from "vitest"
import { Dashboard } from "../src/index.ts"
import "../../redis/test/utils/globalSetup.ts"

/** The private Redis of this run. */
export const redisUrl: string = inject("redisUrl")

/** A Redis broker on a key prefix no other test uses. */
export const redisBroker = (prefix = `dash-${randomUUID().slice(0, 8)}`) => RedisBroker.layer({ url: redisUrl, prefix })

/** Serves a dashboard for the scope (on a free port) and returns its base URL, via 127.0.0.1. */
export const serveDashboard = (options: Dashboard.ServeOptions = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Dashboard.serve({ port: 0, ...options }))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "InetAddressV4") return yield* Effect.die(new Error("expected a TCP address"))
    return `http://127.0.0.1:${address.port}${options.prefix ?? ""}`
  })

/** An HTTP answer: status, headers and parsed JSON (or text) body. */
export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

/** A request to the dashboard; `action` adds the header every action needs. */
export const request = (
  url: string,
  init: { readonly method?: string; readonly body?: unknown; readonly token?: string; readonly action?: boolean } = {}
) =>
  Effect.promise(async (): Promise<Answer> => {
    const headers: Record<string, string> = {}
    if (init.body !== undefined) headers["content-type"] = "application/json"
    if (init.action ?? init.method === "POST") headers["x-errand-dashboard"] = "1"
    if (init.token !== undefined) headers["authorization"] = `Bearer ${init.token}`
    const response = await fetch(
      url,
      init.body === undefined
        ? { method: init.method ?? "GET", headers }
        : { method: init.method ?? "GET", headers, body: JSON.stringify(init.body) }
    )
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // not JSON: the text
    }
    return { status: response.status, headers: response.headers, body }
  })
