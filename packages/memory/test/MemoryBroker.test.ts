import { BrokerConformance } from "@errand/core/testing"
import { MemoryBroker } from "@errand/memory"

BrokerConformance.suite("memory", MemoryBroker.layer)
