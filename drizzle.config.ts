import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: ['./src/db/schema.ts', './src/governance/schema.ts', './src/backups/schema.ts', './src/publication/schema.ts', './src/federation/schema.ts', './src/agent/schema.ts'],
  out: './migrations',
});
