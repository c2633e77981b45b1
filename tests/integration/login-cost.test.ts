import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { createPasswordHasher, type PasswordHasher } from '../../src/lib/passwords.js';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';
import { authServiceWith } from '../helpers/auth-service.js';
import { unique } from '../helpers/values.js';

/**
 * What a login costs, at production's bcrypt cost (12): the event loop keeps answering
 * while logins hash (bcrypt runs on worker threads), and a login tells nobody whether the
 * address has an account (an unknown one costs what a wrong password does).
 */

const COST = 12;
// One bcrypt thread: the event loop keeps a core of its own on a two-core machine.
const t = useTestApp({ BCRYPT_COST: String(COST), BCRYPT_THREADS: '1', EMAIL_POLL_INTERVAL: '0' });

function login(email: string, password: string) {
  return t.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } });
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

describe('logins at bcrypt cost 12', () => {
  it('leave the event loop free: several at once never delay it by much of one hash', async () => {
    const { user, password } = await signUpAndLogin(t);
    // What one compare takes here (a login's bcrypt, plus a few milliseconds of the rest):
    // the time a compare on the event loop would stall it for.
    const { ms: oneLogin, value: first } = await timed(() => login(user.email, password));
    expect(first.statusCode, first.body).toBe(200);

    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const answers = await Promise.all([
      login(user.email, password),
      login(user.email, password),
      login(user.email, 'a wrong password!'),
      login(`${unique('nobody')}@example.com`, password),
      login(user.email, password),
      login(user.email, 'another wrong one'),
    ]);
    delay.disable();

    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 200, 401, 401, 200, 401]);
    const worstMs = delay.max / 1e6;
    // bcryptjs' synchronous compare (or its async one, which yields only every 100 ms or so)
    // on the event loop would stall it for about one whole login. In the worker threads the
    // loop is late by a few milliseconds at most; half a login is a bound no busy machine
    // comes near, and one that a compare on the loop cannot stay under.
    expect(
      worstMs,
      `the event loop was up to ${worstMs.toFixed(0)} ms late; one login takes ${oneLogin.toFixed(0)} ms`,
    ).toBeLessThan(oneLogin / 2);
  }, 60_000);

  it('take as long for an unknown address as for a wrong password', async () => {
    const { user } = await signUpAndLogin(t);
    const unknown: number[] = [];
    const wrong: number[] = [];
    // Interleaved, so that a busy moment of the machine falls on both alike.
    for (let i = 0; i < 7; i += 1) {
      const a = await timed(() => login(`${unique('nobody')}@example.com`, 'a wrong password!'));
      const b = await timed(() => login(user.email, `a wrong password ${i}`));
      expect([a.value.statusCode, b.value.statusCode]).toEqual([401, 401]);
      unknown.push(a.ms);
      wrong.push(b.ms);
    }
    const ratio = median(unknown) / median(wrong);
    // Without the unknown address's compare the ratio would be under 0.1 at this cost.
    expect(
      ratio,
      `medians: unknown ${median(unknown)} ms, wrong ${median(wrong)} ms`,
    ).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  }, 60_000);

  it('do one bcrypt compare each, for an unknown address and for a wrong password alike', async () => {
    // The login service on the app's database, with a real hasher that counts its compares.
    const real = createPasswordHasher({ cost: 4, threads: 1 });
    let compares = 0;
    const passwords: PasswordHasher = {
      ...real,
      verify: async (password, hash) => {
        compares += 1;
        return real.verify(password, hash);
      },
      verifyNothing: async (password) => {
        compares += 1;
        return real.verifyNothing(password);
      },
    };
    const service = authServiceWith(t, passwords, { maxFailures: 10, windowSeconds: 900 });
    const client = { userAgent: 'login-cost test', ipAddress: '127.0.0.1' };
    try {
      const { user } = await signUpAndLogin(t);
      const unknown = await service.login(
        { email: `${unique('nobody')}@example.com`, password: 'a wrong password!' },
        client,
      );
      expect(unknown.ok || unknown.error.code).toBe('INVALID_CREDENTIALS');
      expect(compares, 'compares for an unknown address').toBe(1);
      const wrong = await service.login(
        { email: user.email, password: 'a wrong password!' },
        client,
      );
      expect(wrong.ok || wrong.error.code).toBe('INVALID_CREDENTIALS');
      expect(compares, 'compares for a wrong password').toBe(2);
    } finally {
      await real.close();
    }
  });
});
