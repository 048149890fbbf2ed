/**
 * The security atoms: every name that reaches argv or a path is checked here, by schema and again
 * by the executor's argv builder. No shell is involved, but a name must still never be read as an
 * option (`-n`), a path (`../x`, `a/b`), or a special directory entry (`.`, `..`).
 */
import { Type } from '@sinclair/typebox';

/**
 * Namespace names. `ip netns` stores a namespace as the file /run/netns/NAME, so a name must be a
 * plain file name: ASCII letters, digits, `_`, `.` and `-`; not starting with `-` (an option) or
 * `.` (hidden files, `.` and `..`); at most 64 characters (room under NAME_MAX for tools that
 * derive names from it, short enough to read in a table).
 */
export const NAMESPACE_NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$';
export const NAMESPACE_NAME_RE = new RegExp(NAMESPACE_NAME_PATTERN);

/** Interface names: the kernel allows 15 bytes (IFNAMSIZ - 1); we also forbid `-` first and `.`/`..`. */
export const LINK_NAME_PATTERN = '^(?!\\.{1,2}$)[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$';
export const LINK_NAME_RE = new RegExp(LINK_NAME_PATTERN);

/** Label keys and values: 1-63 of `[A-Za-z0-9._/-]`, so `,` and `=` never need escaping in a selector. */
export const LABEL_PATTERN = '^[A-Za-z0-9._/-]{1,63}$';
export const LABEL_RE = new RegExp(LABEL_PATTERN);

export function isNamespaceName(s: string): boolean {
  return NAMESPACE_NAME_RE.test(s);
}

export function isLinkName(s: string): boolean {
  return LINK_NAME_RE.test(s);
}

export const NamespaceNameSchema = Type.String({
  $id: 'NamespaceName',
  pattern: NAMESPACE_NAME_PATTERN,
  minLength: 1,
  maxLength: 64,
  description:
    'A namespace name: 1-64 ASCII letters, digits, `_`, `.` or `-`, not starting with `-` or `.`. ' +
    '`host` names the root namespace (the one netnsd runs in) and is reserved.',
  examples: ['blue', 'lab-a.r1'],
});

export const LabelsSchema = Type.Record(Type.String({ pattern: LABEL_PATTERN }), Type.String({ pattern: LABEL_PATTERN }), {
  $id: 'Labels',
  additionalProperties: false,
  maxProperties: 64,
  description: 'Labels: at most 64; keys and values are 1-63 characters of `[A-Za-z0-9._/-]`.',
  examples: [{ lab: 'a', owner: 'ci' }],
});

/** MAC addresses: six colon-separated hex pairs. Whether the kernel takes one (unicast, not zero) is its answer. */
export const MAC_PATTERN = '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$';
export const MAC_RE = new RegExp(MAC_PATTERN);

/**
 * Link aliases (IFLA_IFALIAS, at most 255 bytes): visible ASCII without quotes, `#` and `\`, so
 * that an alias is one word of an `ip -batch` line and never needs quoting.
 */
export const ALIAS_PATTERN = '^[!$-&(-\\[\\]-~]{1,255}$';
export const ALIAS_RE = new RegExp(ALIAS_PATTERN);

export const LinkNameSchema = Type.String({
  $id: 'LinkName',
  pattern: LINK_NAME_PATTERN,
  minLength: 1,
  maxLength: 15,
  description: 'A link (interface) name: 1-15 ASCII letters, digits, `_`, `.` or `-`, not starting with `-`, not `.` or `..`.',
  examples: ['veth0', 'br-lab'],
});
