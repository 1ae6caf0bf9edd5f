/**
 * The `llm` runtime: agents that are models called through the AI SDK (see `docs/runtimes/llm.md`),
 * and {@link runModel} for any part of smith that needs one model answer.
 */
export {
  LLM_DEFAULT_API_KEY_ENV,
  LLM_DEFAULT_BASE_URLS,
  LLM_MAX_RETRIES,
  LLM_PROVIDERS,
  LLM_TEXT_FLUSH_MS,
  LlmRuntime,
  ModelCallError,
  TextCoalescer,
  checkModelSpec,
  classifyModelError,
  promptOf,
  runModel,
  tokensOf,
} from './llm-runtime.js';
export type { LlmProvider, ModelAnswer, ModelSpec, RunModelOptions } from './llm-runtime.js';
