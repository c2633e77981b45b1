import type { FastifyBaseLogger } from 'fastify';
import type { Transporter } from 'nodemailer';
import { withTimeout } from '../../lib/timeout.js';
import type { DueEmail } from './outbox.js';

/** Hands an email over to be delivered; throws when it could not. */
export interface EmailTransport {
  readonly name: 'log' | 'smtp';
  send(email: DueEmail): Promise<void>;
  close(): Promise<void>;
}

/** The links in a plain-text body. */
export function linksIn(text: string): string[] {
  return text.match(/https?:\/\/[^\s<>"]+/g) ?? [];
}

/**
 * Without SMTP_URL: each email is written to the log at info level, with its links when
 * `withLinks` (EMAIL_LOG_LINKS; by default only with the embedded database outside
 * production), so a developer can click them. Otherwise the links are left out: they are
 * as good as the passwords they reset, and logs travel further than mailboxes.
 */
export function createLogTransport(
  log: Pick<FastifyBaseLogger, 'info'>,
  options: { withLinks: boolean },
): EmailTransport {
  return {
    name: 'log',
    async send(email) {
      log.info(
        {
          emailId: email.id,
          kind: email.kind,
          to: email.recipient,
          subject: email.subject,
          links: options.withLinks
            ? linksIn(email.textBody)
            : '[not logged: EMAIL_LOG_LINKS is off]',
        },
        'email not sent (SMTP_URL is not set): written to the log instead',
      );
    },
    async close() {},
  };
}

// Bounds on one delivery, so that a silent or slow server cannot hold a run (and its
// claimed emails) for longer than their lease.
const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 20_000;
export const SEND_TIMEOUT_MS = 60_000;

/**
 * SMTP through nodemailer, from a URL (`smtp://user:pass@host:587`: STARTTLS when the
 * server offers it; `smtps://…:465`: TLS from the start). nodemailer is loaded with the
 * first email, so a server that sends none never loads it.
 */
export function createSmtpTransport(url: string, from: string): EmailTransport {
  let transporter: Promise<Transporter> | undefined;
  const open = () =>
    (transporter ??= import('nodemailer').then(({ default: nodemailer }) =>
      nodemailer.createTransport(
        {
          url,
          connectionTimeout: CONNECTION_TIMEOUT_MS,
          greetingTimeout: GREETING_TIMEOUT_MS,
          socketTimeout: SOCKET_TIMEOUT_MS,
        },
        { from },
      ),
    ));
  return {
    name: 'smtp',
    async send(email) {
      const mailer = await open();
      await withTimeout(
        mailer.sendMail({
          to: email.recipient,
          subject: email.subject,
          text: email.textBody,
          ...(email.htmlBody === null ? {} : { html: email.htmlBody }),
        }),
        SEND_TIMEOUT_MS,
        `no answer from the SMTP server in ${SEND_TIMEOUT_MS / 1000} s`,
      );
    },
    async close() {
      if (transporter) (await transporter).close();
    },
  };
}
