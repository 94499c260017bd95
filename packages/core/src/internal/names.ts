/** @internal */
import { Effect } from "effect"
import { InvalidName } from "../ErrandError.ts"

const NAME = /^[a-zA-Z_][a-zA-Z0-9._-]*$/

/** @internal */
export const isValidName = (name: string): boolean => NAME.test(name)

/** @internal */
export const validateName = (kind: "actor" | "queue", name: string): Effect.Effect<string, InvalidName> =>
  isValidName(name) ? Effect.succeed(name) : Effect.fail(new InvalidName({ kind, name }))
