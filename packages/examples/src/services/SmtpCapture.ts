/**
 * A local SMTP server that keeps what it receives (the `smtp-server` package): `pnpm example` and the tests send
 * real mail over SMTP to it, then read the mails back (recipient, subject, body). It listens on a free port of
 * 127.0.0.1, accepts any sender and recipient, and never relays.
 */
import { Clock, Context, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { simpleParser } from "mailparser"
import { SMTPServer } from "smtp-server"
import { Mailer } from "./Mailer.ts"
import * as MailerModule from "./Mailer.ts"

/** A mail the capture received. */
export interface CapturedMail {
  readonly from: string
  /** The envelope's recipients. */
  readonly to: ReadonlyArray<string>
  readonly subject: string
  readonly text: string
}

/** No mail matching a test's expectation arrived in time. */
export class MailNotReceived extends Schema.TaggedError<MailNotReceived>()("MailNotReceived", {
  expected: Schema.String,
  timeoutMillis: Schema.Number,
  received: Schema.Array(Schema.String)
}) {}

/** The capture server could not start. */
export class CaptureFailed extends Schema.TaggedError<CaptureFailed>()("CaptureFailed", {
  reason: Schema.String
}) {}

/** The running capture server. */
export class SmtpCapture extends Context.Service<SmtpCapture, {
  /** `smtp://127.0.0.1:<port>`: where to send. */
  readonly url: string
  /** Every mail received so far, oldest first. */
  readonly received: Effect.Effect<ReadonlyArray<CapturedMail>>
  /**
   * The first mail (received before or after the call) that `matches`; waits for it up to `timeout` (real time,
   * default 30 seconds), else fails with `MailNotReceived` naming `expected`.
   */
  readonly awaitMail: (
    expected: string,
    matches: (mail: CapturedMail) => boolean,
    timeout?: Duration.Input
  ) => Effect.Effect<CapturedMail, MailNotReceived>
}>()("@errand/examples/SmtpCapture") {}

/** Starts a capture server; `onMail` runs for each mail received (e.g. to print it). */
export const make = (
  options?: { readonly onMail?: ((mail: CapturedMail) => Effect.Effect<void>) | undefined }
) =>
  Effect.gen(function*() {
    const mails: Array<CapturedMail> = []
    const listeners = new Set<(mail: CapturedMail) => void>()
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const receive = (mail: CapturedMail) => {
      mails.push(mail)
      for (const listener of [...listeners]) listener(mail)
      if (options?.onMail !== undefined) runFork(options.onMail(mail))
    }
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      onData(stream, session, callback) {
        const to = session.envelope.rcptTo.map((address) => address.address)
        const from = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address
        simpleParser(stream).then(
          (parsed) => {
            receive({ from, to, subject: parsed.subject ?? "", text: parsed.text ?? "" })
            callback()
          },
          (error: Error) => callback(error)
        )
      }
    })
    server.on("error", () => {}) // a client's broken connection is the client's problem
    const port = yield* Effect.acquireRelease(
      Effect.callback<number, CaptureFailed>((resume) => {
        server.listen(0, "127.0.0.1", () => {
          const address = server.server.address()
          resume(
            typeof address === "object" && address !== null
              ? Effect.succeed(address.port)
              : Effect.fail(new CaptureFailed({ reason: "no port" }))
          )
        })
      }),
      () => Effect.callback<void>((resume) => server.close(() => resume(Effect.void)))
    )
    const url = `smtp://127.0.0.1:${port}`
    return SmtpCapture.of({
      url,
      received: Effect.sync(() => [...mails]),
      awaitMail: (expected, matches, timeout = "30 seconds") =>
        Effect.callback<CapturedMail>((resume) => {
          const found = mails.find(matches)
          if (found !== undefined) return resume(Effect.succeed(found))
          const listener = (mail: CapturedMail) => {
            if (!matches(mail)) return
            listeners.delete(listener)
            resume(Effect.succeed(mail))
          }
          listeners.add(listener)
          return Effect.sync(() => listeners.delete(listener))
        }).pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () =>
              Effect.fail(
                new MailNotReceived({
                  expected,
                  timeoutMillis: Duration.toMillis(timeout),
                  received: mails.map((mail) => `${mail.to.join(", ")}: ${mail.subject}`)
                })
              )
          }),
          // real time: a test moving the TestClock must not time the wait out
          Effect.provideService(Clock.Clock, realClock)
        )
    })
  })

/** The wall clock, for waits on real I/O inside tests that run on the TestClock. */
const realClock: Clock.Clock = Clock.Clock.defaultValue()

/** The capture server as a Layer. */
export const layer = (
  options?: { readonly onMail?: ((mail: CapturedMail) => Effect.Effect<void>) | undefined }
): Layer.Layer<SmtpCapture, CaptureFailed> => Layer.effect(SmtpCapture, make(options))

/** A capture server and a `Mailer` that sends to it over SMTP (nodemailer), with the app's templates. */
export const layerWithMailer = (
  options?: { readonly onMail?: ((mail: CapturedMail) => Effect.Effect<void>) | undefined }
): Layer.Layer<SmtpCapture | Mailer, CaptureFailed | MailerModule.TemplateError> =>
  Layer.unwrap(Effect.map(SmtpCapture, (capture) => MailerModule.layerSmtp(Redacted.make(capture.url)))).pipe(
    Layer.provideMerge(layer(options))
  )
