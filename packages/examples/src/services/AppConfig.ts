/**
 * Settings of the app that mails and links need: the public URL of the web app and who gets alerts.
 */
import { Config, Context, Effect, Layer } from "effect"
import { url } from "../config.ts"

/** The app's settings. */
export class AppConfig extends Context.Service<AppConfig, {
  /** The web app's public URL, without a trailing slash (links in mails start with it). */
  readonly appUrl: string
  /** Who is alerted when a critical task fails. */
  readonly adminEmail: string
}>()("@errand/examples/AppConfig") {}

/** The defaults: `http://localhost:3000`, `admin@example.com`. */
export const defaults = { appUrl: "http://localhost:3000", adminEmail: "admin@example.com" } as const

/** Fixed settings. */
export const layer = (settings: AppConfig["Service"]): Layer.Layer<AppConfig> => Layer.succeed(AppConfig, settings)

/** From `APP_URL` and `ADMIN_EMAIL`, with the defaults. */
export const layerConfig: Layer.Layer<AppConfig, Config.ConfigError> = Layer.effect(
  AppConfig,
  Effect.gen(function*() {
    const appUrl = yield* url("APP_URL").pipe(Config.withDefault(defaults.appUrl))
    const adminEmail = yield* Config.String("ADMIN_EMAIL").pipe(Config.withDefault(defaults.adminEmail))
    return AppConfig.of({ appUrl: appUrl.replace(/\/+$/, ""), adminEmail })
  })
)
