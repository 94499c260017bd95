import { BrokerConformance } from "@errand/core/testing"
import { MemoryBroker } from "../src/index.ts"
BrokerConformance.suite("mut", MemoryBroker.layer)
