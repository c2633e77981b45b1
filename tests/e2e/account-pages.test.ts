import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unique } from '../helpers/values.js';
import { kill, logIn, startedServer, type Server } from './processes.js';

/**
 * A developer's first run: the server in development, with no SMTP_URL, writes each
 * account email to its log with its links. The links open this server's own pages, which
 * do what the client application's pages would: in Chromium, a click verifies the address,
 * and a new password resets the old one.
 */

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = !existsSync(executablePath) && !process.env.CI;

const json = { 'content-type': 'application/json' };

describe.skipIf(skip)('the links of the development log', () => {
  let dataDir: string;
  let server: Server;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'api-links-'));
    // As a newcomer runs it: `npm start` in development, on the embedded database, with no
    // PUBLIC_URL and no SMTP_URL.
    server = await startedServer({
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      PUBLIC_URL: '',
      EMAIL_POLL_INTERVAL: '1s',
    });
    browser = await chromium.launch({
      executablePath,
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
    });
    page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await kill(server);
    await rm(dataDir, { recursive: true, force: true });
  });

  /** Signs a new user up, and answers their address. */
  async function signUp(prefix: string): Promise<string> {
    const name = unique(prefix);
    const email = `${name}@example.com`;
    const created = await fetch(`${server.base}/api/users`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email, username: name, password: 'pass phrase 1234' }),
    });
    expect(created.status).toBe(201);
    return email;
  }

  /** The link of the first logged email to `to` whose link has this path. */
  async function linkTo(to: string, path: string): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      // The development log is pretty-printed: the address, then the links on lines below.
      const output = server.output();
      const after = output.indexOf(`to: "${to}"`);
      const found =
        after >= 0
          ? [...output.slice(after).matchAll(/https?:\/\/[^"\s,\]]+/g)]
              .map((match) => match[0])
              .find((url) => new URL(url).pathname === path)
          : undefined;
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${path} link to ${to}:\n${server.output()}`);
      await sleep(50);
    }
  }

  /** The logged link, which leads to this server (PUBLIC_URL unset: localhost:PORT). */
  function onServer(link: string): string {
    const url = new URL(link);
    expect(url.port).toBe(new URL(server.base).port);
    return `${server.base}${url.pathname}${url.search}`;
  }

  it('verify the address with one click, and say so', async () => {
    const email = await signUp('v');
    const link = await linkTo(email, '/verify-email');

    await page.goto(onServer(link));
    await expect(page.locator('h1').innerText()).resolves.toBe('Verify your email address');
    // Opening the page verified nothing: mail scanners open links too.
    const before = await logIn(server.base, email, 'pass phrase 1234');
    const { accessToken } = (await before.json()) as { accessToken: string };
    const me = async () =>
      (await (
        await fetch(`${server.base}/api/auth/me`, {
          headers: { authorization: `Bearer ${accessToken}` },
        })
      ).json()) as { emailVerified: boolean };
    expect((await me()).emailVerified).toBe(false);

    await page.getByRole('button', { name: 'Verify' }).click();
    await page.locator('output', { hasText: 'Done (204).' }).waitFor();
    expect((await me()).emailVerified).toBe(true);
    await expect(page.locator('pre code').innerText()).resolves.toContain(
      `curl -X POST ${server.base}/api/auth/email/verify`,
    );
    expect(errors).toEqual([]);
  }, 60_000);

  it('set a new password with the reset link, and show why a used link fails', async () => {
    const email = await signUp('r');
    const forgot = await fetch(`${server.base}/api/auth/password/forgot`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email }),
    });
    expect(forgot.status).toBe(202);
    const link = onServer(await linkTo(email, '/reset-password'));

    await page.goto(link);
    await page.getByLabel('New password').fill('a brand new pass phrase');
    await page.getByRole('button', { name: 'Set the password' }).click();
    await page.locator('output', { hasText: 'Done (204).' }).waitFor();
    expect((await logIn(server.base, email, 'a brand new pass phrase')).status).toBe(200);
    expect((await logIn(server.base, email, 'pass phrase 1234')).status).toBe(401);

    expect(errors).toEqual([]);

    // The same link again: the API's own problem, in words (and the browser's note of a 400).
    await page.goto(link);
    await page.getByLabel('New password').fill('yet another pass phrase');
    await page.getByRole('button', { name: 'Set the password' }).click();
    await page.locator('output', { hasText: /^400 / }).waitFor();
    expect(errors.filter((error) => !/status of 400/.test(error))).toEqual([]);
  }, 60_000);
});
