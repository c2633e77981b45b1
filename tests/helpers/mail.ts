import type { AddressObject } from 'mailparser';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { sql } from 'drizzle-orm';
import type { TestApp } from './app.js';

export interface ReceivedMail {
  /** The envelope's recipients (RCPT TO). */
  recipients: string[];
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface SmtpSink {
  /** smtp://127.0.0.1:<port>, with the credentials when the sink requires them. */
  url: string;
  received: ReceivedMail[];
  /** While set, every recipient is refused with this temporary failure (451). */
  refuse: boolean;
  /** Resolves once `count` emails have arrived in all. */
  waitFor(count: number): Promise<void>;
  close(): Promise<void>;
}

function addressText(value: AddressObject | AddressObject[] | undefined): string {
  if (!value) return '';
  return (Array.isArray(value) ? value : [value]).map((a) => a.text).join(', ');
}

/**
 * A real SMTP server in the test process (smtp-server), which parses what it receives
 * (mailparser): what a mail server would get from the app, over the wire.
 */
export async function startSmtpSink(
  options: { auth?: { user: string; pass: string }; delayMs?: number } = {},
): Promise<SmtpSink> {
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const sink: SmtpSink = {
    url: '',
    received: [],
    refuse: false,
    waitFor: (count) =>
      new Promise((resolve) => {
        if (sink.received.length >= count) resolve();
        else waiters.push({ count, resolve });
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = new SMTPServer({
    // Plain text on the loopback: no certificate to make.
    disabledCommands: ['STARTTLS'],
    authOptional: !options.auth,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      const expected = options.auth;
      if (expected && auth.username === expected.user && auth.password === expected.pass) {
        callback(null, { user: auth.username });
      } else {
        callback(new Error('Invalid username or password'));
      }
    },
    onRcptTo(_address, _session, callback) {
      if (sink.refuse) {
        callback(Object.assign(new Error('Mailbox busy, try again later'), { responseCode: 451 }));
      } else {
        callback();
      }
    },
    onData(stream, session, callback) {
      simpleParser(stream)
        .then(async (mail) => {
          if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
          sink.received.push({
            recipients: session.envelope.rcptTo.map((r) => r.address),
            from: addressText(mail.from),
            to: addressText(mail.to),
            subject: mail.subject ?? '',
            text: mail.text ?? '',
            html: typeof mail.html === 'string' ? mail.html : '',
          });
          for (const waiter of waiters.filter((w) => sink.received.length >= w.count)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve();
          }
          callback();
        })
        .catch((error: Error) => callback(error));
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const credentials = options.auth
    ? `${encodeURIComponent(options.auth.user)}:${encodeURIComponent(options.auth.pass)}@`
    : '';
  sink.url = `smtp://${credentials}127.0.0.1:${port}`;
  return sink;
}

export interface OutboxRow {
  id: number;
  recipient: string;
  subject: string;
  text_body: string;
  html_body: string | null;
  kind: string;
  attempts: number;
  sent_at: Date | null;
  last_error: string | null;
  /** When its link stops working; null: it has none. */
  expires_at: Date | string | null;
  /** When delivery was given up on. */
  dead_at: Date | string | null;
  /** next_attempt_at - now(), in seconds. */
  due_in: number;
}

/** The outbox rows for this recipient (any letter case), oldest first. */
export async function outboxFor(t: TestApp, recipient: string): Promise<OutboxRow[]> {
  const rows = await t.db.sql(sql`
    select id::int as id, recipient, subject, text_body, html_body, kind, attempts, sent_at,
           last_error, expires_at, dead_at,
           extract(epoch from next_attempt_at - now())::float8 as due_in
    from email_outbox where lower(recipient) = lower(${recipient}) order by id`);
  return rows as unknown as OutboxRow[];
}

/** The token of the link to `page` in an email's text. */
export function tokenIn(text: string, page: 'reset-password' | 'verify-email'): string {
  const match = new RegExp(`/${page}\\?token=([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])`).exec(text);
  if (!match?.[1]) throw new Error(`no ${page} link in:\n${text}`);
  return match[1];
}

/** The token of the latest email of this kind to this address. */
export async function latestToken(
  t: TestApp,
  recipient: string,
  kind: 'password_reset' | 'email_verification',
): Promise<string> {
  const rows = (await outboxFor(t, recipient)).filter((row) => row.kind === kind);
  const last = rows.at(-1);
  if (!last) throw new Error(`no ${kind} email to ${recipient}`);
  return tokenIn(last.text_body, kind === 'password_reset' ? 'reset-password' : 'verify-email');
}

/**
 * Makes the tokens sent to this address, and the throttle's record of the last email,
 * look older, as if `seconds` had passed.
 */
export async function ageTokens(t: TestApp, address: string, seconds: number): Promise<void> {
  await t.db.sql(sql`
    update email_tokens set created_at = created_at - make_interval(secs => ${seconds})
    where lower(email) = lower(${address})`);
  await t.db.sql(sql`
    update email_throttle set last_sent_at = last_sent_at - make_interval(secs => ${seconds})
    where email_key = lower(${address})`);
}
