import { sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import type { EmailMessage } from './outbox.js';

/**
 * Queues one plain notice (no link that is a credential, so no expiry) to each address,
 * for the `email-delivery` job to send. Says how many it queued.
 */
export async function queueNotice(
  db: Db,
  recipients: readonly string[],
  message: Omit<EmailMessage, 'recipient'>,
): Promise<number> {
  if (recipients.length === 0) return 0;
  const result: unknown = await db.execute(sql`
    insert into email_outbox (recipient, subject, text_body, html_body, kind)
    select recipient, ${message.subject}, ${message.textBody}, ${message.htmlBody}, ${message.kind}
    from unnest(array[${sql.join(
      recipients.map((recipient) => sql`${recipient}`),
      sql`, `,
    )}]::text[]) as recipient
    returning id`);
  return (result as { rows: unknown[] }).rows.length;
}
