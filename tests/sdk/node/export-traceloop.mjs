// OpenLLMetry JS (@traceloop/instrumentation-openai) on the official `openai` client, exported by the
// OpenTelemetry JS OTLP/HTTP protobuf exporter, configured only through the two standard variables:
//   OTEL_EXPORTER_OTLP_ENDPOINT=<collector>/v1/otlp
//   OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20llmo_...
// OPENAI_BASE_URL points the client at a fake OpenAI server.
// Run by tests/sdk/test_otlp_clients.py; prints one JSON line describing what it did.
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OpenAIInstrumentation } from "@traceloop/instrumentation-openai";
import OpenAI from "openai";

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "node-traceloop-test" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(provider);

// ESM imports bypass require hooks: what @traceloop/node-server-sdk's `instrumentModules: { openAI }` does.
const instrumentation = new OpenAIInstrumentation();
instrumentation.setTracerProvider(provider);
instrumentation.manuallyInstrument(OpenAI);

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: "sk-test", maxRetries: 0 });
const tracer = trace.getTracer("llmobserve.tests.node-app");
const messages = [{ role: "user", content: "traceloop-js-secret-prompt" }];

const out = await tracer.startActiveSpan("invoke_agent billing-agent", {
  attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing-agent" },
}, async (agent) => {
  try {
    const created = await tracer.startActiveSpan("execute_tool lookup", {
      attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup" },
    }, async (tool) => {
      try {
        return await client.chat.completions.create({ model: "gpt-4o", messages });
      } finally {
        tool.end();
      }
    });
    const stream = await client.chat.completions.create({
      model: "gpt-4o", messages, stream: true, stream_options: { include_usage: true },
    });
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
    return { created: created.choices[0].message.content, streamed };
  } finally {
    agent.end();
  }
});

await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify(out));
