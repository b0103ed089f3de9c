import type { Express } from 'express';

// The routes an express app really has, read from its router (not from any list the
// app keeps itself), so tests can hold documentation and access rules against them.

/** "METHOD /path" for every route of the express app. */
export function appRoutes(express: Express): string[] {
  const app = express as unknown as { router: { stack: Layer[] } };
  const out: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const methods = Object.keys(layer.route.methods).filter((m) => m !== '_all');
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const p of paths) for (const m of methods) out.push(`${m.toUpperCase()} ${p}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk(app.router.stack);
  return [...new Set(out)].filter((r) => !r.startsWith('_ALL') && !r.startsWith('ALL'));
}

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}
