import type { EmailMessage } from './outbox.js';

type Content = Omit<EmailMessage, 'recipient' | 'kind'>;

/** 1800 → "30 minutes", 172800 → "48 hours", 90 → "90 seconds". */
export function describeDuration(seconds: number): string {
  const units: Array<[number, string]> = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  // Hours read better than days up to two days ("48 hours").
  for (const [size, name] of units) {
    if (seconds % size === 0 && (name !== 'day' || seconds > 172800)) {
      const count = seconds / size;
      return `${count} ${name}${count === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function html(paragraphs: string[], link: string, action: string): string {
  const text = paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`);
  const button = `<p><a href="${escapeHtml(link)}">${escapeHtml(action)}</a></p>`;
  return `<!doctype html><html><body>${text[0] ?? ''}${button}${text.slice(1).join('')}</body></html>`;
}

export function passwordResetEmail(link: string, ttlSeconds: number): Content {
  const validity = `The link works once, for ${describeDuration(ttlSeconds)}.`;
  const ignore =
    'If you did not ask for it, ignore this email: your password stays as it is, and nobody can change it without this link.';
  return {
    subject: 'Reset your password',
    textBody: [
      'Someone (we hope you) asked to reset the password of your account. Open this link to choose a new one:',
      '',
      link,
      '',
      validity,
      'Once it is changed, every device signed in to your account is signed out.',
      '',
      ignore,
      '',
    ].join('\n'),
    htmlBody: html(
      [
        'Someone (we hope you) asked to reset the password of your account. Open this link to choose a new one:',
        `${validity} Once it is changed, every device signed in to your account is signed out.`,
        ignore,
      ],
      link,
      'Choose a new password',
    ),
  };
}

export function verificationEmail(link: string, ttlSeconds: number): Content {
  const validity = `The link works once, for ${describeDuration(ttlSeconds)}.`;
  const ignore = 'If you did not sign up or change your address, ignore this email.';
  return {
    subject: 'Confirm your email address',
    textBody: [
      'Open this link to confirm that this address is yours:',
      '',
      link,
      '',
      validity,
      '',
      ignore,
      '',
    ].join('\n'),
    htmlBody: html(
      ['Open this link to confirm that this address is yours:', validity, ignore],
      link,
      'Confirm my address',
    ),
  };
}

/** To the admins: an endpoint kept failing and deliveries to it stopped. */
export function webhookDisabledEmail(url: string, webhookId: string, manageUrl: string): Content {
  const paragraphs = [
    `Deliveries to the webhook endpoint ${url} (id ${webhookId}) kept failing, so it has been disabled: no more events are sent to it.`,
    'Once the receiver answers again, enable the endpoint (updateWebhook with "enabled": true); the deliveries it missed can be sent again with redeliverWebhookDelivery.',
  ];
  return {
    subject: 'A webhook endpoint has been disabled',
    textBody: `${paragraphs.join('\n\n')}\n\n${manageUrl}\n`,
    htmlBody: html(paragraphs, manageUrl, 'The API documentation'),
  };
}
