// Playwright configuration for the console's browser tests. Run them with
// deploy/browser-tests.sh, which starts the system and exports LIKENESS_BASE_URL and the login.
import { defineConfig } from '@playwright/test';
import * as path from 'node:path';

const report = process.env.LIKENESS_BROWSER_REPORT ?? path.join(__dirname, 'test-results');

export default defineConfig({
  testDir: './tests',
  // Files run one after another in name order (the journeys build on each other's data; the
  // machine has few cores): 00-login, 10-upload, 20-review, 30-consent, 90-pages.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  outputDir: path.join(report, 'artifacts'),
  reporter: [['list'], ['junit', { outputFile: path.join(report, 'junit.xml') }]],
  use: {
    baseURL: process.env.LIKENESS_BASE_URL,
    viewport: { width: 1280, height: 800 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.LIKENESS_CHROMIUM ?? '/usr/bin/chromium',
      // Root in a container: no sandbox. The background-networking flags keep chromium from
      // calling home (the network is closed; it would retry without end).
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [
    { name: 'login', testMatch: /00-login\.spec\.ts/ },
    { name: 'console', testIgnore: /00-login\.spec\.ts/, dependencies: ['login'],
      use: { storageState: path.join(report, 'admin-state.json') } },
  ],
});
