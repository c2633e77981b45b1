import { describe, expect, it } from 'vitest';
import {
  FALLBACK_SLUG,
  SLUG_MAX_LENGTH,
  SUFFIX_LENGTH,
  baseSlug,
  randomSlugSuffix,
  slugCandidates,
  slugify,
} from '../../src/lib/slug.js';

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;

describe('slugify', () => {
  it.each([
    ['Portuguese', 'Olá, Mundo! Ação', 'ola-mundo-acao'],
    ['German', 'Größe über Äpfel und Öl, Straße', 'groesse-ueber-aepfel-und-oel-strasse'],
    ['Polish', 'Łódź: zażółć gęślą jaźń, Ćma Ńa', 'lodz-zazolc-gesla-jazn-cma-na'],
    ['Turkish', 'İstanbul ılık şiş, Ağaç Çay', 'istanbul-ilik-sis-agac-cay'],
    ['Vietnamese', 'Đường phố Việt Nam: những điều thú vị', 'duong-pho-viet-nam-nhung-dieu-thu-vi'],
    ['stacked diacritics', 'Ệ ữ ở ỹ', 'e-u-o-y'],
    ['French and Spanish', "L'été à Noël, ¿Mañana? Ça va", 'l-ete-a-noel-manana-ca-va'],
    ['Nordic', 'Smørrebrød på Ærø, Þór', 'smorrebrod-pa-aero-thor'],
    ['Greek', 'Ωμέγα και Άλφα', 'omega-kai-alfa'],
    ['Cyrillic', 'Привет, мир! Йога', 'privet-mir-yoga'],
    ['digits and punctuation', '  --10 Things (you) *must* know!!  ', '10-things-you-must-know'],
    ['emoji between words', 'Hello 👋 World', 'hello-world'],
  ])('transliterates %s', (_language, title, slug) => {
    expect(slugify(title)).toBe(slug);
    expect(slug).toMatch(SLUG);
  });

  it.each([['日本語'], ['🎉🎉'], ['!!!'], ['']])(
    'answers an empty slug for %j (nothing in ASCII)',
    (title) => {
      expect(slugify(title)).toBe('');
    },
  );

  it('cuts a long title at a hyphen, within the limit', () => {
    const title = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
    const slug = slugify(title);
    expect(slug.length).toBeLessThanOrEqual(SLUG_MAX_LENGTH);
    expect(slug).toMatch(SLUG);
    // Whole words only: the last one is one of the title's.
    expect(title.split(' ')).toContain(slug.split('-').at(-1));
  });

  it('cuts one enormous word inside it rather than dropping it', () => {
    const slug = slugify('a'.repeat(400));
    expect(slug).toBe('a'.repeat(SLUG_MAX_LENGTH));
  });

  it('never ends with a hyphen after a cut', () => {
    for (let length = 240; length <= 260; length += 1) {
      const slug = slugify(`${'x'.repeat(length - 2)} y z`, 250);
      expect(slug.length).toBeLessThanOrEqual(250);
      expect(slug).toMatch(SLUG);
    }
  });
});

describe('baseSlug', () => {
  it('leaves room for a uniqueness suffix', () => {
    const base = baseSlug('ab '.repeat(200));
    expect(base.length).toBeLessThanOrEqual(SLUG_MAX_LENGTH - SUFFIX_LENGTH - 1);
    for (const candidate of slugCandidates(base, 3)) {
      expect(candidate.length).toBeLessThanOrEqual(SLUG_MAX_LENGTH);
      expect(candidate).toMatch(SLUG);
    }
  });

  it('falls back to a valid slug for a title with nothing in ASCII', () => {
    expect(baseSlug('日本語')).toBe(FALLBACK_SLUG);
    expect(FALLBACK_SLUG).toMatch(SLUG);
  });
});

describe('slugCandidates', () => {
  it('tries the base, then the base with suffixes', () => {
    let n = 0;
    const suffix = () => `s${(n += 1)}`;
    expect([...slugCandidates('hello-world', 3, suffix)]).toEqual([
      'hello-world',
      'hello-world-s1',
      'hello-world-s2',
    ]);
  });

  it('makes random suffixes of the declared alphabet and length', () => {
    const suffixes = new Set(Array.from({ length: 50 }, () => randomSlugSuffix()));
    expect(suffixes.size).toBeGreaterThan(45);
    for (const suffix of suffixes)
      expect(suffix).toMatch(new RegExp(`^[a-z0-9]{${SUFFIX_LENGTH}}$`));
  });
});
