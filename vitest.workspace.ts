import type { TestProjectConfiguration } from "vitest/config"

/** One vitest project per package; `vitest.config.ts` imports this list (vitest 5 ignores this file on its own). */
const pkg = (name: string): TestProjectConfiguration => ({
  extends: true,
  test: { name, root: `./packages/${name}`, include: ["test/**/*.test.ts"] }
})

export const projects: Array<TestProjectConfiguration> = [
  pkg("core"),
  pkg("memory"),
  pkg("redis"),
  pkg("examples"),
  pkg("bench")
]
export default projects
