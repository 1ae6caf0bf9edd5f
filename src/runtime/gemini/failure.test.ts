import { describe, expect, it } from 'vitest';

import {
  GEMINI_EXIT_CODES,
  classifyErrorText,
  classifyExitCode,
  classifyFailure,
  classifyHttpStatus,
} from './failure.js';

/** `result` error messages and exit codes recorded from Gemini CLI 0.61 against a fake API. */
const RECORDED = {
  401: {
    exit: 145,
    message:
      '[API Error: {"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}]',
  },
  429: {
    exit: 173,
    message:
      '[API Error: Resource has been exhausted (e.g. check quota).]\nPlease wait and try again later. To increase your limits, request a quota increase through AI Studio, or switch to another /auth method',
  },
  500: {
    exit: 244,
    message:
      '[API Error: {"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}]',
  },
};

describe('classifyExitCode', () => {
  it('maps the documented exit codes', () => {
    expect(classifyExitCode(41)).toMatchObject({ reason: 'auth', retryable: false });
    expect(classifyExitCode(42)).toMatchObject({
      reason: 'crashed',
      retryable: false,
      what: expect.stringContaining('input error'),
    });
    expect(classifyExitCode(44)).toMatchObject({
      reason: 'crashed',
      retryable: false,
      what: expect.stringContaining('sandbox'),
    });
    expect(classifyExitCode(52)).toMatchObject({
      reason: 'crashed',
      retryable: false,
      what: expect.stringContaining('config error'),
    });
    expect(classifyExitCode(53)).toMatchObject({
      reason: 'crashed',
      what: expect.stringContaining('turn limit exceeded'),
    });
    expect(classifyExitCode(54)).toMatchObject({ reason: 'crashed', what: expect.stringContaining('tool') });
    expect(classifyExitCode(55)).toMatchObject({ reason: 'crashed', retryable: false });
    expect(classifyExitCode(130)).toMatchObject({
      reason: 'crashed',
      what: expect.stringContaining('canceled'),
    });
    expect(classifyExitCode(1)).toMatchObject({ reason: 'crashed', retryable: true });
    expect(classifyExitCode(7)).toMatchObject({ reason: 'crashed', retryable: true });
    for (const info of Object.values(GEMINI_EXIT_CODES)) expect(info.hint).not.toBe('');
  });

  it('reads an HTTP status kept modulo 256', () => {
    expect(classifyExitCode(145)).toMatchObject({ reason: 'auth', retryable: false }); // 401
    expect(classifyExitCode(147)).toMatchObject({ reason: 'auth', retryable: false }); // 403
    expect(classifyExitCode(173)).toMatchObject({ reason: 'rate_limited' }); // 429
    expect(classifyExitCode(244)).toMatchObject({ reason: 'provider', retryable: true }); // 500
    expect(classifyExitCode(247)).toMatchObject({ reason: 'provider', retryable: true }); // 503
    expect(classifyExitCode(148)).toMatchObject({ reason: 'provider', retryable: false }); // 404
  });
});

describe('classifyErrorText and classifyHttpStatus', () => {
  it('reads Google API errors', () => {
    expect(classifyErrorText('API key not valid. Please pass a valid API key.')).toMatchObject({
      reason: 'auth',
    });
    expect(classifyErrorText('{"reason":"API_KEY_INVALID"}')).toMatchObject({ reason: 'auth' });
    expect(classifyErrorText('{"error":{"code":403,"status":"PERMISSION_DENIED"}}')).toMatchObject({
      reason: 'auth',
    });
    expect(classifyErrorText('{"error":{"code":429}}')).toMatchObject({ reason: 'rate_limited' });
    expect(classifyErrorText('{"error":{"code":503,"status":"UNAVAILABLE"}}')).toMatchObject({
      reason: 'provider',
    });
    expect(classifyErrorText('_ApiError: ...\n  status: 502\n}')).toMatchObject({ reason: 'provider' });
    expect(classifyErrorText('TypeError: fetch failed')).toMatchObject({ reason: 'provider' });
    expect(classifyErrorText('something unrelated')).toBeNull();
    expect(classifyHttpStatus(200)).toBeNull();
  });
});

describe('classifyFailure', () => {
  it('classifies recorded failures of the real CLI', () => {
    expect(classifyFailure(RECORDED[401].exit, RECORDED[401].message)).toMatchObject({
      reason: 'auth',
      retryable: false,
    });
    expect(classifyFailure(RECORDED[429].exit, RECORDED[429].message)).toMatchObject({
      reason: 'rate_limited',
    });
    expect(classifyFailure(RECORDED[500].exit, RECORDED[500].message)).toMatchObject({ reason: 'provider' });
  });

  it('lets a documented fatal exit code win over the words, and the words win over exit code 1', () => {
    expect(classifyFailure(42, 'quota exceeded')).toMatchObject({ reason: 'crashed', retryable: false });
    expect(classifyFailure(1, 'API key not valid')).toMatchObject({ reason: 'auth' });
    expect(classifyFailure(1, 'boom')).toMatchObject({ reason: 'crashed' });
    expect(classifyFailure(null, 'boom')).toMatchObject({ reason: 'crashed' });
    expect(classifyFailure(0, '[API Error: {"error":{"code":500}}]')).toMatchObject({ reason: 'provider' });
  });
});
