import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import { expect } from 'vitest';

export interface Account {
  email: string;
  password: string;
  userId: string;
  accessToken: string;
  refreshToken: string;
}

export const TEST_PASSWORD = 'correct horse battery staple';

export async function register(app: Express, email = `u-${randomUUID()}@example.com`, password = TEST_PASSWORD): Promise<Account> {
  const res = await request(app).post('/api/v1/auth/register').send({ email, password, name: 'Test User' });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { email, password, userId: res.body.user.id, accessToken: res.body.accessToken, refreshToken: res.body.refreshToken };
}

export async function login(app: Express, email: string, password = TEST_PASSWORD): Promise<Account> {
  const res = await request(app).post('/api/v1/auth/login').send({ email, password });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { email, password, userId: res.body.user.id, accessToken: res.body.accessToken, refreshToken: res.body.refreshToken };
}

/** `count` sessions of the account, each logged out (204) at once: tokens revoked before a test's fault. */
export async function loggedOutSessions(app: Express, email: string, count: number): Promise<Account[]> {
  const sessions: Account[] = [];
  for (let i = 0; i < count; i++) {
    const session = await login(app, email);
    const res = await request(app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${session.accessToken}`);
    expect(res.status, JSON.stringify(res.body)).toBe(204);
    sessions.push(session);
  }
  return sessions;
}

export function me(app: Express, accessToken: string) {
  return request(app).get('/api/v1/users/me').set('Authorization', `Bearer ${accessToken}`);
}

export function refresh(app: Express, refreshToken: unknown) {
  return request(app).post('/api/v1/auth/refresh').send({ refreshToken });
}
