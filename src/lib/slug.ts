import { randomInt } from 'node:crypto';

/**
 * URL slugs made from titles: lower-case ASCII words joined by single hyphens, matching the
 * spec's Slug pattern `^[a-z0-9]+(-[a-z0-9]+)*$`.
 */

export const SLUG_MAX_LENGTH = 255;

/** A uniqueness suffix: a hyphen and this many characters of [a-z0-9]. */
export const SUFFIX_LENGTH = 6;

/** Room left at the end of a generated slug for `-` and a suffix. */
const BASE_MAX_LENGTH = SLUG_MAX_LENGTH - SUFFIX_LENGTH - 1;

/** What a title with nothing to transliterate (日本語, emoji only) is called. */
export const FALLBACK_SLUG = 'post';

/**
 * Letters that must be replaced before Unicode decomposition, either because the usual
 * spelling in ASCII is not the bare base letter (German ä → ae) or because the letter has no
 * decomposition at all (ł, đ, ı, ø).
 */
const beforeDecomposition: Record<string, string> = {
  // German
  ä: 'ae',
  ö: 'oe',
  ü: 'ue',
  ß: 'ss',
  ẞ: 'ss',
  // Polish, Croatian, Vietnamese, Turkish dotless i
  ł: 'l',
  đ: 'd',
  ı: 'i',
  // Nordic and other Latin letters without a decomposition
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  ð: 'd',
  þ: 'th',
  ħ: 'h',
  ŧ: 't',
  ŋ: 'ng',
  // Cyrillic letters whose decomposition would lose the sound (й = и + breve)
  й: 'y',
  ё: 'yo',
  ї: 'yi',
};

// prettier-ignore
/** Greek and Cyrillic (Russian, Ukrainian, Belarusian, Bulgarian, Serbian), without accents. */
const afterDecomposition: Record<string, string> = {
  α: 'a', β: 'v', γ: 'g', δ: 'd', ε: 'e', ζ: 'z', η: 'i', θ: 'th', ι: 'i', κ: 'k',
  λ: 'l', μ: 'm', ν: 'n', ξ: 'x', ο: 'o', π: 'p', ρ: 'r', σ: 's', ς: 's', τ: 't',
  υ: 'y', φ: 'f', χ: 'ch', ψ: 'ps', ω: 'o',
  а: 'a', б: 'b', в: 'v', г: 'g', ґ: 'g', д: 'd', е: 'e', є: 'ye', ж: 'zh', з: 'z',
  и: 'i', і: 'i', к: 'k', л: 'l', м: 'm', н: 'n', о: 'o', п: 'p', р: 'r', с: 's',
  т: 't', у: 'u', ў: 'u', ф: 'f', х: 'kh', ц: 'ts', ч: 'ch', ш: 'sh', щ: 'shch', ъ: '',
  ы: 'y', ь: '', э: 'e', ю: 'yu', я: 'ya', ђ: 'dj', ј: 'j', љ: 'lj', њ: 'nj', ћ: 'c',
  џ: 'dz',
};

const replaceEach = (text: string, table: Record<string, string>) =>
  Array.from(text, (char) => table[char] ?? char).join('');

/**
 * The slug of a title, at most `maxLength` characters, or '' when nothing in it can be
 * written in ASCII. Over-long slugs are cut at a hyphen when that keeps most of the text.
 */
export function slugify(title: string, maxLength = SLUG_MAX_LENGTH): string {
  // Lower case first: İ becomes i + a combining dot, which decomposition then drops.
  const lower = replaceEach(title.toLowerCase(), beforeDecomposition);
  const bare = lower.normalize('NFD').replace(/\p{M}+/gu, '');
  const ascii = replaceEach(bare, afterDecomposition)
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return cut(ascii, maxLength);
}

function cut(slug: string, maxLength: number): string {
  if (slug.length <= maxLength) return slug;
  const head = slug.slice(0, maxLength);
  // A hyphen right after the cut means the cut falls between two words already.
  if (slug[maxLength] === '-') return head.replace(/-+$/, '');
  const lastHyphen = head.lastIndexOf('-');
  // One enormous word is cut inside it rather than dropped.
  return (lastHyphen >= maxLength / 2 ? head.slice(0, lastHyphen) : head).replace(/-+$/, '');
}

/** The slug a post gets from its title, leaving room for a uniqueness suffix; never empty. */
export function baseSlug(title: string): string {
  return slugify(title, BASE_MAX_LENGTH) || FALLBACK_SLUG;
}

/** Six random characters of [a-z0-9]. */
export function randomSlugSuffix(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from({ length: SUFFIX_LENGTH }, () => alphabet[randomInt(alphabet.length)]).join('');
}

/**
 * The slugs to try, in order, for a post whose base slug is `base`: the base itself, then
 * the base with a random suffix (`title-k3x9q2`). A random suffix rather than `-2`, `-3`:
 * posts created at the same moment with one title would all race for the same next number.
 */
export function* slugCandidates(
  base: string,
  attempts: number,
  suffix: () => string = randomSlugSuffix,
): Generator<string> {
  yield base;
  for (let n = 1; n < attempts; n += 1) yield `${base}-${suffix()}`;
}
