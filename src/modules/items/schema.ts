// Validation chains for items, built once at module load.
import { param, query } from 'express-validator';
import { SORT_KEYS } from './repository';

// Values arrive as strings; hpp has already reduced duplicates to the last one.
export const listItemsQuery = [
  query('page').optional().isInt({ min: 1, max: 1_000_000 }).withMessage('must be an integer of at least 1').toInt(),
  query('limit').optional().isInt({ min: 1, max: 100 }).withMessage('must be an integer from 1 to 100').toInt(),
  query('sort').optional().isIn(SORT_KEYS).withMessage(`must be one of ${SORT_KEYS.join(', ')}`),
  query('tag').optional().isString().isLength({ min: 1, max: 50 }).withMessage('must be 1 to 50 characters'),
];

export const itemIdParam = [param('id').isUUID().withMessage('must be a UUID')];
