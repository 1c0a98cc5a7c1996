// Validation chains for items, built once at module load. JSON types are checked, not coerced:
// "12" is not a price and 5 is not a name. Unknown fields are rejected, never stored.
import { body, checkExact, param, query } from 'express-validator';
import type { Request } from 'express';
import { SORT_KEYS, type SortKey } from './repository';

export const MAX_PRICE = 9_999_999_999.99; // numeric(12, 2)

// Values arrive as strings; hpp has already reduced duplicates to the last one.
export const listItemsQuery = [
  query('page').optional().isInt({ min: 1, max: 1_000_000 }).withMessage('must be an integer of at least 1').toInt(),
  query('limit').optional().isInt({ min: 1, max: 100 }).withMessage('must be an integer from 1 to 100').toInt(),
  query('sort').optional().isIn(SORT_KEYS).withMessage(`must be one of ${SORT_KEYS.join(', ')}`),
  query('tag').optional().isString().isLength({ min: 1, max: 50 }).withMessage('must be 1 to 50 characters'),
];

/** The list query as the chains above convert it (page and limit to integers); absent keys stay absent. */
export interface ListQuery {
  page?: number;
  limit?: number;
  sort?: SortKey;
  tag?: string;
}

// validate()'s fast path for the list query: the values clients normally send, recognised with a
// few regular expressions and converted as the chains convert them. Anything else (leading zeros,
// signs, repeated keys, a tag with surrogate pairs or variation selectors, whose length validator
// counts differently) is left to the chains, which accept it or answer 422. A unit test holds the
// two to the same answers.
const PAGE = /^[1-9][0-9]{0,6}$/;
const LIMIT = /^(?:[1-9][0-9]?|100)$/;
const PLAIN_TAG = /^[^\uD800-\uDFFF\uFE0E\uFE0F]{1,50}$/;
const SORTS: readonly string[] = SORT_KEYS;

/** The parsed list query when the chains would accept it unchanged; undefined when unsure. */
export function parseListQuery(query: unknown): ListQuery | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const { page, limit, sort, tag } = query as Record<string, unknown>;
  const parsed: ListQuery = {};
  if (page !== undefined) {
    if (typeof page !== 'string' || !PAGE.test(page) || Number(page) > 1_000_000) return undefined;
    parsed.page = Number(page);
  }
  if (limit !== undefined) {
    if (typeof limit !== 'string' || !LIMIT.test(limit)) return undefined;
    parsed.limit = Number(limit);
  }
  if (sort !== undefined) {
    if (typeof sort !== 'string' || !SORTS.includes(sort)) return undefined;
    parsed.sort = sort as SortKey;
  }
  if (tag !== undefined) {
    if (typeof tag !== 'string' || !PLAIN_TAG.test(tag)) return undefined;
    parsed.tag = tag;
  }
  return parsed;
}

export const itemIdParam = [param('id').isUUID().withMessage('must be a UUID')];

// The ids isUUID() above accepts (validator's "all": versions 1-8, nil and max), as one regular
// expression for validate()'s fast path; a unit test holds the two to the same answers.
const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|0{8}-0{4}-0{4}-0{4}-0{12}|f{8}-f{4}-f{4}-f{4}-f{12})$/i;
export const hasItemId = (req: Request): boolean => {
  const id = req.params.id;
  return typeof id === 'string' && UUID.test(id);
};

const isPrice = (value: unknown): boolean =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_PRICE && Math.abs(Math.round(value * 100) - value * 100) < 1e-6;

function itemFields(required: boolean) {
  const field = (name: string) => (required ? body(name) : body(name).optional());
  return [
    field('name').isString().withMessage('must be a string').bail().trim().isLength({ min: 1, max: 200 }).withMessage('must be 1 to 200 characters'),
    body('description')
      .optional({ values: 'null' })
      .isString().withMessage('must be a string').bail()
      .isLength({ max: 2000 }).withMessage('must be at most 2000 characters'),
    field('price').custom(isPrice).withMessage(`must be a number from 0 to ${MAX_PRICE} with at most 2 decimals`),
    body('tags').optional().isArray({ max: 20 }).withMessage('must be an array of at most 20 tags'),
    body('tags.*').isString().withMessage('must be a string').bail().trim().isLength({ min: 1, max: 50 }).withMessage('must be 1 to 50 characters'),
  ];
}

export const createItemBody = [checkExact(itemFields(true), { locations: ['body'], message: 'is not allowed' })];

export const updateItemBody = [
  checkExact(itemFields(false), { locations: ['body'], message: 'is not allowed' }),
  body().custom((value: unknown) => typeof value === 'object' && value !== null && Object.keys(value).length > 0).withMessage('must change at least one field'),
];
