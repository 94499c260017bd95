/**
 * The environment variables that name a service (`DATABASE_URL`, `REDIS_URL`, `SMTP_URL`): unset and empty mean the
 * same (`X=` in a `.env` or compose file turns a service off), and the value may hold a password, so it stays redacted.
 */
import { Config, Option, Redacted } from "effect"

/** The URL in variable `name`, or `None` when it is unset or empty. */
export const optionalUrl = (name: string): Config.Config<Option.Option<Redacted.Redacted<string>>> =>
  Config.option(Config.Redacted(name)).pipe(Config.map(Option.filter((url) => Redacted.value(url) !== "")))
