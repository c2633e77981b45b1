-- The text search configuration ("language") of posts' full-text search is a setting
-- (SEARCH_LANGUAGE), but the `search` column is generated with one configuration in its
-- expression, and a query only matches what was indexed with the same one. Changing it
-- rewrites the table under an exclusive lock, which takes rights on `posts` that the
-- application's role need not have: these functions belong to the schema, and
-- `npm run db:search-language` (the migration Job's second step) calls the second one with
-- SEARCH_LANGUAGE; the server only calls the first, to refuse to start on a mismatch.

-- The configuration in the expression of posts.search, e.g. 'simple'.
CREATE FUNCTION posts_search_language() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT substring(pg_get_expr(d.adbin, d.adrelid)
                   FROM 'to_tsvector\(''(?:pg_catalog\.)?([^'']+)''::regconfig')
    FROM pg_attrdef d
    JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
   WHERE d.adrelid = 'posts'::regclass AND a.attname = 'search'
$$;--> statement-breakpoint

-- Makes posts.search (and its GIN index) use `language`, rebuilding them when it differs,
-- in the caller's transaction under an exclusive lock: of several callers at once, the
-- first rebuilds and the others, once the lock is theirs, find nothing to do. Says
-- whether it rebuilt.
CREATE FUNCTION posts_set_search_language(language regconfig) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  config_name text := (SELECT cfgname FROM pg_ts_config WHERE oid = language);
BEGIN
  LOCK TABLE posts IN ACCESS EXCLUSIVE MODE;
  IF posts_search_language() = config_name THEN
    RETURN false;
  END IF;
  DROP INDEX IF EXISTS posts_search_idx;
  ALTER TABLE posts DROP COLUMN search;
  EXECUTE format(
    'ALTER TABLE posts ADD COLUMN search tsvector NOT NULL GENERATED ALWAYS AS '
    '(to_tsvector(%L::regconfig, "title"::text || '' '' || "content")) STORED',
    config_name);
  CREATE INDEX posts_search_idx ON posts USING gin (search);
  RETURN true;
END
$$;
