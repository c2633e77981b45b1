import { describe, expect, it } from 'vitest';
import { signUpAndLogin, useTestApp } from '../helpers/app.js';

const t = useTestApp();

describe('smoke', () => {
  it('signs up and logs in', async () => {
    const { auth } = await signUpAndLogin(t);
    const me = await t.inject({ method: 'GET', url: '/api/auth/me', headers: auth });
    expect(me.statusCode).toBe(200);
    const bad = await t.inject({ method: 'GET', url: '/nope' });
    expect(bad.statusCode).toBe(404);
    const long = await t.inject({ method: 'GET', url: `/api/users/${'a'.repeat(200)}` });
    expect(long.statusCode).toBe(414);
    console.log(long.body, bad.body);
  });
});
