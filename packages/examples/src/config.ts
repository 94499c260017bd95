/**
 * The environment variables that name a service (`DATABASE_URL`, `REDIS_URL`, `SMTP_URL`): unset and empty mean the
 * same (`X=` in a `.env` or compose file turns a service off), and the value may hold a password, so it stays redacted.
 */
import { Config, Option, Redacted, Schema } from "effect"

/**
 * The URL `config` reads (`Config.Redacted("DATABASE_URL")`: the variable is named where it is read, as the deploy test
 * checks), or `None` when it is unset or empty.
 */
export const optionalUrl = (
  config: Config.Config<Redacted.Redacted<string>>
): Config.Config<Option.Option<Redacted.Redacted<string>>> =>
  Config.option(config).pipe(Config.map(Option.filter((url) => Redacted.value(url) !== "")))

/** A string that parses as an absolute URL. */
const UrlString = Schema.String.check(
  Schema.makeFilter((url: string) => URL.canParse(url) || "an absolute URL, like https://example.com")
)

/**
 * The URL in variable `name`, as written, checked at start-up: a malformed one is a `ConfigError` then, not a broken
 * link in every mail (or a failed write for each export) later.
 */
export const url = (name: string): Config.Config<string> => Config.schema(UrlString, name)
