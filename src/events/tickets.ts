/**
 * Single-use tickets for event streams: browsers cannot put an `Authorization` header on a
 * WebSocket or an EventSource, so a client with a token asks for a ticket (`POST
 * /v1/events/tickets`) and passes it as `?ticket=`. A ticket carries its creator's principal, is
 * valid for 30 s and works once. Tickets live in memory only: a restart voids them, which is fine
 * for something this short-lived.
 */
import { randomBytes } from 'node:crypto';
import type { Principal } from '../auth/tokens.js';
import { AppError } from '../errors/app-error.js';

export const TICKET_TTL_MS = 30_000;
/** At most this many unused tickets at once (old ones are dropped first). */
const MAX_TICKETS = 10_000;

export class TicketStore {
  private readonly tickets = new Map<string, { readonly principal: Principal; readonly expires: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  issue(principal: Principal): { ticket: string; expiresAt: string } {
    this.sweep();
    if (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const ticket = randomBytes(24).toString('base64url');
    const expires = this.now() + TICKET_TTL_MS;
    this.tickets.set(ticket, { principal, expires });
    return { ticket, expiresAt: new Date(expires).toISOString() };
  }

  /** The principal of a valid ticket, which is used up; AUTH_INVALID otherwise. */
  redeem(ticket: string): Principal {
    const t = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    if (t === undefined || t.expires <= this.now()) {
      throw new AppError('AUTH_INVALID', 'The ticket is not known, was used already, or has expired (tickets are valid once, for 30 s)');
    }
    return t.principal;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, v] of this.tickets) if (v.expires <= now) this.tickets.delete(k);
  }
}
