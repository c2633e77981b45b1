import { defineArea, type Report, type ValuesOf } from './area.js';

export interface AdminSettings {
  /**
   * The admin account made sure of at every start (created, or promoted if it exists);
   * null when ADMIN_EMAIL and ADMIN_PASSWORD are unset.
   */
  readonly admin: {
    readonly email: string;
    readonly password: string;
    /** Unset: made from the email address's local part. */
    readonly username: string | undefined;
  } | null;
}

// The same rules as the API's Email, Password and Username (openapi.yaml).
const properties = {
  ADMIN_EMAIL: {
    type: 'string',
    format: 'email',
    maxLength: 254,
    description:
      'the first admin, made sure of at every start (created, or an existing account promoted keeping its password if its address is verified: see [the first admin](authentication.md#roles-and-the-first-admin)); set together with `ADMIN_PASSWORD`, or neither',
  },
  ADMIN_PASSWORD: {
    type: 'string',
    minLength: 8,
    maxLength: 72,
    description:
      "the first admin's password, as at sign-up (8 to 72 characters, at most 72 bytes); set together with `ADMIN_EMAIL`, or neither",
  },
  ADMIN_USERNAME: {
    type: 'string',
    minLength: 3,
    maxLength: 50,
    pattern: '^[A-Za-z0-9_.-]+$',
    'x-default': 'from `ADMIN_EMAIL`',
    description:
      "the username an `ADMIN_EMAIL` account is created with; unset, the address's local part made valid and unique",
  },
} as const;

/** ADMIN_EMAIL and ADMIN_PASSWORD go together; the password is never part of a message. */
function adminAccount(values: ValuesOf<typeof properties>, report: Report): AdminSettings['admin'] {
  const { ADMIN_EMAIL: email, ADMIN_PASSWORD: password, ADMIN_USERNAME: username } = values;
  if (email === undefined && password === undefined) {
    if (username !== undefined) {
      report.problem(['ADMIN_USERNAME'], 'ADMIN_USERNAME needs ADMIN_EMAIL and ADMIN_PASSWORD.');
    }
    return null;
  }
  if (email === undefined || password === undefined) {
    report.problem(
      ['ADMIN_EMAIL', 'ADMIN_PASSWORD'],
      'ADMIN_EMAIL and ADMIN_PASSWORD must be set together (or neither).',
    );
    return null;
  }
  if (Buffer.byteLength(password, 'utf8') > 72) {
    report.problem(
      ['ADMIN_PASSWORD'],
      'ADMIN_PASSWORD must be at most 72 bytes in UTF-8 (the limit of bcrypt).',
    );
  }
  return Object.freeze({ email, password, username });
}

export const adminArea = defineArea({
  title: 'The first admin',
  properties,
  settings: (values, _context, report): AdminSettings => ({ admin: adminAccount(values, report) }),
});
