import { BrokerConformance, ResultsConformance } from "@errand/core/testing"
import { brokerLayer } from "./utils/testing.ts"

BrokerConformance.suite("redis", brokerLayer())
ResultsConformance.suite("redis", brokerLayer())
