#!/usr/bin/env node
/**
 * The `errand` command's entry point.
 *
 * @internal
 */
import { main } from "./Cli.ts"

main()
