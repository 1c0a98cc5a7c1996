-- Users: emails are unique case-insensitively (stored lower-cased, enforced by the index).
CREATE TABLE users (
  id uuid PRIMARY KEY,
  email text NOT NULL CHECK (email = lower(email) AND char_length(email) <= 254),
  password_hash text NOT NULL,
  name text CHECK (name IS NULL OR char_length(name) <= 100),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Items: the example resource. Bounds mirror the API's validation, so bad data cannot be stored
-- even by code that forgets to validate.
CREATE TABLE items (
  id uuid PRIMARY KEY,
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  description text CHECK (description IS NULL OR char_length(description) <= 2000),
  price numeric(12, 2) NOT NULL CHECK (price >= 0),
  tags text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_created_at_idx ON items (created_at, id);
CREATE INDEX items_price_idx ON items (price, id);
CREATE INDEX items_name_idx ON items (name, id);
CREATE INDEX items_owner_idx ON items (owner_id);
CREATE INDEX items_tags_idx ON items USING gin (tags);
