// Validation chains for the auth and account routes, built once at module load. Every field must
// be a string where a string is expected: operator objects, arrays and numbers are 422, never a login.
import { body, checkExact } from 'express-validator';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../lib/passwords';

const email = () =>
  body('email')
    .isString().withMessage('must be a string').bail()
    .trim()
    .isLength({ min: 3, max: 254 }).withMessage('must be an email').bail()
    .isEmail({ allow_ip_domain: false, require_tld: false }).withMessage('must be an email');

const name = () =>
  body('name').isString().withMessage('must be a string').bail().trim().isLength({ min: 1, max: 100 }).withMessage('must be 1 to 100 characters');

export const registerBody = [
  checkExact(
    [
      email(),
      body('password')
        .isString().withMessage('must be a string').bail()
        .isLength({ min: PASSWORD_MIN_LENGTH, max: PASSWORD_MAX_LENGTH })
        .withMessage(`must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`),
      name().optional(),
    ],
    { locations: ['body'], message: 'is not allowed' },
  ),
];

export const loginBody = [
  checkExact(
    [
      email(),
      // No minimum here: a password set under older rules must still be able to log in.
      body('password').isString().withMessage('must be a string').bail().isLength({ min: 1, max: PASSWORD_MAX_LENGTH }).withMessage('is required'),
    ],
    { locations: ['body'], message: 'is not allowed' },
  ),
];

export const refreshBody = [
  checkExact([body('refreshToken').isString().withMessage('must be a string').bail().isLength({ min: 1, max: 512 }).withMessage('is required')], {
    locations: ['body'],
    message: 'is not allowed',
  }),
];

export const changePasswordBody = [
  checkExact(
    [
      body('currentPassword').isString().withMessage('must be a string').bail().isLength({ min: 1, max: PASSWORD_MAX_LENGTH }).withMessage('is required'),
      body('newPassword')
        .isString().withMessage('must be a string').bail()
        .isLength({ min: PASSWORD_MIN_LENGTH, max: PASSWORD_MAX_LENGTH })
        .withMessage(`must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`),
    ],
    { locations: ['body'], message: 'is not allowed' },
  ),
];

export const emptyBody = [checkExact([], { locations: ['body'], message: 'is not allowed' })];

export const updateMeBody = [checkExact([name()], { locations: ['body'], message: 'is not allowed' })];
