// The items resource's fields, declared once: validation, handler types and the document follow.
// JSON types are checked, not coerced: "12" is not a price and 5 is not a name. Unknown fields are
// refused, never stored.
import { s, type Infer } from '../../lib/schema';
import { SORT_KEYS } from './repository';

const MAX_PRICE = 9_999_999_999.99; // numeric(12, 2)

const itemId = s.string({ format: 'uuid', minLength: 36, maxLength: 36, example: '6f1c2b8e-3d4a-4e5f-9a6b-7c8d9e0f1a2b' });

const name = s.string({ minLength: 1, maxLength: 200, trim: true, description: 'Surrounding whitespace is removed.', example: 'Desk lamp' });
const description = s.nullable(s.string({ maxLength: 2000, example: 'Brass, with a linen shade' }));
const price = s.number({ minimum: 0, maximum: MAX_PRICE, decimals: 2, example: 49.9 });
const tag = s.string({ minLength: 1, maxLength: 50, trim: true, description: 'Surrounding whitespace is removed.', example: 'home' });
const tags = s.array(tag, { maxItems: 20 });

export const itemParams = { id: itemId };

/** ?page&limit&sort&tag: values out of range are refused with 422, never clamped. */
export const listQuery = {
  page: s.withDefault(s.integer({ minimum: 1, maximum: 1_000_000 }), 1),
  limit: s.withDefault(s.integer({ minimum: 1, maximum: 100 }), 20),
  sort: s.withDefault(s.enum(SORT_KEYS), '-createdAt'),
  tag: s.optional(s.string({ minLength: 1, maxLength: 50, description: 'Only items carrying this tag.' })),
};

export const createItemBody = s.object({ name, description: s.optional(description), price, tags: s.optional(tags) });
export const updateItemBody = s.object(
  { name: s.optional(name), description: s.optional(description), price: s.optional(price), tags: s.optional(tags) },
  { minProperties: 1, description: 'A partial update: only the fields given change; at least one.' },
);
export type ItemInput = Infer<typeof updateItemBody>;

const timestamp = s.string({ format: 'date-time', maxLength: 40 });
export const itemSchema = s.named(
  'Item',
  s.object({
    id: itemId,
    name: s.string({ minLength: 1, maxLength: 200 }),
    description: s.nullable(s.string({ maxLength: 2000 })),
    price,
    tags: s.array(s.string({ minLength: 1, maxLength: 50 }), { maxItems: 20 }),
    ownerId: s.string({ format: 'uuid', maxLength: 36, description: 'The user who created it; only they may change or delete it.' }),
    createdAt: timestamp,
    updatedAt: timestamp,
  }),
);

export const itemResponse = s.object({ item: itemSchema });
export const itemPage = s.named(
  'ItemPage',
  s.object({
    items: s.array(itemSchema, { maxItems: 100 }),
    page: s.integer({ minimum: 1, maximum: 1_000_000 }),
    limit: s.integer({ minimum: 1, maximum: 100 }),
    total: s.integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Items matching the filter, on all pages.' }),
  }),
);
