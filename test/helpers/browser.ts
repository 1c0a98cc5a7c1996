// A real headless browser for tests of what the app serves to browsers: Debian's chromium driven by
// playwright-core (no downloaded browser). Every page is watched for what a user would never see
// but a broken page shows: console errors and warnings, Content-Security-Policy violations, script
// errors, failed loads and error responses.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { toolAvailable } from './services';

const EXECUTABLE = '/usr/bin/chromium';
export const CHROMIUM = toolAvailable(existsSync(EXECUTABLE), 'chromium (Debian package chromium)') ? EXECUTABLE : undefined;
export const NO_CHROMIUM_REASON = 'skipped: chromium not installed (Debian package chromium)';

// Bounds for everything the browser does, so a hung page fails the test instead of stalling it.
const LAUNCH_TIMEOUT_MS = 30_000;
const ACTION_TIMEOUT_MS = 10_000;

/** What went wrong on a page, as text, in the order it happened. */
interface PageProblems {
  /** Console messages of type error (CSP violations and failed loads included). */
  consoleErrors: string[];
  /** Console messages of type warning. */
  consoleWarnings: string[];
  /** Console errors reporting a Content-Security-Policy violation (Chromium logs them there). */
  cspViolations: string[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** Requests that never got a response (refused, aborted, blocked). */
  failedRequests: string[];
  /** Responses with status 400 or more: "<status> <method> <url>". */
  errorResponses: string[];
  /** Every URL the page requested, for "no other host" assertions. */
  requests: string[];
}

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  problems: PageProblems;
  /** Closes the page's context (its own cookies, storage and cache go with it). */
  close(): Promise<void>;
}

export class TestBrowser {
  private constructor(private readonly browser: Browser) {}

  static async launch(): Promise<TestBrowser> {
    if (!CHROMIUM) throw new Error(NO_CHROMIUM_REASON);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: LAUNCH_TIMEOUT_MS,
      // The background-networking flags keep Chromium from calling its own services (updates,
      // sync, field trials), which fail noisily on a machine without outside access.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    return new TestBrowser(browser);
  }

  /** A page in a new, empty context, watched from its first request on. */
  async open(): Promise<WatchedPage> {
    const context = await this.browser.newContext();
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    const page = await context.newPage();
    const problems: PageProblems = {
      consoleErrors: [],
      consoleWarnings: [],
      cspViolations: [],
      pageErrors: [],
      failedRequests: [],
      errorResponses: [],
      requests: [],
    };
    page.on('console', (message) => {
      const text = message.text();
      if (message.type() === 'error') {
        problems.consoleErrors.push(text);
        if (text.includes('Content Security Policy')) problems.cspViolations.push(text);
      } else if (message.type() === 'warning') {
        problems.consoleWarnings.push(text);
      }
    });
    page.on('pageerror', (error) => problems.pageErrors.push(error.stack ?? error.message));
    page.on('request', (request) => problems.requests.push(request.url()));
    page.on('requestfailed', (request) => problems.failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText ?? 'failed'}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.errorResponses.push(`${response.status()} ${response.request().method()} ${response.url()}`);
    });
    return { context, page, problems, close: () => context.close() };
  }

  async close(): Promise<void> {
    await this.browser.close();
  }
}
