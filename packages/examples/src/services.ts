/**
 * The app's services, assembled: what the handlers need, on the database, storage folder and mail server the
 * environment names. The worker (`worker.ts`), the demo (`demo.ts`) and the web side use these layers; tests build
 * the same ones on a private database and an SMTP capture.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import type { Config } from "effect"
import { Effect, Layer } from "effect"
import type { SqlClient } from "effect/sql"
import * as Database from "./db/Database.ts"
import * as AppConfig from "./services/AppConfig.ts"
import * as Auth from "./services/Auth.ts"
import * as Backups from "./services/Backups.ts"
import * as Mailer from "./services/Mailer.ts"
import * as Orders from "./services/Orders.ts"
import * as Payments from "./services/Payments.ts"
import * as SmtpCapture from "./services/SmtpCapture.ts"
import * as Storage from "./services/Storage.ts"
import * as Users from "./services/Users.ts"

/** The data services (users, sessions and codes, orders and stock, payments) on a SQL database. */
export const DataLive: Layer.Layer<
  Users.Users | Auth.Auth | Orders.Orders | Payments.Payments,
  never,
  SqlClient.SqlClient
> = Orders.layer.pipe(
  Layer.provideMerge(Payments.layerSandbox),
  Layer.merge(Layer.mergeAll(Users.layer, Auth.layer))
)

/**
 * The services the handlers need over a database and a storage folder: the data services, and backups (with Node's
 * child processes for `pg_dump`). The mailer and the app settings come from the caller.
 */
export const AppLive: Layer.Layer<
  Users.Users | Auth.Auth | Orders.Orders | Payments.Payments | Backups.Backups,
  never,
  Database.Database | SqlClient.SqlClient | Storage.Storage
> = Layer.mergeAll(DataLive, Backups.layer().pipe(Layer.provide(NodeServices.layer)))

/**
 * The mailer the environment names: SMTP at `SMTP_URL`, or, when it is unset, a local SMTP capture whose mails are
 * logged (so `pnpm worker` runs with no mail server).
 */
export const MailerFromEnv: Layer.Layer<
  Mailer.Mailer,
  Mailer.TemplateError | SmtpCapture.CaptureFailed | Config.ConfigError
> = Mailer.layerConfigOr(
  SmtpCapture.layerWithMailer({ onMail: (mail) => Effect.logInfo(`mail to ${mail.to.join(", ")}: ${mail.subject}`) })
)

/**
 * Everything, from the environment: `DATABASE_URL` (else the embedded database), `STORAGE_DIR`, `SMTP_URL` (else a
 * capture), `APP_URL`, `ADMIN_EMAIL`.
 */
export const layerFromEnv = Layer.mergeAll(
  AppLive.pipe(
    Layer.provideMerge(Layer.mergeAll(Database.layerConfig, Storage.layerConfig, AppConfig.layerConfig))
  ),
  MailerFromEnv
)
