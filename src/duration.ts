/**
 * Durations as people write them: a number and one unit (`500ms`, `1.5s`, `5m`, `2h`, `1d`).
 * The same syntax is used in the config file and in every API field that takes a duration, so
 * `DurationSchema` is the single definition of it. A bare number is refused on purpose: `30` could
 * mean seconds or milliseconds, and guessing wrong turns a timeout into a hang or a storm.
 */
import { Type, type Static } from '@sinclair/typebox';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

type Unit = keyof typeof UNIT_MS;

/** The units above `ms`, largest first, as `formatDuration` tries them. */
const LARGER_UNITS: readonly Unit[] = ['d', 'h', 'm', 's'];

export const DURATION_PATTERN = '^[0-9]+(?:\\.[0-9]+)?(?:ms|s|m|h|d)$';
const DURATION_RE = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/;

export const DurationSchema = Type.String({
  $id: 'Duration',
  pattern: DURATION_PATTERN,
  description:
    'A duration: a number (integer or decimal) followed by one unit, `ms`, `s`, `m` (minutes), `h` or `d`. ' +
    'A bare number is not accepted.',
  examples: ['500ms', '10s', '5m', '2h', '1d'],
});

/** A duration string as accepted by `DurationSchema`, e.g. `'15s'`. */
export type Duration = Static<typeof DurationSchema>;

/**
 * Parses a duration (`'500ms'`, `'1.5s'`, `'5m'`, `'2h'`, `'1d'`) into milliseconds, rounded to the
 * nearest whole millisecond. Throws a plain Error naming the bad text and the accepted form.
 */
export function parseDuration(text: string): number {
  const m = DURATION_RE.exec(text);
  if (!m) {
    throw new Error(
      `'${text}' is not a duration: write a number followed by one unit of ms, s, m, h or d (e.g. 500ms, 10s, 5m, 2h, 1d)`,
    );
  }
  const [, amount, unit] = m as unknown as [string, string, Unit];
  const ms = Math.round(Number(amount) * UNIT_MS[unit]);
  // A long run of digits parses to a float that has lost precision (or to Infinity): refuse it
  // rather than hand a timer a value nobody wrote.
  if (!Number.isSafeInteger(ms)) throw new Error(`'${text}' is too long a duration`);
  return ms;
}

/**
 * Formats milliseconds as a duration string in the largest unit that represents it exactly
 * (`90000` -> `'90s'`, `86400000` -> `'1d'`, `1500` -> `'1500ms'`), so that
 * `parseDuration(formatDuration(ms)) === ms` for every whole, non-negative `ms`.
 * Fractions of a millisecond are rounded; negative or non-finite input throws.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`cannot format ${ms} as a duration: it must be a finite number >= 0`);
  const whole = Math.round(ms);
  // Zero is a multiple of every unit; `0ms` reads better than `0d`.
  const unit = whole === 0 ? 'ms' : (LARGER_UNITS.find((u) => whole % UNIT_MS[u] === 0) ?? 'ms');
  return `${whole / UNIT_MS[unit]}${unit}`;
}
