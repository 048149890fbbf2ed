/**
 * Labels and label selectors. Keys and values are 1-63 characters of `[A-Za-z0-9._/-]` (names.ts),
 * so a selector needs no escaping: `k1=v1,k2!=v2,k3,!k4` (equals, not equals, has key, lacks key).
 */
import { AppError } from './errors/app-error.js';
import { LABEL_RE } from './names.js';

export type Labels = Readonly<Record<string, string>>;

/** Most labels one object may carry. */
export const MAX_LABELS = 64;

type Requirement =
  | { readonly op: 'eq' | 'ne'; readonly key: string; readonly value: string }
  | { readonly op: 'exists' | 'absent'; readonly key: string };

export interface LabelSelector {
  readonly requirements: readonly Requirement[];
}

/** A selector that matches everything. */
export const MATCH_ALL: LabelSelector = { requirements: [] };

function bad(detail: string): AppError {
  return new AppError('REQUEST_INVALID', detail, {
    meta: { errors: [{ field: 'querystring.labelSelector', message: detail }] },
  });
}

/** Parses `k1=v1,k2!=v2,k3,!k4`; throws REQUEST_INVALID naming the bad term. */
export function parseLabelSelector(text: string | undefined): LabelSelector {
  if (text === undefined || text === '') return MATCH_ALL;
  const requirements: Requirement[] = [];
  for (const term of text.split(',')) {
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^([^=!]+)(!=|==|=)([^=!]+)$/))) {
      const [, key, sep, value] = m as [string, string, string, string];
      if (!LABEL_RE.test(key) || !LABEL_RE.test(value)) throw bad(`labelSelector term '${term}': keys and values are 1-63 characters of [A-Za-z0-9._/-]`);
      requirements.push({ op: sep === '!=' ? 'ne' : 'eq', key, value });
    } else if ((m = term.match(/^(!?)([^=!]+)$/))) {
      const [, not, key] = m as [string, string, string];
      if (!LABEL_RE.test(key)) throw bad(`labelSelector term '${term}': keys are 1-63 characters of [A-Za-z0-9._/-]`);
      requirements.push({ op: not ? 'absent' : 'exists', key });
    } else {
      throw bad(`labelSelector term '${term}' is not key=value, key!=value, key or !key`);
    }
  }
  return { requirements };
}

export function matchesSelector(labels: Labels, sel: LabelSelector): boolean {
  return sel.requirements.every((r) => {
    const v = labels[r.key];
    switch (r.op) {
      case 'eq':
        return v === r.value;
      case 'ne':
        return v !== r.value;
      case 'exists':
        return v !== undefined;
      case 'absent':
        return v === undefined;
    }
  });
}

/** RFC 7396 merge of a labels patch: keys given are set, `null` removes a key, others stay. */
export function mergeLabels(current: Labels, patch: Readonly<Record<string, string | null>>): Labels {
  const out: Record<string, string> = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}
