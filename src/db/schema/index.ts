export * from './users.js';
export * from './auth.js';
export * from './posts.js';
export * from './events.js';
export * from './webhooks.js';
