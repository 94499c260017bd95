/**
 * The page in a real browser (headless Chromium driven by playwright-core) against a real worker on a private Redis:
 * the counts change as the worker drains a queue, a dead letter is requeued with a click and runs again, a payload
 * holding `<script>` shows as text and never runs, workers, throughput and schedules are shown, and a dead letter is
 * found by id and deleted as a selection. A screenshot of
 * the page is saved under `test/screenshots/` (git-ignored) for a reviewer.
 *
 * Chromium: Debian's `chromium` at /usr/bin/chromium (`apt-get install -y chromium`; `.ci/run` installs it when
 * missing), or the one `CHROMIUM_PATH` names.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Broker, Heartbeat, Schedules, Worker } from "@errand/core"
import { Deferred, Effect, Layer, Schema } from "effect"
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { chromium, type Page } from "playwright-core"
import { redisBroker, serveDashboard } from "./utils.ts"

/** The little of the DOM the page functions below touch (they run in the browser; the tests' lib has no DOM). */
declare const document: {
  querySelector(selector: string): { readonly textContent: string | null } | null
  querySelectorAll(selector: string): { readonly length: number }
}
declare const window: { readonly __xss?: number }

const chromiumPath = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const screenshots = fileURLToPath(new URL("./screenshots/", import.meta.url))

class Boom extends Schema.TaggedError<Boom>()("Boom", { message: Schema.String }) {}

const greet = Actor.make("greet", { queue: "greetings", payload: Schema.Struct({ n: Schema.Number }) })
const charge = Actor.make("charge_card", {
  queue: "billing",
  payload: Schema.Struct({ orderId: Schema.String }),
  error: Boom,
  maxRetries: 0
})
const render = Actor.make("render_comment", {
  queue: "billing",
  payload: Schema.Struct({ html: Schema.String }),
  error: Boom,
  maxRetries: 2,
  minBackoff: "10 millis",
  maxBackoff: "50 millis"
})

const xss = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">"

/** A fresh Chromium profile in a temp dir, closed and removed with the scope. */
const browser = Effect.acquireRelease(
  Effect.promise(async () => {
    const userDataDir = mkdtempSync(join(tmpdir(), "errand-chromium-"))
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      viewport: { width: 1280, height: 1100 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
    return { context, userDataDir }
  }),
  ({ context, userDataDir }) =>
    Effect.promise(async () => {
      await context.close().catch(() => undefined)
      rmSync(userDataDir, { recursive: true, force: true })
    })
)

/** Waits until the cell's number is within [min, max] (the page polls; a generous bound for a loaded machine). */
const waitForCount = (page: Page, queue: string, column: string, min: number, max = min) =>
  Effect.promise(() =>
    page.waitForFunction(
      ([selector, low, high]) => {
        const text = document.querySelector(selector)?.textContent
        if (text === undefined || text === null || text === "") return false
        const n = Number(text)
        return n >= low && n <= high
      },
      [`#queues tr[data-queue="${queue}"] td.${column}`, min, max] as const,
      { timeout: 60_000, polling: 100 }
    )
  )

const use = <A>(f: () => Promise<A>) => Effect.promise(f)

const needsChromium = existsSync(chromiumPath)
  ? it.live
  : ((name: string) =>
    it(name, () => {
      throw new Error(
        `This test drives headless Chromium and found none at ${chromiumPath}: install it with ` +
          "`apt-get update && apt-get install -y chromium` (or set CHROMIUM_PATH to a Chromium binary)"
      )
    })) as unknown as typeof it.live

describe("Dashboard in a browser", () => {
  needsChromium(
    "shows counts draining, requeues a dead letter that then runs again, and renders payloads as text",
    () =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const charged = yield* Deferred.make<string>()
        let chargeRuns = 0
        let cardDeclined = true
        let renderRuns = 0
        const handlers = [
          greet.handle(() => Effect.andThen(Deferred.await(gate), Effect.sleep("20 millis"))),
          charge.handle(({ orderId }) =>
            Effect.suspend(() => {
              chargeRuns++
              return cardDeclined
                ? Effect.fail(new Boom({ message: `card declined for ${orderId}` }))
                : Deferred.succeed(charged, orderId)
            })
          ),
          render.handle(({ html }) =>
            Effect.suspend(() => Effect.fail(new Boom({ message: `cannot render ${html} (run ${++renderRuns})` })))
          )
        ]
        const schedules = [
          Schedules.entry({
            name: "nightly_report",
            actor: greet,
            cron: "0 3 * * *",
            payload: { n: 0 },
            catchUp: false
          })
        ]
        // a real worker (and its heartbeat) on the private Redis, in this process
        yield* Layer.build(
          Worker.layer({ handlers, concurrency: 2 }).pipe(
            Layer.provide(
              Heartbeat.layer({ queues: ["greetings", "billing"], schedules, every: "1 second", host: "test-host" })
            )
          )
        )
        const base = yield* serveDashboard({ pollEvery: "500 millis", sampleEvery: "500 millis" })
        const { context } = yield* browser
        const page = yield* use(() => context.newPage())
        const problems: Array<string> = []
        page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
        page.on("response", (response) => {
          if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`)
        })
        page.on("console", (message) => {
          if (message.type() === "error") problems.push(`console: ${message.text()}`)
        })
        yield* use(() => page.goto(`${base}/`))

        // Given 30 greetings held by the gate: the page shows them waiting
        yield* greet.sendBatch(Array.from({ length: 30 }, (_, n) => ({ n })))
        yield* waitForCount(page, "greetings", "ready", 20, 30)
        yield* waitForCount(page, "greetings", "in-flight", 1, 30)
        // When the worker may go on: the page shows the queue drained
        yield* Deferred.succeed(gate, undefined)
        yield* waitForCount(page, "greetings", "ready", 0)
        yield* waitForCount(page, "greetings", "in-flight", 0)

        // Two messages dead-letter: a declined card, and a comment whose payload (and error) holds a script
        const chargeMessage = yield* charge.send({ orderId: "order-42" })
        const renderMessage = yield* render.send({ html: xss })
        yield* waitForCount(page, "billing", "dead", 2)
        yield* use(() => page.locator("#queues tr[data-queue=\"billing\"]").click())
        const chargeRow = page.locator(`#dead tr[data-id="${chargeMessage.id}"]`)
        const renderRow = page.locator(`#dead tr[data-id="${renderMessage.id}"]`)
        yield* use(() => chargeRow.waitFor({ timeout: 30_000 }))
        yield* use(() => renderRow.waitFor({ timeout: 30_000 }))
        assert.include(yield* use(() => chargeRow.locator("td.error").textContent()), "card declined for order-42")

        // The script in the payload and in the error shows as text, and never runs
        assert.include(
          yield* use(() => renderRow.locator("td.error").textContent()),
          "<script>window.__xss = 1</script>"
        )
        yield* use(() => renderRow.locator("button.view").click())
        yield* use(() => page.locator("#detail").waitFor({ state: "visible", timeout: 30_000 }))
        const detail = yield* use(() => page.locator("#detail-body").textContent())
        assert.include(detail, JSON.stringify(xss).slice(1, -1))
        assert.include(detail, "render_comment")
        // Its attempt history: the two retried failures, then the one that dead-lettered it, as text
        const cells = yield* use(() => page.locator("#detail-history tbody tr td").allTextContents())
        const history = Array.from({ length: cells.length / 4 }, (_, row) => cells.slice(4 * row, 4 * row + 4))
        assert.deepStrictEqual(
          history.map(([attempt, , tag, message]) => [attempt, tag, message]),
          [1, 2, 3].map((n) => [String(n), "Boom", `cannot render ${xss} (run ${n})`])
        )
        for (const [, time] of history) assert.match(time!, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z$/)
        assert.isTrue(yield* use(() => page.locator("#detail-history-empty").isHidden()))
        const injected = yield* use(() =>
          page.evaluate(() => ({
            xss: window.__xss,
            scripts: document.querySelectorAll("script").length,
            images: document.querySelectorAll("img").length
          }))
        )
        assert.deepStrictEqual(injected, { xss: undefined, scripts: 1, images: 0 })

        // Workers, throughput and schedules come from the worker's heartbeats
        yield* use(() => page.locator("#workers tr[data-worker] >> text=test-host").waitFor({ timeout: 30_000 }))
        yield* use(() => page.locator("#actors tr[data-actor=\"greet\"]").waitFor({ timeout: 30_000 }))
        yield* use(() => page.locator("#schedules tr[data-schedule=\"nightly_report\"]").waitFor({ timeout: 30_000 }))
        yield* use(() => page.locator("#chart-rate svg path").first().waitFor({ timeout: 30_000 }))
        mkdirSync(screenshots, { recursive: true })
        yield* use(() => page.screenshot({ path: join(screenshots, "dashboard.png"), fullPage: true }))

        // When the card is fixed and the dead letter is requeued with a click, it runs again and succeeds
        cardDeclined = false
        yield* use(() => chargeRow.locator("button.requeue").click())
        assert.strictEqual(yield* Deferred.await(charged), "order-42")
        assert.strictEqual(chargeRuns, 2)
        yield* use(() => chargeRow.waitFor({ state: "detached", timeout: 30_000 }))
        yield* waitForCount(page, "billing", "dead", 1)
        const status = yield* use(() => page.locator("#status").textContent())
        assert.include(status, "Requeued 1 dead letter(s) of billing")
        const left = yield* Broker.Broker.use((b) => b.deadLetters("billing"))
        assert.deepStrictEqual(left.map((letter) => letter.id), [renderMessage.id])
        yield* use(() => page.screenshot({ path: join(screenshots, "dashboard-after-requeue.png"), fullPage: true }))

        // A dead letter found by its id, then deleted as a selection (the page asks to confirm)
        assert.isFalse(yield* use(() => page.locator("#detail").isVisible())) // an action closes it
        yield* use(() => page.locator("#find-id").fill(renderMessage.id))
        yield* use(() => page.locator("#find button").click())
        yield* use(() => page.locator("#detail").waitFor({ state: "visible", timeout: 30_000 }))
        assert.strictEqual(yield* use(() => page.locator("#detail-id").textContent()), renderMessage.id)
        page.on("dialog", (dialog) => void dialog.accept())
        yield* use(() => renderRow.locator("input[type=checkbox]").check())
        yield* use(() => page.locator("#delete-selected").click())
        yield* use(() => renderRow.waitFor({ state: "detached", timeout: 30_000 }))
        yield* waitForCount(page, "billing", "dead", 0)
        assert.deepStrictEqual(yield* Broker.Broker.use((b) => b.deadLetters("billing")), [])
        assert.deepStrictEqual(problems, [])
        yield* Broker.Broker.use((b) => Effect.all([b.flush("greetings"), b.flush("billing")]))
      }).pipe(Effect.scoped, Effect.provide(redisBroker())),
    { timeout: 180_000 }
  )
})
