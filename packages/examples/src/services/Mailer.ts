/**
 * Email: mails rendered from the template files in `templates/` (one file per mail: a `Subject:` line, a blank
 * line, the body; `{{name}}` placeholders), sent over SMTP with nodemailer. Production reads `SMTP_URL`
 * (`smtp://user:pass@host:587`); `pnpm example` sends to a local capture server (`SmtpCapture.ts`).
 */
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import * as Fs from "node:fs/promises"
import nodemailer from "nodemailer"
import { optionalUrl } from "../config.ts"
import { MailerUnavailable } from "../domain.ts"

/** The mails the app sends: one template file each. */
export const templateNames = [
  "welcome",
  "password-reset",
  "order-confirmation",
  "export-ready",
  "daily-report",
  "alert"
] as const

/** The name of a mail template. */
export type TemplateName = typeof templateNames[number]

/** A template file is missing or malformed (found when the mailer starts, not when a mail is sent). */
export class TemplateError extends Schema.TaggedError<TemplateError>()("TemplateError", {
  template: Schema.String,
  reason: Schema.String
}) {}

/** A mail to send: a template, its recipient, and the values of its placeholders. */
export interface Mail {
  readonly to: string
  readonly template: TemplateName
  readonly context: { readonly [key: string]: string | number }
}

/** Sends mail. */
export class Mailer extends Context.Service<Mailer, {
  /** Renders and sends a mail; returns the SMTP message id. */
  readonly send: (mail: Mail) => Effect.Effect<string, MailerUnavailable>
}>()("@errand/examples/Mailer") {}

/** A parsed template. */
export interface Template {
  readonly subject: string
  readonly body: string
}

/** Where the template files are. */
export const templatesDir = new URL("../../templates/", import.meta.url)

/** Reads and checks every template. */
export const loadTemplates: Effect.Effect<ReadonlyMap<TemplateName, Template>, TemplateError> = Effect.gen(function*() {
  const templates = new Map<TemplateName, Template>()
  for (const name of templateNames) {
    const text = yield* Effect.tryPromise({
      try: () => Fs.readFile(new URL(`${name}.txt`, templatesDir), "utf8"),
      catch: (cause) => new TemplateError({ template: name, reason: String(cause) })
    })
    const match = /^Subject: (.+)\n\n([\s\S]+)$/.exec(text)
    if (match === null) {
      return yield* new TemplateError({
        template: name,
        reason: "expected a 'Subject: ...' line, a blank line, a body"
      })
    }
    templates.set(name, { subject: match[1]!, body: match[2]! })
  }
  return templates
})

/**
 * Fills a template's `{{name}}` placeholders. A placeholder without a value is a bug in the caller, so it is a
 * defect (the handler dies, and the message is retried, then dead-lettered, with the reason).
 */
export const render = (
  name: string,
  template: Template,
  context: Mail["context"]
): Effect.Effect<Template> =>
  Effect.suspend(() => {
    const missing = new Set<string>()
    const fill = (text: string) =>
      text.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, key: string) => {
        const value = context[key]
        if (value === undefined) missing.add(key)
        return String(value)
      })
    const rendered = { subject: fill(template.subject), body: fill(template.body) }
    return missing.size === 0
      ? Effect.succeed(rendered)
      : Effect.die(new TemplateError({ template: name, reason: `no value for ${[...missing].join(", ")}` }))
  })

/** The sender address of the app's mails. */
export const defaultFrom = "Errand Shop <shop@example.com>"

/** Sends over SMTP at `url` (nodemailer), from `from`. Templates are read when the layer is built. */
export const layerSmtp = (
  url: Redacted.Redacted<string>,
  options?: { readonly from?: string | undefined }
): Layer.Layer<Mailer, TemplateError> =>
  Layer.effect(
    Mailer,
    Effect.gen(function*() {
      const templates = yield* loadTemplates
      const transport = yield* Effect.acquireRelease(
        Effect.sync(() => nodemailer.createTransport(Redacted.value(url))),
        (transport) => Effect.sync(() => transport.close())
      )
      const from = options?.from ?? defaultFrom
      return Mailer.of({
        send: (mail) =>
          Effect.gen(function*() {
            const rendered = yield* render(mail.template, templates.get(mail.template)!, mail.context)
            const info = yield* Effect.tryPromise({
              try: () => transport.sendMail({ from, to: mail.to, subject: rendered.subject, text: rendered.body }),
              catch: (cause) =>
                new MailerUnavailable({ to: mail.to, reason: cause instanceof Error ? cause.message : String(cause) })
            })
            return String(info.messageId)
          }).pipe(Effect.withSpan("Mailer.send", { attributes: { template: mail.template } }))
      })
    })
  )

/**
 * SMTP at `SMTP_URL`, from `MAIL_FROM` (default `Errand Shop <shop@example.com>`); when `SMTP_URL` is unset or empty,
 * `fallback` (e.g. a local capture).
 */
export const layerConfigOr = <E>(
  fallback: Layer.Layer<Mailer, E>
): Layer.Layer<Mailer, E | TemplateError | Config.ConfigError> =>
  Layer.unwrap(
    Effect.gen(function*(): Effect.fn.Return<Layer.Layer<Mailer, E | TemplateError>, Config.ConfigError> {
      const url = yield* optionalUrl(Config.Redacted("SMTP_URL"))
      if (Option.isNone(url)) return fallback
      const from = yield* Config.String("MAIL_FROM").pipe(Config.withDefault(defaultFrom))
      return layerSmtp(url.value, { from })
    })
  )
