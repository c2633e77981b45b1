import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { TEST_JWT_SECRET, type TestApp } from '../helpers/app.js';
import { logCapture } from '../helpers/logs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { outboxFor, startSmtpSink, tokenIn, type SmtpSink } from '../helpers/mail.js';
import { freePort, unique } from '../helpers/values.js';

/**
 * The email delivery against a real SMTP server in this process: what arrives, what a
 * failing server leaves in the outbox, and several instances sharing one outbox. Runs are
 * made here with `deliverDue` (EMAIL_POLL_INTERVAL=0: no job is asked for), except where
 * an app runs the jobs itself (JOBS_IN_PROCESS); email-jobs.test.ts has the jobs' side.
 */

const PUBLIC_URL = 'https://app.example.test';
const FROM = 'Example <no-reply@example.test>';

type LogLine = Record<string, unknown> & { level: number; msg: string };

let db: TestDatabase;
const apps: FastifyInstance[] = [];
const sinks: SmtpSink[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await Promise.all(sinks.map((sink) => sink.close()));
  await db?.drop();
});

/** An app on this file's database; its log lines, when asked for, go to `lines`. */
async function startApp(
  env: Record<string, string>,
  lines?: LogLine[],
): Promise<FastifyInstance & { t: TestApp }> {
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: lines ? 'info' : 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    RATE_LIMIT_AUTH_MAX: '100000',
    PUBLIC_URL,
    EMAIL_FROM: FROM,
    EMAIL_POLL_INTERVAL: '0',
    DATABASE_URL: db.url,
    ...env,
  });
  const app = await buildApp(config, {
    ...(lines ? { logger: { level: 'info', stream: logCapture(lines).stream } } : {}),
  });
  await app.ready();
  apps.push(app);
  const t = { app, db, inject: app.inject.bind(app) } as TestApp;
  return Object.assign(app, { t });
}

async function sink(options: Parameters<typeof startSmtpSink>[0] = {}): Promise<SmtpSink> {
  const started = await startSmtpSink(options);
  sinks.push(started);
  return started;
}

async function signUp(app: FastifyInstance): Promise<string> {
  const name = unique('mail');
  const email = `${name}@example.com`;
  const response = await app.inject({
    method: 'POST',
    url: '/api/users',
    payload: { email, username: name, password: 'correct horse battery staple' },
  });
  expect(response.statusCode, response.body).toBe(201);
  return email;
}

/** Queues `count` emails directly, as the services would. */
async function queue(count: number, prefix = unique('bulk')): Promise<string[]> {
  const recipients = Array.from({ length: count }, (_, i) => `${prefix}-${i}@example.com`);
  for (const recipient of recipients) {
    await db.sql(sql`
      insert into email_outbox (recipient, subject, text_body, kind)
      values (${recipient}, 'Hello', ${`Hello ${recipient}`}, 'test')`);
  }
  return recipients;
}

async function makeDue(recipient: string): Promise<void> {
  await db.sql(sql`
    update email_outbox set next_attempt_at = now() where recipient = ${recipient}`);
}

const rowsFor = (app: { t: TestApp }, recipient: string) => outboxFor(app.t, recipient);

describe('through SMTP', () => {
  let smtp: SmtpSink;
  let app: Awaited<ReturnType<typeof startApp>>;

  beforeAll(async () => {
    smtp = await sink({ auth: { user: 'mailer', pass: 's3cret:/@' } });
    app = await startApp({ SMTP_URL: smtp.url });
  });
  afterEach(() => {
    smtp.refuse = false;
  });

  it('delivers the verification email of a sign-up, with its link, and marks it sent', async () => {
    const email = await signUp(app);
    const token = tokenIn((await rowsFor(app, email))[0]!.text_body, 'verify-email');
    const report = await app.emailDelivery.deliverDue();
    expect(report.sent).toBeGreaterThanOrEqual(1);
    expect(report.failed).toBe(0);

    const received = smtp.received.filter((mail) => mail.recipients.includes(email));
    expect(received).toHaveLength(1);
    const [mail] = received;
    expect(mail).toMatchObject({
      to: email,
      from: '"Example" <no-reply@example.test>',
      subject: 'Confirm your email address',
    });
    const [row] = await rowsFor(app, email);
    const link = `${PUBLIC_URL}/verify-email?token=${token}`;
    expect(mail!.text).toContain(link);
    expect(mail!.text.match(/https?:\/\/\S+/g)).toEqual([link]);
    expect(mail!.html).toContain(`href="${link}"`);
    // Once sent, the body (and the link, a credential) is gone from the outbox.
    expect(row).toMatchObject({
      attempts: 0,
      last_error: null,
      sent_at: expect.anything(),
      text_body: '',
      html_body: null,
    });

    // Sent means sent: another run sends it no more.
    await app.emailDelivery.deliverDue();
    expect(smtp.received.filter((m) => m.recipients.includes(email))).toHaveLength(1);
  });

  it('keeps an email the server refuses, retries it later with a growing back-off, then delivers it', async () => {
    smtp.refuse = true;
    const email = await signUp(app);
    const first = await app.emailDelivery.deliverDue();
    expect(first.failed).toBeGreaterThanOrEqual(1);
    let [row] = await rowsFor(app, email);
    expect(row).toMatchObject({ attempts: 1, sent_at: null });
    expect(row!.last_error).toMatch(/451/);
    expect(row!.due_in).toBeGreaterThan(25);
    expect(row!.due_in).toBeLessThanOrEqual(30);

    // Not due yet: a run leaves it alone.
    await app.emailDelivery.deliverDue();
    [row] = await rowsFor(app, email);
    expect(row!.attempts).toBe(1);

    await makeDue(email);
    await app.emailDelivery.deliverDue();
    [row] = await rowsFor(app, email);
    expect(row).toMatchObject({ attempts: 2, sent_at: null });
    expect(row!.due_in).toBeGreaterThan(55);
    expect(row!.due_in).toBeLessThanOrEqual(60);

    smtp.refuse = false;
    await makeDue(email);
    await app.emailDelivery.deliverDue();
    [row] = await rowsFor(app, email);
    expect(row).toMatchObject({ attempts: 2, sent_at: expect.anything() });
    expect(smtp.received.filter((m) => m.recipients.includes(email))).toHaveLength(1);
  });

  it('backs off one hour at most', async () => {
    smtp.refuse = true;
    const [recipient] = await queue(1);
    // 30 s · 2¹⁰ would be eight and a half hours; still short of the 12 attempts allowed.
    await db.sql(sql`update email_outbox set attempts = 10 where recipient = ${recipient!}`);
    await app.emailDelivery.deliverDue();
    const [row] = await rowsFor(app, recipient!);
    expect(row).toMatchObject({ attempts: 11, sent_at: null, dead_at: null });
    expect(row!.due_in).toBeGreaterThan(3590);
    expect(row!.due_in).toBeLessThanOrEqual(3600);
  });
});

describe('an SMTP server that is not there', () => {
  it('leaves the email pending, with the error, until a later attempt', async () => {
    const app = await startApp({ SMTP_URL: `smtp://127.0.0.1:${await freePort()}` });
    const [recipient] = await queue(1);
    const report = await app.emailDelivery.deliverDue();
    expect(report.failed).toBeGreaterThanOrEqual(1);
    const [row] = await rowsFor(app, recipient!);
    expect(row).toMatchObject({ attempts: 1, sent_at: null });
    expect(row!.last_error).toMatch(/ECONNREFUSED/);
    expect(row!.due_in).toBeGreaterThan(25);

    // Another instance, whose SMTP server works, delivers it once it is due.
    const smtp = await sink();
    const healthy = await startApp({ SMTP_URL: smtp.url });
    await makeDue(recipient!);
    await healthy.emailDelivery.deliverDue();
    expect(smtp.received.filter((m) => m.recipients.includes(recipient!))).toHaveLength(1);
  });
});

describe('two instances on one outbox', () => {
  it('deliver every email exactly once, sharing the work', async () => {
    // A slow server keeps both runs busy at once.
    const smtp = await sink({ delayMs: 5 });
    const [a, b] = await Promise.all([
      startApp({ SMTP_URL: smtp.url }),
      startApp({ SMTP_URL: smtp.url }),
    ]);
    // What earlier tests left due is sent first, so that only this test's emails remain.
    await a.emailDelivery.deliverDue();
    const recipients = await queue(40);

    const [reportA, reportB] = await Promise.all([
      a.emailDelivery.deliverDue(),
      b.emailDelivery.deliverDue(),
    ]);
    expect(reportA.sent + reportB.sent).toBe(40);
    expect(reportA.sent).toBeGreaterThan(0);
    expect(reportB.sent).toBeGreaterThan(0);

    const delivered = smtp.received.flatMap((mail) => mail.recipients);
    expect([...delivered].sort()).toEqual([...recipients].sort());
    const pending = await db.sql(sql`
      select count(*)::int as n from email_outbox
      where recipient like ${`${recipients[0]!.split('-')[0]}-%`} and sent_at is null`);
    expect(pending[0]!.n).toBe(0);
  });
});

/** A sample of email_outbox_dead_total, read as a scraper would. */
async function deadCount(app: FastifyInstance, reason: 'attempts' | 'expired'): Promise<number> {
  const text = await app.metrics.scrape();
  const match = new RegExp(`^email_outbox_dead_total\\{reason="${reason}"\\} (\\S+)$`, 'm').exec(
    text,
  );
  if (!match) throw new Error(`no email_outbox_dead_total{reason="${reason}"} in:\n${text}`);
  return Number(match[1]);
}

/** Resolves once `check` holds, polling; fails after `timeoutMs` saying what it waited for. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('emails that cannot be sent', () => {
  const METRICS_TOKEN = 'email-delivery-metrics-token-'.padEnd(48, 'x');

  it('gives up on an email after EMAIL_MAX_ATTEMPTS failures: dead, emptied, counted, never tried again', async () => {
    const smtp = await sink();
    const app = await startApp({ SMTP_URL: smtp.url, EMAIL_MAX_ATTEMPTS: '3', METRICS_TOKEN });
    // What earlier tests left due goes first, so that only this test's email can fail.
    await app.emailDelivery.deliverDue();
    smtp.refuse = true;
    const email = await signUp(app);
    expect(await deadCount(app, 'attempts')).toBe(0);

    for (let attempt = 1; attempt <= 3; attempt += 1) {
      const report = await app.emailDelivery.deliverDue();
      expect(report).toEqual({ sent: 0, failed: 1, dead: attempt === 3 ? 1 : 0 });
      const [row] = await rowsFor(app, email);
      expect(row!.attempts).toBe(attempt);
      if (attempt < 3) {
        // Still pending, link and all, until its next attempt.
        expect(row).toMatchObject({ sent_at: null, dead_at: null });
        expect(row!.text_body).toContain('/verify-email?token=');
        await makeDue(email);
      }
    }
    const [dead] = await rowsFor(app, email);
    expect(dead).toMatchObject({
      attempts: 3,
      sent_at: null,
      dead_at: expect.anything(),
      text_body: '',
      html_body: null,
    });
    expect(dead!.last_error).toMatch(/451/);
    expect(await deadCount(app, 'attempts')).toBe(1);
    expect(await deadCount(app, 'expired')).toBe(0);

    // Dead is final: due or not, a working server gets nothing from it.
    smtp.refuse = false;
    await makeDue(email);
    expect(await app.emailDelivery.deliverDue()).toEqual({ sent: 0, failed: 0, dead: 0 });
    expect(smtp.received.filter((m) => m.recipients.includes(email))).toEqual([]);
    expect(await rowsFor(app, email)).toEqual([{ ...dead, due_in: expect.any(Number) }]);
  });

  it("keeps the token's expiry with the email, and a scheduled run empties it once the link expired unsent", async () => {
    const smtp = await sink();
    smtp.refuse = true;
    // The email-delivery job every second, run by the app's own worker, as in production.
    const app = await startApp({
      SMTP_URL: smtp.url,
      EMAIL_POLL_INTERVAL: '1s',
      JOBS_IN_PROCESS: 'true',
      METRICS_TOKEN,
    });
    const email = await signUp(app);
    // The sign-up's nudge tries it at once; the server refuses it; it waits 30 s.
    await until('a first failed attempt', async () => (await rowsFor(app, email))[0]!.attempts > 0);
    const [pending] = await rowsFor(app, email);
    const [token] = await db.sql(sql`
      select expires_at from email_tokens
      where lower(email) = lower(${email}) and purpose = 'email_verification'`);
    expect(pending!.expires_at).toEqual(token!.expires_at);
    expect(pending!.text_body).toContain('/verify-email?token=');

    // Its link expires (as 48 hours later) before the server takes it.
    await db.sql(sql`
      update email_tokens set expires_at = now() - interval '1 second'
      where lower(email) = lower(${email})`);
    await db.sql(sql`
      update email_outbox set expires_at = now() - interval '1 second'
      where lower(recipient) = lower(${email})`);
    await until('a run to give up on it', async () => (await deadCount(app, 'expired')) === 1);

    const [expired] = await rowsFor(app, email);
    expect(expired).toMatchObject({
      sent_at: null,
      dead_at: expect.anything(),
      text_body: '',
      html_body: null,
      last_error: 'its link expired before it could be sent',
    });
    // Not sent late, even once the server takes mail again.
    smtp.refuse = false;
    await makeDue(email);
    await app.emailDelivery.deliverDue();
    expect(smtp.received.filter((m) => m.recipients.includes(email))).toEqual([]);
    // Its jobs would otherwise go on taking the next tests' emails from the shared outbox
    // (seen: a later test's email sent by this app, so never logged by that test's own).
    apps.splice(apps.indexOf(app), 1);
    await app.close();
  });

  it('sends an email whose link is still good, and keeps no link once it is sent', async () => {
    const smtp = await sink();
    const app = await startApp({ SMTP_URL: smtp.url });
    const email = await signUp(app);
    await db.sql(sql`
      update email_outbox set expires_at = now() + interval '2 seconds'
      where lower(recipient) = lower(${email})`);
    await app.emailDelivery.deliverDue();
    expect(smtp.received.filter((m) => m.recipients.includes(email))).toHaveLength(1);
    expect((await rowsFor(app, email))[0]).toMatchObject({
      sent_at: expect.anything(),
      dead_at: null,
      text_body: '',
      html_body: null,
    });
  });
});

describe('a running app', () => {
  it('finishes the batch in hand before the app closes', async () => {
    const smtp = await sink({ delayMs: 20 });
    const app = await startApp({ SMTP_URL: smtp.url });
    await app.emailDelivery.deliverDue();
    const recipients = await queue(3);
    const run = app.emailDelivery.deliverDue();
    await app.close();
    expect((await run).sent).toBe(3);
    for (const recipient of recipients) {
      expect((await outboxFor({ db } as TestApp, recipient))[0]!.sent_at).not.toBeNull();
    }
  });
});

describe('without SMTP_URL', () => {
  it('writes each email to the log at info level, with its recipient, subject and link when EMAIL_LOG_LINKS=true', async () => {
    const lines: LogLine[] = [];
    const app = await startApp({ EMAIL_LOG_LINKS: 'true' }, lines);
    const email = await signUp(app);
    const token = tokenIn((await rowsFor(app, email))[0]!.text_body, 'verify-email');
    await app.emailDelivery.deliverDue();
    const [row] = await rowsFor(app, email);
    const logged = lines.filter((line) => line.to === email);
    expect(logged).toEqual([
      expect.objectContaining({
        level: 30,
        to: email,
        subject: 'Confirm your email address',
        links: [`${PUBLIC_URL}/verify-email?token=${token}`],
      }),
    ]);
    expect(row!.sent_at).not.toBeNull();
  });

  it('leaves the links out of the log with a DATABASE_URL unless EMAIL_LOG_LINKS says so, and says so at start', async () => {
    const lines: LogLine[] = [];
    // On PGlite this file's apps have no DATABASE_URL: there the setting says it instead.
    const app = await startApp(db.url ? {} : { EMAIL_LOG_LINKS: 'false' }, lines);
    const email = await signUp(app);
    const token = tokenIn((await rowsFor(app, email))[0]!.text_body, 'verify-email');
    await app.emailDelivery.deliverDue();
    expect(lines.filter((line) => line.to === email)).toEqual([
      expect.objectContaining({ level: 30, links: '[not logged: EMAIL_LOG_LINKS is off]' }),
    ]);
    expect(JSON.stringify(lines)).not.toContain(token);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: expect.stringMatching(/SMTP_URL is not set.*EMAIL_LOG_LINKS=true/),
      }),
    );
  });

  it('leaves the links out of the log in production', async () => {
    const lines: LogLine[] = [];
    const app = await startApp({ NODE_ENV: 'production' }, lines);
    const email = await signUp(app);
    const token = tokenIn((await rowsFor(app, email))[0]!.text_body, 'verify-email');
    await app.emailDelivery.deliverDue();
    expect(lines.filter((line) => line.to === email)).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toContain(token);
    expect(lines.some((line) => line.level === 40 && /SMTP_URL is not set/.test(line.msg))).toBe(
      true,
    );
  });
});

describe('a database that does not answer', () => {
  it('pauses delivery with one warning per outage, no error, and resumes', async () => {
    const lines: LogLine[] = [];
    // Links in the log: no warning at start about their absence.
    const app = await startApp({ EMAIL_LOG_LINKS: 'true' }, lines);
    await app.emailDelivery.deliverDue();
    const [recipient] = await queue(1);
    await db.sql(sql`alter table email_outbox rename to email_outbox_elsewhere`);
    try {
      for (let i = 0; i < 3; i += 1) {
        expect(await app.emailDelivery.deliverDue()).toEqual({ sent: 0, failed: 0, dead: 0 });
      }
    } finally {
      await db.sql(sql`alter table email_outbox_elsewhere rename to email_outbox`);
    }
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/email delivery paused/) }),
    ]);
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);

    expect((await app.emailDelivery.deliverDue()).sent).toBe(1);
    expect(lines.some((line) => /email delivery resumed/.test(line.msg))).toBe(true);
    expect((await rowsFor(app, recipient!))[0]!.sent_at).not.toBeNull();
  });

  it('never makes the app fail to start or close', async () => {
    const app = await buildApp(
      loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        JWT_SECRET: TEST_JWT_SECRET,
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
        DB_CONNECT_TIMEOUT_MS: '500',
        EMAIL_POLL_INTERVAL: '1s',
      }),
    );
    await app.ready();
    expect(await app.emailDelivery.deliverDue()).toEqual({ sent: 0, failed: 0, dead: 0 });
    await app.close();
  });
});
