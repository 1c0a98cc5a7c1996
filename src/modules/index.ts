// Every feature module, in mounting order. Adding a resource: one folder under modules/ and one
// line here (see docs/adding-a-module.md). Operations modules are answered before the API
// middleware whatever their place in this list.
import type { ModuleDefinition } from '../http/module';
import { authModule } from './auth';
import { diagModule } from './diag';
import { docsModule } from './docs';
import { healthModule } from './health';
import { itemsModule } from './items';
import { metricsModule } from './metrics';
import { usersModule } from './users';

export const modules: readonly ModuleDefinition[] = [healthModule, metricsModule, docsModule, authModule, usersModule, itemsModule, diagModule];
