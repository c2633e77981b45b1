import { defineArea, durationPattern, milliseconds, parseDuration } from './area.js';

export interface EmailSettings {
  /** Emails (password resets, address verification) and their delivery. */
  readonly email: {
    /** Unset: emails are written to the log instead of being sent. */
    readonly smtpUrl: string | undefined;
    readonly from: string;
    /** The base of every link in an email; never taken from a request's Host. */
    readonly publicUrl: string;
    /**
     * Whether the log, standing in for SMTP, shows the emails' links (credentials): by
     * default only with the embedded database outside production (EMAIL_LOG_LINKS).
     */
    readonly logLinks: boolean;
    readonly passwordResetTtlSeconds: number;
    readonly verificationTtlSeconds: number;
    /**
     * How often the scheduled `email-delivery` job looks for due emails; 0: no schedule and
     * no run asked for after a commit, only `deliverDue` (tests).
     */
    readonly pollIntervalMs: number;
    /** Failed attempts after which an email is given up on (dead). */
    readonly maxAttempts: number;
  };
}

export const emailArea = defineArea({
  title: 'Email',
  properties: {
    SMTP_URL: {
      type: 'string',
      pattern: '^smtps?://',
      description:
        'where emails go: `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://…:465`; unset: each email is written to the log at info level, its links only as `EMAIL_LOG_LINKS` says',
    },
    EMAIL_FROM: {
      type: 'string',
      minLength: 3,
      default: 'Contract-first API <no-reply@localhost>',
      description: 'the sender of every email',
    },
    PUBLIC_URL: {
      type: 'string',
      pattern: '^https?://[^/?#]+(/[^?#]*)?$',
      'x-default': '`http://localhost:<PORT>`',
      description:
        'the base of the links in emails (**required in production**): `/reset-password?token=…` and `/verify-email?token=…`, pages of the client application; never taken from `Host` or `X-Forwarded-*`',
    },
    PASSWORD_RESET_TTL: {
      type: 'string',
      pattern: durationPattern,
      default: '30m',
      description: 'how long a password-reset link works',
    },
    EMAIL_VERIFICATION_TTL: {
      type: 'string',
      pattern: durationPattern,
      default: '48h',
      description: 'how long a verification link works',
    },
    EMAIL_POLL_INTERVAL: {
      type: 'string',
      pattern: '^(0|[1-9][0-9]*[smhd]?)$',
      default: '2s',
      description:
        'how often the `email-delivery` job looks for due emails (a job scheduler: one run per interval across all instances, on a worker); a request that queues an email also queues a run at once; `0`: neither (tests)',
    },
    EMAIL_LOG_LINKS: {
      type: 'boolean',
      'x-default': 'on only with the embedded database outside production',
      description:
        "without `SMTP_URL`, write the emails' links to the log (`true`/`false`). Whoever reads a log with them can reset those passwords",
    },
    EMAIL_MAX_ATTEMPTS: {
      type: 'integer',
      minimum: 1,
      maximum: 100,
      default: 12,
      description:
        'failed attempts after which an email is given up on (dead, its body emptied, counted in `email_outbox_dead_total`); with the back-off, 12 is about five hours',
    },
  },
  settings: (values, context, report): EmailSettings => {
    const { production, embedded } = context;
    if (production && values.PUBLIC_URL === undefined && context.purpose === 'server') {
      report.problem(
        ['PUBLIC_URL'],
        'PUBLIC_URL is required when NODE_ENV=production (the base of the links in emails, such as https://app.example.com); without it they would point at localhost.',
      );
    }
    const logLinks = values.EMAIL_LOG_LINKS ?? (embedded && !production);
    if (values.SMTP_URL === undefined && logLinks && (production || !embedded)) {
      report.warning(
        'EMAIL_LOG_LINKS is on: the links of emails (password resets, verifications) are written to the log, where anyone who reads it can use them.',
      );
    }
    return {
      email: Object.freeze({
        smtpUrl: values.SMTP_URL,
        from: values.EMAIL_FROM,
        // Without a trailing slash, so that `${publicUrl}/reset-password` has one.
        publicUrl: (values.PUBLIC_URL ?? `http://localhost:${context.port}`).replace(/\/+$/, ''),
        logLinks,
        passwordResetTtlSeconds: parseDuration(values.PASSWORD_RESET_TTL),
        verificationTtlSeconds: parseDuration(values.EMAIL_VERIFICATION_TTL),
        pollIntervalMs:
          values.EMAIL_POLL_INTERVAL === '0' ? 0 : milliseconds(values.EMAIL_POLL_INTERVAL),
        maxAttempts: values.EMAIL_MAX_ATTEMPTS,
      }),
    };
  },
});
